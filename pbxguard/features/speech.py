"""Talk pattern (what app_amd counts, done with an adaptive floor) and voice cues.

app_amd calls a 20 ms frame silent when its mean |sample| is below 256 (about -42 dBFS): a quiet talker is
silence to it and loud line noise is a word. Here a frame is active when it stands clearly above the line's
own noise floor (the quiet end of the window, or 30 dB below its loud end when the window is all speech)
and above an absolute floor, and is not a pure tone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbxguard.audio.format import FRAME_MS, SAMPLE_RATE, samples_for
from pbxguard.features.tones import runs, steady_tone_frames

ACTIVE_ABOVE_FLOOR_DB = 10.0
ACTIVE_MIN_DBFS = -55.0
FLOOR_PERCENTILE = 10
MAX_FLOOR_BELOW_PEAK_DB = 30.0  # in wall-to-wall speech the quiet end is speech too: cap the floor
MERGE_GAP_MS = 160.0  # pauses shorter than this are inside a word or phrase
MIN_UTTERANCE_MS = 60.0

PITCH_FRAME = 320  # 40 ms: two periods of an 80 Hz voice
PITCH_NFFT = 512  # >= frame + longest lag, so the autocorrelation does not wrap
PITCH_LAGS = (20, 134)  # 400 Hz down to 60 Hz at 8 kHz
VOICED_MIN_CORR = 0.45
_QUEFRENCY = np.arange(*PITCH_LAGS, dtype=np.float64)
_TREND = np.linalg.pinv(np.stack([_QUEFRENCY, np.ones_like(_QUEFRENCY)], axis=1))  # least-squares line fit


@dataclass(frozen=True)
class TalkPattern:
    window_ms: float
    floor_dbfs: float
    onset_ms: float  # first utterance start, or the window length when nobody spoke
    utterances: tuple[tuple[float, float], ...]

    @property
    def speech_ms(self) -> float:
        return float(sum(e - s for s, e in self.utterances))

    @property
    def longest_ms(self) -> float:
        return max((e - s for s, e in self.utterances), default=0.0)

    @property
    def trailing_silence_ms(self) -> float:
        return self.window_ms - (self.utterances[-1][1] if self.utterances else 0.0)

    @property
    def longest_pause_ms(self) -> float:
        return max((b[0] - a[1] for a, b in zip(self.utterances, self.utterances[1:])), default=0.0)

    def as_dict(self) -> dict:
        return {
            "speech_onset_ms": self.onset_ms,
            "utterances_ms": [[s, e] for s, e in self.utterances],
            "speech_ms": self.speech_ms,
            "floor_dbfs": round(self.floor_dbfs, 1),
        }


def talk_pattern(level_db: np.ndarray, tone_labels: np.ndarray, exclude: np.ndarray | None = None) -> TalkPattern:
    """Utterances from 20 ms frame levels; steady tones (and `exclude`d frames: a beep) are not speech."""
    ordered = np.sort(level_db)
    loud = float(ordered[len(ordered) * 9 // 10])
    floor = min(float(ordered[len(ordered) * FLOOR_PERCENTILE // 100]), loud - MAX_FLOOR_BELOW_PEAK_DB)
    active = (level_db > max(floor + ACTIVE_ABOVE_FLOOR_DB, ACTIVE_MIN_DBFS)) & ~steady_tone_frames(tone_labels, level_db)
    if exclude is not None:
        active &= ~exclude
    merge = int(MERGE_GAP_MS / FRAME_MS)
    for s, e in runs(~active):
        if 0 < s and e < len(active) and e - s <= merge:
            active[s:e] = True
    utterances = tuple(
        (s * FRAME_MS, e * FRAME_MS) for s, e in runs(active) if (e - s) * FRAME_MS >= MIN_UTTERANCE_MS
    )
    window_ms = len(level_db) * FRAME_MS
    return TalkPattern(window_ms, floor, utterances[0][0] if utterances else window_ms, utterances)


@dataclass(frozen=True)
class PitchTrack:
    """Per 40 ms frame: f0 (Hz), autocorrelation peak, cepstral peak prominence (dB) and level (dB)."""

    f0: np.ndarray
    corr: np.ndarray
    cpp: np.ndarray
    level_db: np.ndarray


_EMPTY_TRACK = PitchTrack(np.empty(0), np.empty(0), np.empty(0), np.empty(0))


def pitch_track(samples: np.ndarray, pattern: TalkPattern, max_frames: int = 40) -> PitchTrack:
    """Consecutive 40 ms frames (20 ms apart) from the middle of the longest utterance: neighbours, so
    their steps in f0 and level measure micro-prosody (jitter and shimmer, roughly)."""
    if not pattern.utterances:
        return _EMPTY_TRACK
    s, e = max(pattern.utterances, key=lambda u: u[1] - u[0])
    a, b = samples_for(s), min(samples_for(e), len(samples)) - PITCH_FRAME
    starts = np.arange(a, b + 1, PITCH_FRAME // 2)
    if len(starts) == 0:
        return _EMPTY_TRACK
    middle = max((len(starts) - max_frames) // 2, 0)
    return _track(samples, starts[middle : middle + max_frames])


def spread_track(samples: np.ndarray, pattern: TalkPattern, max_frames: int = 24) -> PitchTrack:
    """40 ms frames spread evenly over every utterance of the window: how voiced the whole of what was
    heard is (a voice is voiced in most of its active frames; a crowd, rain or an engine is not)."""
    starts = np.concatenate([np.arange(samples_for(s), min(samples_for(e), len(samples)) - PITCH_FRAME + 1, PITCH_FRAME // 2)
                             for s, e in pattern.utterances] or [np.zeros(0, dtype=int)]).astype(int)
    if len(starts) == 0:
        return _EMPTY_TRACK
    picked = starts[np.linspace(0, len(starts) - 1, min(max_frames, len(starts))).astype(int)]
    return _track(samples, picked)


def _track(samples: np.ndarray, starts: np.ndarray) -> PitchTrack:
    frames = samples[starts[:, None] + np.arange(PITCH_FRAME)].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, PITCH_NFFT, axis=1)
    power = spec.real**2 + spec.imag**2
    acf = np.fft.irfft(power, PITCH_NFFT, axis=1)
    lo, hi = PITCH_LAGS
    # Divide by the overlap length so long lags are not penalised, then by lag 0.
    norm = acf[:, lo:hi] / (PITCH_FRAME - np.arange(lo, hi)) * PITCH_FRAME / (acf[:, :1] + 1e-9)
    lag = np.clip(np.argmax(norm, axis=1), 1, hi - lo - 2)
    rows = np.arange(len(lag))
    left, mid, right = norm[rows, lag - 1], norm[rows, lag], norm[rows, lag + 1]
    curvature = left - 2 * mid + right
    shift = np.where(curvature < -1e-9, 0.5 * (left - right) / np.where(curvature < -1e-9, curvature, -1.0), 0.0)
    f0 = SAMPLE_RATE / (lag + lo + np.clip(shift, -0.5, 0.5))
    # Cepstral peak prominence: the rahmonic peak above the cepstrum's trend over the same quefrencies.
    cepstrum = np.fft.irfft(10.0 * np.log10(power + 1e-6), PITCH_NFFT, axis=1)[:, lo:hi]
    slope, intercept = _TREND @ cepstrum.T
    peak = np.argmax(cepstrum, axis=1)
    cpp = cepstrum[rows, peak] - (slope * _QUEFRENCY[peak] + intercept)
    level = 10.0 * np.log10(acf[:, 0] / PITCH_FRAME / 32768.0**2 + 1e-12)
    return PitchTrack(f0, mid, cpp, level)


VOICE_FEATURES = ("voiced_fraction", "pitch_median_st", "pitch_std_st", "pitch_step_st", "pitch_breaks",
                  "voicing_strength", "cpp_mean", "cpp_std", "level_step_db")
SPREAD_VOICE_FEATURES = ("spread_voiced_fraction", "spread_voicing_strength", "spread_cpp_mean", "spread_pitch_std_st")


def spread_voice_features(track: PitchTrack) -> list[float]:
    """Voicing over the whole window's speech-like frames (`spread_track`)."""
    if track.corr.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    voiced = track.corr >= VOICED_MIN_CORR
    semitones = 12.0 * np.log2(track.f0[voiced] / 100.0) if voiced.sum() >= 3 else np.zeros(1)
    return [float(voiced.mean()), float(track.corr.mean()), float(track.cpp.mean()), float(np.std(semitones))]


def voice_features(track: PitchTrack) -> list[float]:
    """Voicing, intonation and periodicity statistics: synthetic voices are flatter, steadier and more
    perfectly periodic than people."""
    f0, corr = track.f0, track.corr
    voiced = corr >= VOICED_MIN_CORR
    if voiced.sum() < 3:
        fraction = float(voiced.mean()) if corr.size else 0.0
        return [fraction, 0.0, 0.0, 0.0, 0.0, float(corr.mean()) if corr.size else 0.0, 0.0, 0.0, 0.0]
    semitones = 12.0 * np.log2(f0[voiced] / 100.0)
    steps = np.abs(np.diff(semitones))
    cpp = track.cpp[voiced]
    return [
        float(voiced.mean()),
        float(np.median(semitones)),
        float(np.std(semitones)),
        float(np.median(steps)),
        float(np.mean(steps > 2.0)),  # octave jumps and breaks
        float(np.mean(corr[voiced])),
        float(np.mean(cpp)),
        float(np.std(cpp)),
        float(np.median(np.abs(np.diff(track.level_db[voiced])))),
    ]
