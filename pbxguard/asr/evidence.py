"""What a transcript says about the caller, and the one rule by which it may change a verdict.

Phrases are matched on whole words, lower case. The rule only ever moves an unsure verdict between human
and machine, and only on a phrase of one side with none of the other: a machine's words ("leave a
message", "after the tone") make an unsure human a machine (the policy challenges it, never hangs up on
it); a person's ("hello", "speaking") make an unsure machine a human. Dead air, fax, tones and proven
verdicts are never changed: there the transcript is evidence only (the blank-call flag).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pbxguard.asr import Transcript
from pbxguard.screener.verdict import Verdict

MACHINE_PHRASES = (
    "leave a message", "leave your message", "leave me a message", "after the tone", "after the beep", "at the tone",
    "not available", "unavailable", "is not available", "press one", "press 1", "please press", "your call is important",
    "voicemail", "voice mail", "mailbox", "record your message", "thank you for calling", "office hours",
    "the number you have dialed", "is not in service",
)
HUMAN_PHRASES = ("hello", "hallo", "hi", "hey", "yes", "yeah", "speaking", "this is", "who is this", "who's this")
SWITCHABLE = ("human", "machine")


def phrases_in(text: str, table: tuple[str, ...]) -> list[str]:
    words = " " + re.sub(r"[^a-z0-9' ]+", " ", text.lower()) + " "
    return [p for p in table if f" {p} " in re.sub(r"\s+", " ", words)]


def revised(verdict: Verdict, transcript: Transcript, store_words: bool = False) -> Verdict:
    """The verdict with the transcript's evidence, and its label moved if the rule says so."""
    machine, human = phrases_in(transcript.text, MACHINE_PHRASES), phrases_in(transcript.text, HUMAN_PHRASES)
    label = verdict.label
    if not verdict.proven and label in SWITCHABLE:
        if label == "human" and machine and not human:
            label = "machine"
        elif label == "machine" and human and not machine:
            label = "human"
    evidence: dict[str, Any] = {"engine": transcript.engine, "words": len(transcript.words), "blank": transcript.blank,
                                "machine_phrases": machine, "human_phrases": human, "cpu_ms": round(transcript.cpu_ms, 1),
                                "revised_from": verdict.label if label != verdict.label else None}
    if store_words:
        evidence["text"] = transcript.text
        evidence["times_ms"] = [[round(w.start_ms), round(w.end_ms)] for w in transcript.words]
    return dataclasses.replace(verdict, label=label, evidence={**verdict.evidence, "transcript": evidence})
