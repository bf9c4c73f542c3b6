"""The transcript stage: words in the opening, beside the hot path (issue "Signals beyond the first two
seconds": SPOOFex's blank-call check, and the words that give a machine away or confirm a person).

It never runs unless configured (`transcript.enabled`), and then only where it can change the decision: a
human verdict below `transcript.unsure_below` confidence (a machine's words make it a machine), and dead air (the blank-call check:
evidence only). The engines (`engines.py`): pocketsphinx with its bundled en-US model (no download) or
vosk with a model folder a site downloads. Their words become evidence (`evidence.py`); `stage.py` runs
them in worker threads off the event loop within a wall-time budget, and the verdict goes on without them
when they are late. Transcripts are personal data: the words reach the call log only with
`transcript.store_words`, and never the log.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    engine: str
    cpu_ms: float

    @property
    def blank(self) -> bool:
        """No word at all: SPOOFex's blank call."""
        return not self.words

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)
