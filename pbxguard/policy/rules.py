"""Policy: from a verdict to an action on the call (BRIDGE, CHALLENGE or HANGUP).

Blocking a real caller is far worse than letting a spam call through, so the defaults hang up only on
what a deterministic detector proved (fax and call-progress tones with their cadence), challenge what
might be a machine or nobody, and bridge people and digital silence (a codec idling is not proof of spam).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pbxguard.screener.verdict import CLASSES, Verdict

ACTIONS = ("BRIDGE", "CHALLENGE", "HANGUP")  # in order of severity
UNPROVEN_HANGUP_FALLBACK = "CHALLENGE"


@dataclass(frozen=True)
class Rule:
    """What to do with one verdict: `action`; below `min_confidence`, the low-confidence action instead;
    with `require_proof`, a HANGUP that no detector proved is challenged instead."""

    action: str
    min_confidence: float = 0.0
    require_proof: bool = True


DEFAULT_RULES: dict[str, Rule] = {
    "human": Rule("BRIDGE"),
    "machine": Rule("CHALLENGE"),
    "silence": Rule("CHALLENGE"),
    "digital_silence": Rule("BRIDGE"),
    "fax": Rule("HANGUP"),
    "tone": Rule("HANGUP"),
    "music": Rule("CHALLENGE"),
    "noise": Rule("CHALLENGE"),
    "unknown": Rule("CHALLENGE"),
}


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str


class Policy:
    """Per-verdict rules (DEFAULT_RULES where a verdict has none of its own)."""

    def __init__(self, rules: Mapping[str, Rule] | None = None, low_confidence_action: str = "CHALLENGE") -> None:
        merged = {**DEFAULT_RULES, **(rules or {})}
        for label, rule in merged.items():
            if label not in CLASSES:
                raise ValueError(f"policy: unknown verdict {label!r}")
            if rule.action not in ACTIONS:
                raise ValueError(f"policy: {label}: action must be one of {ACTIONS}")
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
        reason = verdict.label.upper()
        if verdict.confidence < rule.min_confidence:
            return Decision(self.low_confidence_action, f"{reason}_LOW_CONFIDENCE")
        if rule.action == "HANGUP" and rule.require_proof and not verdict.proven:
            return Decision(UNPROVEN_HANGUP_FALLBACK, f"{reason}_UNPROVEN")
        return Decision(rule.action, reason)
