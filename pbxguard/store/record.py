"""The call record: one row of the call log, as the screening service writes it and every reader sees it.

Its fields are the call log's columns (the schema's migrations create exactly these), so a field added
here needs a migration in `store.calllog`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    status: str  # screened, abandoned, no_audio, agi_error, denied, allowed
    started: float = 0.0  # unix time; set when recorded if 0
    channel: str = ""
    uniqueid: str = ""
    caller: str = ""  # E.164 when valid, else what the PBX sent
    called: str = ""
    mode: str = ""  # inbound or outbound
    verdict: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    action: str | None = None
    reason: str | None = None
    decided_ms: float | None = None
    model: str | None = None
    audio_ms: float | None = None
    speech_ms: float | None = None
    capture: str | None = None  # path of the saved opening
    challenge: str | None = None  # PASS or FAIL, reported after the Turing test
    pressed: str | None = None
    label: str | None = None  # the class for retraining: from the challenge or set by hand
    error: str = ""
    evidence: dict[str, Any] | None = None  # the verdict's evidence: levels, tones with times, speech, beep
    identity: dict[str, str] | None = None  # STIR/SHAKEN: status, attestation, the verifier's word (policy.identity)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # not stored: e.g. the queue

    def with_(self, **changes: Any) -> CallRecord:
        return replace(self, **changes)

    def row(self) -> list[Any]:
        """Values in COLUMNS order, the JSON_COLUMNS as JSON text."""
        values = asdict(self)
        for name in JSON_COLUMNS:
            values[name] = json.dumps(values[name], sort_keys=True) if values[name] is not None else None
        # PostgreSQL refuses NUL in text, and a caller ID can carry one.
        return [v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in (values[c] for c in COLUMNS)]

    @classmethod
    def from_row(cls, row: tuple) -> CallRecord:
        values = dict(zip(COLUMNS, row))
        for name in JSON_COLUMNS:
            values[name] = json.loads(values[name]) if values[name] else None
        values["error"] = values["error"] or ""
        for text in ("channel", "uniqueid", "caller", "called", "mode"):
            values[text] = values[text] or ""
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in COLUMNS}


@dataclass(frozen=True)
class ChallengeOutcome:
    """The Turing test's result for a screened call, as the dialplan reported it."""

    call_id: str
    outcome: str  # PASS or FAIL
    pressed: str


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord) if f.name != "extra")
JSON_COLUMNS = ("scores", "evidence", "identity")
