"""The Screener: deterministic detectors decide what they can prove, the learned stages decide the rest.

Load it once per process. `screen(samples)` classifies a whole window; `stream()` gives a per-call object
whose `feed(frame)` returns a verdict as soon as one is certain (a fax CNG burst, a busy cadence) and whose
`finish()` decides at the end of the window or when the audio stops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pbxguard.audio.format import FRAME, SAMPLE_RATE, SAMPLES_PER_MS
from pbxguard.features import speech, tones
from pbxguard.features.analysis import Analysis, analyse, frame_view
from pbxguard.features.layout import WINDOW_MS
from pbxguard.screener.estimators import ABSTAIN
from pbxguard.screener.forest import CompiledForest
from pbxguard.screener.persist import DEFAULT_MODELS_DIR, load_pinned
from pbxguard.screener.verdict import CLASSES, Verdict

PROVEN_CONFIDENCE = 0.99
EARLY_CHECK_FRAMES = 10  # look for a proof every 200 ms of audio


def _one_hot(label: str) -> dict[str, float]:
    return {c: float(c == label) for c in CLASSES}


class Screener:
    def __init__(self, models_dir: str | Path = DEFAULT_MODELS_DIR, window_ms: int = WINDOW_MS) -> None:
        model, manifest = load_pinned(Path(models_dir))
        self.model = model
        self.version: str = manifest.get("model_version", "unversioned")
        self.window_ms = window_ms
        self.window_samples = window_ms * SAMPLES_PER_MS
        self._deadair = CompiledForest(model.classifier.deadair_)
        self._opening = CompiledForest(model.classifier.opening_)
        self._synthetic = CompiledForest(model.synthetic) if model.synthetic is not None else None
        self._learned = [str(c) for c in model.classifier.classes_]

    def screen(self, samples: np.ndarray) -> Verdict:
        """Classify the first window of int16 8 kHz samples."""
        return self.decide(analyse(np.asarray(samples)[: self.window_samples]))

    def stream(self, window_ms: int | None = None) -> ScreeningStream:
        """A per-call stream; `window_ms` may shorten (never lengthen) the window the models were made for."""
        window = min(window_ms or self.window_ms, self.window_ms)
        return ScreeningStream(self, window * SAMPLES_PER_MS)

    def decide(self, analysis: Analysis) -> Verdict:
        evidence = analysis.evidence()
        if analysis.levels.digital_silence:
            return Verdict("digital_silence", 1.0, _one_hot("digital_silence"), evidence, analysis.window_ms, self.version, proven=True)
        if analysis.tone_events:
            first = analysis.tone_events[0]
            return Verdict(first.verdict, PROVEN_CONFIDENCE, _one_hot(first.verdict), evidence, first.decided_ms, self.version, proven=True)
        p_deadair = self._deadair.predict_proba(analysis.deadair_vector)[1]
        p_opening = self._opening.predict_proba(analysis.opening_vector)
        learned = self.model.classifier.combine(np.array([p_deadair]), p_opening[None, :])[0]
        scores = {c: 0.0 for c in CLASSES} | {c: float(s) for c, s in zip(self._learned, learned)}
        label = self.model.rule.decide(scores)
        confidence = scores[label] if label != ABSTAIN else float(learned.max())
        if label == "machine" and self._synthetic is not None:
            evidence["synthetic_voice"] = round(float(self._synthetic.predict_proba(analysis.opening_vector)[1]), 4)
        return Verdict(label, confidence, scores, evidence, analysis.window_ms, self.version)


class ScreeningStream:
    """One call's audio as it arrives. Not thread-safe: one stream per call."""

    def __init__(self, screener: Screener, window_samples: int) -> None:
        self.screener = screener
        self.window_samples = window_samples
        self._chunks: list[np.ndarray] = []
        self._received = 0
        self._labelled = 0  # samples already split into labelled tone frames
        self._labels: list[np.ndarray] = []
        self._shares: list[np.ndarray] = []
        self._levels: list[np.ndarray] = []
        self.verdict: Verdict | None = None

    @property
    def samples(self) -> np.ndarray:
        """The audio received so far (at most the window)."""
        return self._samples()

    @property
    def received_ms(self) -> float:
        return self._received * 1000.0 / SAMPLE_RATE

    def _samples(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, dtype=np.int16)

    def feed(self, frame: np.ndarray) -> Verdict | None:
        """Add int16 samples (any length); returns the verdict once certain, then keeps returning it."""
        if self.verdict is not None:
            return self.verdict
        room = self.window_samples - self._received
        frame = np.asarray(frame, dtype=np.int16)[:room]
        self._chunks.append(frame)
        self._received += len(frame)
        complete = (self._received - self._labelled) // FRAME
        if complete >= EARLY_CHECK_FRAMES or self._received >= self.window_samples:
            samples = self._samples()
            new = frame_view(samples[self._labelled : self._labelled + complete * FRAME])
            labels, shares, levels = tones.label_frames(new)
            self._labels.append(labels)
            self._shares.append(shares)
            self._levels.append(levels)
            self._labelled += complete * FRAME
            labels, levels = np.concatenate(self._labels), np.concatenate(self._levels)
            events = tones.prove_tones(labels, levels, samples[: self._labelled],
                                       lambda: speech.talk_pattern(levels, labels).onset_ms)
            if events:
                return self.finish()
        if self._received >= self.window_samples:
            return self.finish()
        return None

    def finish(self) -> Verdict:
        """Decide on what has arrived (the whole window, or less if the audio stopped early)."""
        if self.verdict is None:
            samples = self._samples()[: self._labelled] if self._labelled else self._samples()
            frames = (np.concatenate(self._labels), np.concatenate(self._shares), np.concatenate(self._levels)) if self._labels else None
            self.verdict = self.screener.decide(analyse(samples, frames))
        return self.verdict
