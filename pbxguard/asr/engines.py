"""Speech recognisers, each behind `transcribe(samples) -> words`. One model per process, shared by the
worker threads (vosk's Model is thread-safe; a recogniser is made per call); pocketsphinx's decoder holds
per-utterance state, so each thread has its own (0.1-0.3 s to make, once)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pbxguard.asr import Word
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.audio.resample import resample, to_int16

FILLERS = re.compile(r"^(<s>|</s>|<sil>|\[noise\]|\[laugh\]|\+\+.*\+\+|\[.*\])$", re.IGNORECASE)


class EngineError(RuntimeError):
    """An engine that cannot start (not installed, a bad model path): a clear line, at startup."""


class Engine(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray) -> tuple[Word, ...]: ...


def _at(samples: np.ndarray, rate: int) -> bytes:
    """8 kHz s16 samples as the engine's rate wants them (16 kHz for the usual models), raw s16le."""
    x = samples if rate == SAMPLE_RATE else to_int16(resample(samples.astype(np.float64), SAMPLE_RATE, rate))
    return np.asarray(x, dtype="<i2").tobytes()


class PocketSphinx:
    """pocketsphinx's bundled en-US model (16 kHz, its own language model): needs no download. Poor on
    telephone-band speech (integration-facts.md): measured, not trusted blindly (README)."""

    name = "pocketsphinx"
    rate = 16000

    def __init__(self) -> None:
        try:
            import pocketsphinx  # noqa: F401
        except ImportError as exc:
            raise EngineError("transcript engine pocketsphinx is not installed: pip install 'pbxguard[asr]'") from exc
        self.local = threading.local()

    def _decoder(self) -> Any:
        if not hasattr(self.local, "decoder"):
            from pocketsphinx import Decoder

            self.local.decoder = Decoder(samprate=self.rate, loglevel="FATAL")
        return self.local.decoder

    def transcribe(self, samples: np.ndarray) -> tuple[Word, ...]:
        decoder = self._decoder()
        decoder.start_utt()
        decoder.process_raw(_at(samples, self.rate), full_utt=True)
        decoder.end_utt()
        frame_ms = 1000.0 / decoder.config["frate"]
        return tuple(Word(re.sub(r"\(\d+\)$", "", seg.word), seg.start_frame * frame_ms, seg.end_frame * frame_ms)
                     for seg in decoder.seg() or () if not FILLERS.match(seg.word))


_VOSK_MODELS: dict[str, Any] = {}
_VOSK_LOCK = threading.Lock()


class Vosk:
    """A vosk (Kaldi) model folder. 8 kHz audio is upsampled to the model's rate (its conf/mfcc.conf)."""

    name = "vosk"

    def __init__(self, model_path: str) -> None:
        try:
            import vosk
        except ImportError as exc:
            raise EngineError("transcript engine vosk is not installed: pip install 'pbxguard[asr]'") from exc
        folder = Path(model_path)
        if not (folder / "am").is_dir() and not (folder / "final.mdl").exists():
            raise EngineError(f"transcript.vosk_model {model_path!r} is not a vosk model folder (no am/)")
        mfcc = folder / "conf" / "mfcc.conf"
        found = re.search(r"--sample-frequency=(\d+)", mfcc.read_text()) if mfcc.exists() else None
        self.rate = int(found.group(1)) if found else 16000
        vosk.SetLogLevel(-1)
        with _VOSK_LOCK:  # one Model (~300 MB) per process, whoever asks
            key = str(folder.resolve())
            if key not in _VOSK_MODELS:
                try:
                    _VOSK_MODELS[key] = vosk.Model(key)
                except Exception as exc:  # vosk raises a bare Exception for a model it cannot load
                    raise EngineError(f"transcript.vosk_model {model_path!r}: vosk cannot load it ({exc})") from exc
            self.model = _VOSK_MODELS[key]
        self.recogniser = vosk.KaldiRecognizer

    def transcribe(self, samples: np.ndarray) -> tuple[Word, ...]:
        recogniser = self.recogniser(self.model, self.rate)
        recogniser.SetWords(True)
        recogniser.AcceptWaveform(_at(samples, self.rate))
        result = json.loads(recogniser.FinalResult())
        return tuple(Word(w["word"], 1000.0 * w["start"], 1000.0 * w["end"]) for w in result.get("result", ())
                     if not FILLERS.match(w["word"]))


def make_engine(name: str, vosk_model: str = "") -> Engine:
    if name == "pocketsphinx":
        return PocketSphinx()
    if name == "vosk":
        return Vosk(vosk_model)
    raise EngineError(f"transcript.engine {name!r}: pocketsphinx or vosk")
