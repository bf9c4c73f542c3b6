"""Channel variables: the contract between the daemon and the dialplan (README has the table).

PBXGUARD_* for pbxguard's own dialplan, and AMDSTATUS/AMDCAUSE in app_amd's vocabulary so that dialplans
written for AMD() work unchanged.
"""

from __future__ import annotations

import secrets

from pbxguard.policy.rules import Decision
from pbxguard.screener.verdict import Verdict

INBOUND, OUTBOUND = "inbound", "outbound"
FAIL_OPEN_VERDICT = "UNKNOWN"


def fail_open_variables(call_id: str, reason: str) -> dict[str, str]:
    """What the daemon sets when it has no verdict for a call it answered: bridge it."""
    return {"PBXGUARD_CALL_ID": call_id, "PBXGUARD_VERDICT": FAIL_OPEN_VERDICT, "PBXGUARD_REASON": reason,
            "AMDSTATUS": "NOTSURE", "AMDCAUSE": "TOOLONG-0", "PBXGUARD_ACTION": "BRIDGE"}


def amd_status(verdict: Verdict, decision: Decision) -> tuple[str, str]:
    """(AMDSTATUS, AMDCAUSE) as app_amd would word them.

    app_amd knows HUMAN, MACHINE, NOTSURE and HANGUP, with causes HUMAN-x-y, INITIALSILENCE-x-y,
    LONGGREETING-x-y, MAXWORDLENGTH-x-y and TOOLONG-x. Silence of either kind is what it calls an initial
    silence; a steady tone, a fax, music or noise is one endless "word" to it. Silence the policy bridges
    is not a machine to a dialer: NOTSURE, with the initial silence as its cause.
    """
    ev = verdict.evidence
    window = int(verdict.decided_ms)
    label = verdict.label
    if label == "human":
        return "HUMAN", f"HUMAN-{int(ev.get('speech_onset_ms', 0))}-{int(window - _speech_end(ev))}"
    if label == "machine":
        return "MACHINE", f"LONGGREETING-{int(ev.get('speech_ms', 0))}-{window}"
    if label in ("silence", "digital_silence"):
        return ("NOTSURE" if decision.action == "BRIDGE" else "MACHINE"), f"INITIALSILENCE-{window}-{window}"
    if label in ("fax", "tone", "music", "noise"):
        return "MACHINE", f"MAXWORDLENGTH-{window}-{window}"
    return "NOTSURE", f"TOOLONG-{window}"


def _speech_end(evidence: dict) -> float:
    utterances = evidence.get("utterances_ms") or []
    return utterances[-1][1] if utterances else 0.0


def channel_variables(verdict: Verdict, decision: Decision, call_id: str, mode: str = INBOUND) -> dict[str, str]:
    """Every variable the daemon sets on the channel, in the order it sets them (PBXGUARD_ACTION last,
    so a dialplan that sees it sees the rest)."""
    status, cause = amd_status(verdict, decision)
    variables = {
        "PBXGUARD_CALL_ID": call_id,
        "PBXGUARD_VERDICT": verdict.label.upper(),
        "PBXGUARD_CONFIDENCE": f"{verdict.confidence:.3f}",
        "PBXGUARD_REASON": decision.reason,
        "PBXGUARD_DECIDED_MS": str(int(verdict.decided_ms)),
        "PBXGUARD_MODEL": verdict.model,
        "AMDSTATUS": status,
        "AMDCAUSE": cause,
    }
    if decision.action == "CHALLENGE":
        variables["PBXGUARD_CHALLENGE_DIGIT"] = str(secrets.randbelow(10))
    if mode == OUTBOUND:
        for name, key in (("PBXGUARD_BEEP_MS", "beep_ms"), ("PBXGUARD_BEEP_END_MS", "beep_end_ms")):
            value = verdict.evidence.get(key)
            variables[name] = "" if value is None else str(int(value))
    variables["PBXGUARD_ACTION"] = decision.action
    return variables
