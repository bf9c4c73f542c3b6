"""The Screener: deterministic detectors decide what they can prove, the learned stages decide the rest.

Load it once per process. `screen(samples)` classifies a whole window; `stream()` gives a per-call object
whose `feed(frame)` returns a verdict as soon as one is certain (a fax CNG burst, a busy cadence) and whose
`finish()` decides at the end of the window or when the audio stops.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from pbxguard.audio.format import FRAME, SAMPLE_RATE, SAMPLES_PER_MS, samples_for
from pbxguard.features import speech, tones
from pbxguard.features.analysis import Analysis, analyse, frame_view
from pbxguard.features.layout import WINDOW_MS
from pbxguard.screener.estimators import ABSTAIN, HUMAN_CLASS
from pbxguard.screener.forest import CompiledForest
from pbxguard.screener.persist import DEFAULT_MODELS_DIR, load_pinned
from pbxguard.screener.verdict import CLASSES, Verdict

PROVEN_CONFIDENCE = 0.99
BEEP_CONFIDENCE = 0.9  # a greeting with its beep: a detector's finding, not a proof (it is challenged, not hung up)
EARLY_CHECK_FRAMES = 10  # look for a proof every 200 ms of audio
# Past the window, while a fax tone is sounding: enough for a CNG burst (500 ms) that the window's end cut
# to end and be confirmed. The learned stages still see only the window.
LISTEN_ON_MS = 700


def _one_hot(label: str) -> dict[str, float]:
    return {c: float(c == label) for c in CLASSES}


class Screener:
    def __init__(self, models_dir: str | Path = DEFAULT_MODELS_DIR, window_ms: int = WINDOW_MS,
                 manifest_sha256: str = "") -> None:
        model, manifest = load_pinned(Path(models_dir), manifest_sha256)
        self.model = model
        self.version: str = manifest.get("model_version", "unversioned")
        self.window_ms = window_ms
        self.window_samples = window_ms * SAMPLES_PER_MS
        self._deadair = CompiledForest(model.classifier.deadair_)
        self._opening = CompiledForest(model.classifier.opening_)
        self._synthetic = CompiledForest(model.synthetic) if model.synthetic is not None else None
        self._learned = [str(c) for c in model.classifier.classes_]

    def screen(self, samples: np.ndarray) -> Verdict:
        """Classify int16 8 kHz samples as a call would be: the stream fed frame by frame (so the same
        proofs at the same moments), beyond the window only while a fax tone is sounding."""
        stream = self.stream()
        x = np.asarray(samples, dtype=np.int16)
        for start in range(0, len(x), FRAME):
            verdict = stream.feed(x[start : start + FRAME])
            if verdict is not None:
                return verdict
        return stream.finish()

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
        if label in (HUMAN_CLASS, ABSTAIN, "machine") and self._synthetic is not None:
            synthetic = float(self._synthetic.predict_proba(analysis.opening_vector)[1])
            evidence["synthetic_voice"] = round(synthetic, 4)
            if label != "machine" and synthetic >= self.model.synthetic_threshold:
                label, confidence = "machine", synthetic  # a robocall's voice, whatever the live-caller cost says
        if label in (HUMAN_CLASS, ABSTAIN) and analysis.beep is not None and analysis.talk.utterances:
            # speech, then one steady tone: a voicemail beep. The cost that keeps long live answers bridged
            # would let every greeting through; a person does not beep (4 of 1,635 corpus callers did).
            label, confidence = "machine", BEEP_CONFIDENCE
        return Verdict(label, confidence, scores, evidence, analysis.window_ms, self.version)


class ScreeningStream:
    """One call's audio as it arrives. Not thread-safe: one stream per call."""

    def __init__(self, screener: Screener, window_samples: int) -> None:
        self.screener = screener
        self.window_samples = window_samples
        self.limit = window_samples  # raised by LISTEN_ON_MS while a fax tone sounds at the window's end
        self._chunks: list[np.ndarray] = []
        self._received = 0
        self._labelled = 0  # samples already split into labelled tone frames
        self._labels: list[np.ndarray] = []
        self._shares: list[np.ndarray] = []
        self._levels: list[np.ndarray] = []
        self.verdict: Verdict | None = None

    @property
    def samples(self) -> np.ndarray:
        """The audio received so far (the window, and what was listened to past it)."""
        return self._samples()

    @property
    def extended(self) -> bool:
        return self.limit > self.window_samples

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
        room = self.limit - self._received
        frame = np.asarray(frame, dtype=np.int16)[:room]
        self._chunks.append(frame)
        self._received += len(frame)
        # Frames are labelled, and proofs looked for, in whole blocks of `every` frames counted from the
        # start of the audio, so the same audio gives the same checks however it was chunked.
        every = 1 if self.extended else EARLY_CHECK_FRAMES  # past the window every frame counts
        complete = (self._received - self._labelled) // FRAME
        if self._received < self.limit:
            complete -= complete % every
        if complete or self._received >= self.limit:
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
                return self.finish(events)
            if self._received >= self.limit and not self.extended and tones.fax_sounding(labels):
                self.limit += samples_for(LISTEN_ON_MS)
                return None
        if self._received >= self.limit:
            return self.finish()
        return None

    def finish(self, events: list[tones.ToneEvent] | None = None) -> Verdict:
        """Decide on what has arrived (the whole window, or less if the audio stopped early); `events` are
        proofs found over everything received, past the window too."""
        if self.verdict is None:
            samples = self._samples()[: self._labelled] if self._labelled else self._samples()
            window = min(len(samples), self.window_samples)
            frames = None
            if self._labels:
                count = window // FRAME
                labels, shares, levels = (np.concatenate(part)[:count] for part in (self._labels, self._shares, self._levels))
                frames = (labels, shares, levels)
            analysis = analyse(samples[:window], frames)
            if events and self.extended:
                analysis = replace(analysis, tone_events=tuple(events))
            self.verdict = self.screener.decide(analysis)
        return self.verdict
