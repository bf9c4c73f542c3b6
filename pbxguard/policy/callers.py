"""What the caller ID alone may add to a verdict's action: anonymous callers, bursts from one number, and
the STIR/SHAKEN attestation the PBX or carrier found (off unless configured)."""

from __future__ import annotations

from dataclasses import dataclass

from pbxguard.policy.callerid import Caller
from pbxguard.policy.identity import FAILED, MISSING, VERIFIED


@dataclass(frozen=True)
class CallerRules:
    """Signals for `Policy.decide`; an empty action adds nothing."""

    anonymous_action: str = ""
    max_calls_per_minute: int = 0
    rate_action: str = "CHALLENGE"
    attestation_failed_action: str = ""
    attestation_missing_action: str = ""
    attestation_c_action: str = ""

    def signals(self, caller: Caller) -> tuple[tuple[str, str], ...]:
        out = []
        if caller.anonymous and self.anonymous_action:
            out.append(("ANONYMOUS", self.anonymous_action))
        if self.max_calls_per_minute and caller.calls_last_minute > self.max_calls_per_minute:
            out.append(("CALL_RATE", self.rate_action))
        identity = caller.identity
        for reason, applies, action in (
                ("ATTESTATION_FAILED", identity.status == FAILED, self.attestation_failed_action),
                ("ATTESTATION_MISSING", identity.status == MISSING, self.attestation_missing_action),
                ("ATTESTATION_C", identity.status == VERIFIED and identity.attestation == "C", self.attestation_c_action)):
            if applies and action:
                out.append((reason, action))
        return tuple(out)
