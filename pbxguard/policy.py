"""Policy: from a verdict to an action on the call (BRIDGE, CHALLENGE or HANGUP).

Blocking a real caller is far worse than letting a spam call through, so the defaults hang up only on
what a deterministic detector proved (fax and call-progress tones with their cadence), challenge what
might be a machine or nobody, and bridge people and digital silence (a codec idling is not proof of spam).
"""

from __future__ import annotations

from dataclasses import dataclass

from pbxguard.verdict import CLASSES, Verdict

ACTIONS = ("BRIDGE", "CHALLENGE", "HANGUP")  # in order of severity

DEFAULT_RULES: dict[str, dict] = {
    "human": {"action": "BRIDGE"},
    "machine": {"action": "CHALLENGE"},
    "silence": {"action": "CHALLENGE"},
    "digital_silence": {"action": "BRIDGE"},
    "fax": {"action": "HANGUP", "require_proof": True},
    "tone": {"action": "HANGUP", "require_proof": True},
    "music": {"action": "CHALLENGE"},
    "noise": {"action": "CHALLENGE"},
    "unknown": {"action": "CHALLENGE"},
}
UNPROVEN_HANGUP_FALLBACK = "CHALLENGE"


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


class Policy:
    """Per-verdict rules: `action`, optional `min_confidence` (below it: `low_confidence_action`),
    and `require_proof` for HANGUP (an unproven verdict is challenged instead)."""

    def __init__(self, rules: dict[str, dict] | None = None, low_confidence_action: str = "CHALLENGE") -> None:
        merged = {k: dict(v) for k, v in DEFAULT_RULES.items()}
        for label, rule in (rules or {}).items():
            if label not in CLASSES:
                raise ValueError(f"policy: unknown verdict {label!r}")
            if rule.get("action", merged[label]["action"]) not in ACTIONS:
                raise ValueError(f"policy: {label}: action must be one of {ACTIONS}")
            merged[label].update(rule)
        self.rules = merged
        self.low_confidence_action = low_confidence_action

    def decide(self, verdict: Verdict, signals: tuple[tuple[str, str], ...] = ()) -> Decision:
        """The verdict's action, raised (never lowered) by caller signals: (reason, action) pairs such as
        ("ANONYMOUS", "CHALLENGE") from the caller-ID settings."""
        decision = self._by_verdict(verdict)
        for reason, action in signals:
            if ACTIONS.index(action) > ACTIONS.index(decision.action):
                decision = Decision(action, f"{decision.reason}+{reason}")
        return decision

    def _by_verdict(self, verdict: Verdict) -> Decision:
        rule = self.rules[verdict.label]
        action = rule["action"]
        reason = verdict.label.upper()
        if verdict.confidence < rule.get("min_confidence", 0.0):
            return Decision(self.low_confidence_action, f"{reason}_LOW_CONFIDENCE")
        if action == "HANGUP" and rule.get("require_proof", True) and not verdict.proven:
            return Decision(UNPROVEN_HANGUP_FALLBACK, f"{reason}_UNPROVEN")
        return Decision(action, reason)
