"""STIR/SHAKEN results in Asterisk's and the carriers' (verstat) words, and what the policy makes of them."""

import logging

import pytest

from pbxguard.policy.callerid import CallerIndex
from pbxguard.policy.callers import CallerRules
from pbxguard.policy.identity import Identity
from pbxguard.policy.rules import Policy
from pbxguard.screener.verdict import Verdict


@pytest.mark.parametrize("attestation, result, expected", [
    ("A", "success", ("verified", "A")),
    ("c", "success", ("verified", "C")),
    ("", "signature_validation", ("failed", "")),
    ("A", "iat_range_error", ("failed", "")),  # a level from a signature that failed is not kept
    ("", "missing_identity_hdr", ("missing", "")),
    ("", "disabled", ("", "")),
    ("", "", ("", "")),
    ("", "TN-Validation-Passed", ("verified", "")),
    ("", "TN-Validation-Passed-B", ("verified", "B")),
    ("", "tn-validation-failed", ("failed", "")),
    ("", "No-TN-Validation", ("missing", "")),
    ("Z", "success", ("verified", "")),
])
def test_both_vocabularies(attestation, result, expected):
    identity = Identity.from_pbx(attestation, result)
    assert (identity.status, identity.attestation) == expected
    assert identity.record() == ({"status": expected[0], "attestation": expected[1], "detail": result}
                                 if expected[0] else None)


def test_a_word_of_neither_vocabulary_is_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert Identity.from_pbx("A", "<script>").status == ""
    assert "neither Asterisk's nor a verstat" in caplog.text
    assert len(Identity.from_pbx("", "x" * 10_000).detail) <= 48


HUMAN = Verdict("human", 0.9, {"human": 0.9}, proven=False)


def decide(rules: CallerRules, attestation: str, result: str):
    caller = CallerIndex().classify("+12025550143", [], identity=Identity.from_pbx(attestation, result))
    return Policy().decide(HUMAN, rules.signals(caller))


@pytest.mark.parametrize("attestation, result", [("A", "success"), ("C", "success"), ("", "signature_validation"),
                                                 ("", "missing_identity_hdr"), ("", "TN-Validation-Failed")])
def test_off_by_default_nothing_changes(attestation, result):
    assert decide(CallerRules(), attestation, result) == decide(CallerRules(), "", "")


def test_configured_signals_raise_the_action_and_name_themselves():
    rules = CallerRules(attestation_failed_action="CHALLENGE", attestation_missing_action="CHALLENGE",
                        attestation_c_action="CHALLENGE")
    assert decide(rules, "", "signature_validation").reason == "HUMAN+ATTESTATION_FAILED"
    assert decide(rules, "", "No-TN-Validation").reason == "HUMAN+ATTESTATION_MISSING"
    assert decide(rules, "C", "success").reason == "HUMAN+ATTESTATION_C"
    assert decide(rules, "A", "success").action == "BRIDGE"
    assert decide(rules, "B", "success").action == "BRIDGE"
