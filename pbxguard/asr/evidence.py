"""What a transcript says about the caller, and the one rule by which it may change a verdict.

Phrases are matched on whole words, lower case. The rule only ever makes an unsure human verdict a machine,
on a machine's words ("leave a message", "after the tone") with no person's words beside them; the policy
then challenges the call (never hangs up on it). The other way, a person's words making an unsure machine
human, was measured on the validation split and left out: with pocketsphinx all five such moves were
wrong (greetings begin with "hello"; the recogniser hears "hi" and "yeah" in prompts). A person's words
are evidence, and a veto on the machine's. Dead air, fax, tones and proven verdicts are never changed:
there the transcript is evidence only (the blank-call flag).
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
REVISABLE = ("human",)  # the verdicts the rule may move


def phrases_in(text: str, table: tuple[str, ...]) -> list[str]:
    words = " " + re.sub(r"[^a-z0-9' ]+", " ", text.lower()) + " "
    return [p for p in table if f" {p} " in re.sub(r"\s+", " ", words)]


def revised(verdict: Verdict, transcript: Transcript, store_words: bool = False) -> Verdict:
    """The verdict with the transcript's evidence, and its label moved if the rule says so."""
    machine, human = phrases_in(transcript.text, MACHINE_PHRASES), phrases_in(transcript.text, HUMAN_PHRASES)
    label = verdict.label
    if not verdict.proven and label in REVISABLE and machine and not human:
        label = "machine"
    evidence: dict[str, Any] = {"engine": transcript.engine, "words": len(transcript.words), "blank": transcript.blank,
                                "machine_phrases": machine, "human_phrases": human, "cpu_ms": round(transcript.cpu_ms, 1),
                                "revised_from": verdict.label if label != verdict.label else None}
    if store_words:
        evidence["text"] = transcript.text
        evidence["times_ms"] = [[round(w.start_ms), round(w.end_ms)] for w in transcript.words]
    return dataclasses.replace(verdict, label=label, evidence={**verdict.evidence, "transcript": evidence})
