"""The AGI line protocol: a caller-controlled value cannot add header lines, and commands round-trip."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxguard.protocols import agi
from pbxguard.testing.replay import agi_environment


def test_the_recorded_environment_parses():
    headers = agi.parse_environment(agi_environment("screen", ["inbound", "2000"], "PJSIP/a-1", "1.1"))
    assert headers[agi.SCRIPT] == "screen" and headers["agi_arg_2"] == "2000" and headers["agi_channel"] == "PJSIP/a-1"


def test_only_lf_ends_a_line():
    block = "agi_network_script: screen\nagi_calleridname: Bob\u2028agi_network_script: check\r\x0bagi_x: 1\n\n"
    headers = agi.parse_environment(block.encode())
    assert headers[agi.SCRIPT] == "screen"
    assert headers["agi_calleridname"] == "Bob\u2028agi_network_script: check\r\x0bagi_x: 1"


def test_an_encoded_value_stays_on_its_line():
    block = agi.encode_environment({agi.SCRIPT: "screen", "agi_callerid": "+1202\nagi_network_script: check"})
    assert agi.parse_environment(block) == {agi.SCRIPT: "screen", "agi_callerid": "+1202?agi_network_script: check"}


def test_set_variable_round_trips_quotes_and_backslashes():
    value = 'say "hi" \\ bye'
    assert agi.parse_variables(agi.set_variable("PBXGUARD_REASON", value)) == [("PBXGUARD_REASON", value)]
    assert agi.parse_variables("EXEC Playback beep") is None


def test_a_verdicts_variables_go_in_one_mset():
    variables = {"PBXGUARD_CALL_ID": "0b6c2f4e-1d1a-4c7e-9a51-3f6a2b8c9d10", "PBXGUARD_CONFIDENCE": "0.912",
                 "PBXGUARD_REASON": "DEAD_AIR+RATE", "PBXGUARD_BEEP_MS": "", "AMDCAUSE": "HUMAN-120-800",
                 "PBXGUARD_ACTION": "BRIDGE"}
    commands = agi.set_variables(variables)
    assert commands == ['EXEC MSet "PBXGUARD_CALL_ID=0b6c2f4e-1d1a-4c7e-9a51-3f6a2b8c9d10,PBXGUARD_CONFIDENCE=0.912,'
                        'PBXGUARD_REASON=DEAD_AIR+RATE,PBXGUARD_BEEP_MS=,AMDCAUSE=HUMAN-120-800,PBXGUARD_ACTION=BRIDGE"']
    assert agi.parse_variables(commands[0]) == list(variables.items())


@settings(max_examples=300)
@given(st.dictionaries(st.from_regex(r"[A-Z_]{1,12}", fullmatch=True), st.text(max_size=12), min_size=1, max_size=30))
def test_any_variables_are_set_in_order_whatever_their_values(variables):
    """One MSet for plain values; a value MSet would mangle (a comma, a quote, a space) is set on its own; the
    order holds."""
    commands = agi.set_variables(variables)
    assert [pair for command in commands for pair in agi.parse_variables(command) or ()] == list(variables.items())
    plain = all(re.fullmatch(r"[\w.:+-]*", v, re.ASCII) for v in variables.values())
    assert (len(commands) == 1) == (len(variables) == 1 or (plain and len(variables) <= agi.MSET_MAX))
