"""The Screener: deterministic detectors decide what they can prove, the learned stages decide the rest.

Load it once per process. `screen(samples)` classifies a whole window; `stream()` gives a per-call object
whose `feed(frame)` returns a verdict as soon as one is certain (a fax CNG burst, a busy cadence) and whose
`finish()` decides at the end of the window or when the audio stops.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from pbxguard.audio.format import CHECK_MS, FRAME, FRAME_MS, SAMPLE_RATE, SAMPLES_PER_MS, samples_for
from pbxguard.features import speech, tones
from pbxguard.features.analysis import Analysis, analyse, beep_after_ms, find_beep, frame_view
from pbxguard.features.layout import WINDOW_MS
from pbxguard.screener.compiled import CompiledModel
from pbxguard.screener.decision import ABSTAIN, DIGITAL_SILENCE, HUMAN_CLASS
from pbxguard.screener.persist import verified
from pbxguard.screener.verdict import CLASSES, Verdict
from pbxguard.shipped import MODELS_DIR

PROVEN_CONFIDENCE = 0.99
BEEP_CONFIDENCE = 0.9  # a greeting with its beep: a detector's finding, not a proof (it is challenged, not hung up)
CHECK_FRAMES = int(CHECK_MS / FRAME_MS)  # look for a proof, and at the early horizons, every CHECK_MS of audio
# Past the window, while a fax tone is sounding: enough for a CNG burst (500 ms) that the window's end cut
# to end and be confirmed. The learned stages still see only the window.
LISTEN_ON_MS = 700
# An outbound call (AMD) may listen longer, up to this, for a greeting's beep: after a verdict a greeting can
# get (with speech in it), until the beep has ended; the dialer then speaks after the beep.
BEEP_WINDOW_MAX_MS = 5000
BEEP_LISTEN_LABELS = ("machine", "music", "noise", ABSTAIN)


def one_blas_thread() -> None:
    """Cap BLAS at one thread for this process. The engine's matrices are small (a 65x65 Gram at most): a second
    OpenBLAS thread costs more than it gives, and takes the core another call needs. The commands and the
    daemon set the same limit in their environment; a program using the Screener as a library gets it here."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _one_hot(label: str) -> dict[str, float]:
    return {c: float(c == label) for c in CLASSES}


class Screener:
    def __init__(self, models_dir: str | Path = MODELS_DIR, window_ms: int = WINDOW_MS,
                 manifest_sha256: str = "") -> None:
        path, manifest = verified(Path(models_dir), manifest_sha256)
        self._use(CompiledModel.load(path), manifest.get("model_version", "unversioned"), window_ms)

    @classmethod
    def from_model(cls, model: CompiledModel, version: str = "unsaved", window_ms: int = WINDOW_MS) -> Screener:
        """A screener on a model in memory (training tunes the early decisions on it before it is written)."""
        screener = cls.__new__(cls)
        screener._use(model, version, window_ms)
        return screener

    def _use(self, model: CompiledModel, version: str, window_ms: int) -> None:
        one_blas_thread()
        self.model = model
        self.version = version
        self.window_ms = window_ms
        self.window_samples = window_ms * SAMPLES_PER_MS
        self.early = model.early

    def screen(self, samples: np.ndarray, beep_window_ms: int = 0) -> Verdict:
        """Classify int16 8 kHz samples as a call would be: the stream fed frame by frame (so the same
        proofs at the same moments), beyond the window only while a fax tone is sounding or (with
        `beep_window_ms`, as an outbound call) while a greeting's beep may come."""
        stream = self.stream(beep_window_ms=beep_window_ms)
        x = np.asarray(samples, dtype=np.int16)
        for start in range(0, len(x), FRAME):
            verdict = stream.feed(x[start : start + FRAME])
            if verdict is not None:
                return verdict
        return stream.finish()

    def stream(self, window_ms: int | None = None, beep_window_ms: int = 0) -> ScreeningStream:
        """A per-call stream; `window_ms` may shorten (never lengthen) the window the models were made for;
        `beep_window_ms` (outbound calls, at most BEEP_WINDOW_MAX_MS) is how far to listen for a greeting's beep."""
        window = min(window_ms or self.window_ms, self.window_ms)
        return ScreeningStream(self, window * SAMPLES_PER_MS, self.beep_samples(beep_window_ms))

    @staticmethod
    def beep_samples(beep_window_ms: int) -> int:
        """How far, in samples, a stream asked for `beep_window_ms` listens for a beep."""
        return min(beep_window_ms, BEEP_WINDOW_MAX_MS) * SAMPLES_PER_MS

    def decide(self, analysis: Analysis) -> Verdict:
        evidence = analysis.evidence()
        if analysis.levels.digital_silence:
            return Verdict("digital_silence", 1.0, _one_hot("digital_silence"), evidence, analysis.window_ms, self.version, proven=True)
        if analysis.tone_events:
            first = analysis.tone_events[0]
            return Verdict(first.verdict, PROVEN_CONFIDENCE, _one_hot(first.verdict), evidence, first.decided_ms, self.version, proven=True)
        scores = self.model.classifier.scores(analysis)
        label = self.model.rule.decide(scores)
        confidence = scores[label] if label != ABSTAIN else max(scores.values())
        if label in (HUMAN_CLASS, ABSTAIN, "machine"):
            synthetic = self._synthetic_voice(analysis, evidence)
            if label != "machine" and synthetic >= self.model.synthetic_threshold:
                label, confidence = "machine", synthetic  # a robocall's voice, whatever the live-caller cost says
        if label in (HUMAN_CLASS, ABSTAIN) and analysis.beep is not None and analysis.talk.utterances:
            # speech, then one steady tone: a voicemail beep. The cost that keeps long live answers bridged
            # would let every greeting through; a person does not beep (4 of 1,635 corpus callers did).
            label, confidence = "machine", BEEP_CONFIDENCE
        return Verdict(label, confidence, scores, evidence, analysis.window_ms, self.version)

    def prefix_answers(self, samples: np.ndarray) -> list[str]:
        """Each early horizon's answer on its prefix of `samples`, whatever its score (accuracy by horizon)."""
        answers = []
        for k, horizon in enumerate(self.early.horizons_ms if self.early is not None else ()):
            analysis = analyse(np.asarray(samples, dtype=np.int16)[: samples_for(horizon)])
            scores = self.model.early_classifiers[k].scores(analysis)
            answers.append(DIGITAL_SILENCE if analysis.levels.digital_silence else max(scores, key=lambda c: scores[c]))
        return answers

    def decide_early(self, k: int, analysis: Analysis) -> Verdict | None:
        """The answer at early horizon `k` on the audio so far (`analysis` of that prefix), or None."""
        assert self.early is not None
        digital = analysis.levels.digital_silence
        scores = self.model.early_classifiers[k].scores(analysis) if not digital else _one_hot(DIGITAL_SILENCE)
        label = self.early.decide(k, scores, digital)
        if label is None:
            return None
        evidence = analysis.evidence()
        if label in (HUMAN_CLASS, "machine"):
            if self._synthetic_voice(analysis, evidence) >= self.model.synthetic_threshold and label == HUMAN_CLASS:
                return None  # it may be a robocall's voice: the whole window decides
        return Verdict(label, scores[label], scores, evidence, analysis.window_ms, self.version, proven=digital)

    def _synthetic_voice(self, analysis: Analysis, evidence: dict) -> float:
        """P(synthetic voice) of a speech opening, also put in `evidence`; 0 without a synthetic-voice stage."""
        if self.model.synthetic is None:
            return 0.0
        synthetic = float(self.model.synthetic.predict_proba(analysis.opening_vector)[1])
        evidence["synthetic_voice"] = round(synthetic, 4)
        return synthetic


class ScreeningStream:
    """One call's audio as it arrives. Not thread-safe: one stream per call."""

    def __init__(self, screener: Screener, window_samples: int, beep_samples: int = 0) -> None:
        self.screener = screener
        self.window_samples = window_samples
        self.limit = window_samples  # raised by LISTEN_ON_MS while a fax tone sounds at the window's end
        self._greeting: Verdict | None = None  # the verdict that waits for its beep
        self._beep_checked = 0
        # One buffer for all the audio this stream may take, and one for its frames' tone labels and levels
        # (frames past the window and LISTEN_ON_MS are only searched for a beep): each frame is copied in once
        # and labelled once.
        labelled = window_samples + samples_for(LISTEN_ON_MS)
        self._audio = np.zeros(labelled, dtype=np.int16)
        self.listen_for_beep(beep_samples)
        self._received = 0
        self._labelled = 0  # samples already split into labelled tone frames
        self._labels = np.zeros(labelled // FRAME, dtype=np.intp)
        self._levels = np.zeros(labelled // FRAME)
        self._prover = tones.ToneProver()
        self._horizon = 0  # the next early horizon to answer at
        self.verdict: Verdict | None = None

    def listen_for_beep(self, beep_samples: int) -> None:
        """How far, in samples, a greeting's verdict waits for its beep (past the window only); an outbound
        session that adopts a relay's early audio sets it after the stream has begun."""
        self.beep_samples = beep_samples
        if beep_samples > len(self._audio):
            self._audio = np.concatenate((self._audio, np.zeros(beep_samples - len(self._audio), dtype=np.int16)))

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

    @property
    def listening(self) -> bool:
        """A verdict is in, and the stream listens on for its beep."""
        return self._greeting is not None

    @property
    def most_ms(self) -> float:
        """The most audio this stream may take: the window, or the beep window."""
        return max(self.window_samples, self.beep_samples) * 1000.0 / SAMPLE_RATE

    def _samples(self) -> np.ndarray:
        return self._audio[: self._received]

    def _append(self, frame: np.ndarray) -> None:
        self._audio[self._received : self._received + len(frame)] = frame
        self._received += len(frame)

    def feed(self, frame: np.ndarray) -> Verdict | None:
        """Add int16 samples (any length); returns the verdict once certain, then keeps returning it."""
        if self.verdict is not None:
            return self.verdict
        frame = np.asarray(frame, dtype=np.int16)
        if self._greeting is not None:
            return self._listen(frame)
        room = self.limit - self._received
        frame, rest = frame[:room], frame[room:]
        self._append(frame)
        # Frames are labelled, and proofs and early answers looked for, block by block of CHECK_FRAMES
        # counted from the start of the audio, so the same audio gives the same checks however it was chunked.
        while True:
            every = 1 if self.extended else CHECK_FRAMES  # past the window every frame counts
            pending = (self._received - self._labelled) // FRAME
            at_limit = self._received >= self.limit
            if pending < every and not (at_limit and pending):
                break
            verdict = self._check(min(pending, every))
            if verdict is not None:
                return self._answered(verdict, rest)
        if self._received >= self.limit:
            if not self.extended and tones.fax_sounding(self._frames(self._labelled // FRAME)[0]):
                self.limit += samples_for(LISTEN_ON_MS)
                return None
            return self._answered(self.finish(), rest)
        return None

    def _answered(self, verdict: Verdict, rest: np.ndarray) -> Verdict | None:
        """The verdict, or None while listening on for a greeting's beep (`rest`: the audio past the window)."""
        after = beep_after_ms(verdict.evidence)
        if self._received >= self.beep_samples or verdict.proven or verdict.label not in BEEP_LISTEN_LABELS or after is None:
            return verdict
        self.verdict, self._greeting = None, verdict
        self._beep_checked = self._received - self._received % (CHECK_FRAMES * FRAME)
        return self._listen(rest)

    def _listen(self, frame: np.ndarray) -> Verdict | None:
        """Past the verdict: look for the beep every CHECK_FRAMES of audio (counted from the start, as the
        checks before), and answer once it has ended or the beep window is over."""
        assert self._greeting is not None
        self._append(frame[: self.beep_samples - self._received])
        after = beep_after_ms(self._greeting.evidence)
        block = CHECK_FRAMES * FRAME
        while self._beep_checked + block <= self._received:
            self._beep_checked += block
            beep = find_beep(self._samples()[: self._beep_checked], after)
            if beep is not None and _ended(beep, self._beep_checked):
                return self._heard(beep, self._beep_checked)
        if self._received >= self.beep_samples:
            return self._heard(find_beep(self._samples(), after), self._received)
        return None

    def _heard(self, beep: tones.Beep | None, heard: int) -> Verdict:
        """The greeting's verdict with its beep: onset, end (if it ended in what was heard), and a machine
        whatever the window said (a greeting and its beep are a voicemail's, never music)."""
        greeting, self._greeting = self._greeting, None
        assert greeting is not None
        evidence = {**greeting.evidence, "beep_ms": beep.onset_ms if beep else None,
                    "beep_end_ms": beep.onset_ms + beep.duration_ms if beep and _ended(beep, heard) else None,
                    "listened_ms": heard * 1000.0 / SAMPLE_RATE}
        verdict = replace(greeting, evidence=evidence)
        if beep is not None and greeting.label != "machine":
            verdict = replace(verdict, label="machine", confidence=BEEP_CONFIDENCE, decided_ms=beep.onset_ms + tones.BEEP_MIN_MS)
        self.verdict = verdict
        return verdict

    def _check(self, block: int) -> Verdict | None:
        """Label the next `block` frames, then look for a proof over all of them and answer at the horizons passed."""
        samples = self._samples()
        first = self._labelled // FRAME
        self._labels[first : first + block], self._levels[first : first + block] = tones.label_frames(
            frame_view(samples[self._labelled : self._labelled + block * FRAME]))
        self._labelled += block * FRAME
        labels, levels = self._frames(first + block)
        events = self._prover.prove(labels, levels, samples[: self._labelled], lambda: speech.talk_pattern(levels, labels).onset_ms)
        if events:
            return self.finish(events)
        early = self.screener.early
        while early is not None and self._horizon < len(early.horizons_ms) and not self.extended:
            end = samples_for(early.horizons_ms[self._horizon])
            if end > self._labelled or end >= self.window_samples:
                break
            # proofs were looked for over exactly these frames (and none found) only if the horizon ends this block
            proofs = () if end == self._labelled else None
            verdict = self.screener.decide_early(self._horizon, analyse(samples[:end], self._frames(end // FRAME), proofs))
            self._horizon += 1
            if verdict is not None:
                self.verdict = verdict
                return verdict
        return None

    def _frames(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `count` frames' tone labels and levels."""
        return self._labels[:count], self._levels[:count]

    def finish(self, events: list[tones.ToneEvent] | None = None) -> Verdict:
        """Decide on what has arrived (the whole window, or less if the audio stopped early); `events` are
        proofs found over everything received, past the window too. While listening for a beep: the greeting's
        verdict with what was heard of it."""
        if self._greeting is not None:
            return self._heard(find_beep(self._samples(), beep_after_ms(self._greeting.evidence)), self._received)
        if self.verdict is None:
            samples = self._samples()[: self._labelled] if self._labelled else self._samples()
            window = min(len(samples), self.window_samples)
            if self._labelled:
                # The window's frames were checked for proofs as they came (the last check, or the one at the
                # window's end before listening on): `events` are what the checks found, past the window too.
                analysis = analyse(samples[:window], self._frames(window // FRAME), tuple(events or ()))
            else:
                analysis = analyse(samples[:window])
            self.verdict = self.screener.decide(analysis)
        return self.verdict


def _ended(beep: tones.Beep, heard: int) -> bool:
    """Whether the beep stopped at least CONFIRM_MS before the end of the `heard` samples (so it is over)."""
    return beep.onset_ms + beep.duration_ms <= heard * 1000.0 / SAMPLE_RATE - tones.CONFIRM_MS
