"""The AGI line protocol: a caller-controlled value cannot add header lines, and commands round-trip."""

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
    assert agi.parse_set_variable(agi.set_variable("PBXGUARD_REASON", value)) == ("PBXGUARD_REASON", value)
    assert agi.parse_set_variable("EXEC Playback beep") is None
