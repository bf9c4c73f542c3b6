"""What the caller ID alone may add to a verdict's action: anonymous callers and bursts from one number."""

from __future__ import annotations

from dataclasses import dataclass

from pbxguard.policy.callerid import Caller


@dataclass(frozen=True)
class CallerRules:
    """Signals for `Policy.decide`; an empty action adds nothing."""

    anonymous_action: str = ""
    max_calls_per_minute: int = 0
    rate_action: str = "CHALLENGE"

    def signals(self, caller: Caller) -> tuple[tuple[str, str], ...]:
        out = []
        if caller.anonymous and self.anonymous_action:
            out.append(("ANONYMOUS", self.anonymous_action))
        if self.max_calls_per_minute and caller.calls_last_minute > self.max_calls_per_minute:
            out.append(("CALL_RATE", self.rate_action))
        return tuple(out)
