import pytest

from pbxguard.policy.rules import Policy, Rule
from pbxguard.screener.verdict import CLASSES, Verdict
from pbxguard.service.channel_vars import OUTBOUND, channel_variables


def verdict(label, proven=False, **evidence):
    return Verdict(label, 0.9, {c: float(c == label) for c in CLASSES},
                   {"speech_onset_ms": 300.0, "utterances_ms": [[300.0, 900.0]], "speech_ms": 600.0, **evidence},
                   2000.0, "pbxguard-test", proven)


@pytest.mark.parametrize("label, proven, action, amd", [
    ("human", False, "BRIDGE", "HUMAN"),
    ("machine", False, "CHALLENGE", "MACHINE"),
    ("silence", False, "CHALLENGE", "MACHINE"),
    ("digital_silence", True, "BRIDGE", "NOTSURE"),  # bridged silence is no machine to a dialer
    ("fax", True, "HANGUP", "MACHINE"),
    ("fax", False, "CHALLENGE", "MACHINE"),  # a fax the detectors did not prove is not hung up on
    ("tone", True, "HANGUP", "MACHINE"),
    ("unknown", False, "CHALLENGE", "NOTSURE"),
])
def test_contract(label, proven, action, amd):
    v = verdict(label, proven)
    decision = Policy().decide(v)
    variables = channel_variables(v, decision, "id-1")
    assert variables["PBXGUARD_VERDICT"] == label.upper() and variables["PBXGUARD_ACTION"] == action
    assert variables["AMDSTATUS"] == amd
    assert ("PBXGUARD_CHALLENGE_DIGIT" in variables) == (action == "CHALLENGE")
    assert list(variables)[-1] == "PBXGUARD_ACTION"


def test_amd_causes_in_app_amd_vocabulary():
    assert channel_variables(verdict("human"), Policy().decide(verdict("human")), "x")["AMDCAUSE"] == "HUMAN-300-1100"
    assert channel_variables(verdict("silence"), Policy().decide(verdict("silence")), "x")["AMDCAUSE"] == "INITIALSILENCE-2000-2000"
    beep = verdict("machine", beep_ms=1500.0)
    assert channel_variables(beep, Policy().decide(beep), "x", OUTBOUND)["PBXGUARD_BEEP_MS"] == "1500"


def test_challenge_digits_are_spread_over_all_ten():
    v = verdict("silence")
    digits = {channel_variables(v, Policy().decide(v), "x")["PBXGUARD_CHALLENGE_DIGIT"] for _ in range(400)}
    assert digits == set("0123456789")


def test_low_confidence_rule_and_unknown_labels():
    policy = Policy({"human": Rule("BRIDGE", min_confidence=0.95)})
    assert policy.decide(verdict("human")).reason == "HUMAN_LOW_CONFIDENCE"
    with pytest.raises(ValueError):
        Policy({"robot": Rule("HANGUP")})
