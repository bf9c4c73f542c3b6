"""What the screener says about a call opening. Lowercase in JSON, uppercase in channel variables."""

from __future__ import annotations

from dataclasses import dataclass, field

CLASSES = ("human", "machine", "silence", "digital_silence", "fax", "tone", "music", "noise", "unknown")
UNKNOWN = "unknown"  # the screener abstains: no class is certain enough
DETECTED_ONLY = ("digital_silence",)  # decided by a detector alone, never by the learned stages
LABELLED_CLASSES = tuple(c for c in CLASSES if c != UNKNOWN)  # what a clip of audio can be labelled
LEARNED_CLASSES = tuple(c for c in LABELLED_CLASSES if c not in DETECTED_ONLY)


@dataclass(frozen=True)
class Verdict:
    label: str
    confidence: float
    scores: dict[str, float]  # one per class in CLASSES
    evidence: dict = field(default_factory=dict)
    decided_ms: float = 0.0  # audio time at which the verdict was certain
    model: str = ""
    proven: bool = False  # decided by a deterministic detector (digital silence, tone or fax with cadence)

    def as_dict(self) -> dict:
        return {
            "verdict": self.label,
            "confidence": round(self.confidence, 4),
            "decided_ms": self.decided_ms,
            "proven": self.proven,
            "model": self.model,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "evidence": self.evidence,
        }
