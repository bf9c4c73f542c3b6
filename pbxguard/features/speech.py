"""Talk pattern (what app_amd counts, done with an adaptive floor) and voice cues.

app_amd calls a 20 ms frame silent when its mean |sample| is below 256 (about -42 dBFS): a quiet talker is
silence to it and loud line noise is a word. Here a frame is active when it stands clearly above the line's
own noise floor (the quiet end of the window, or 30 dB below its loud end when the window is all speech)
and above an absolute floor, and is not a pure tone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbxguard.features.tones import FRAME_MS, runs

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


def talk_pattern(level_db: np.ndarray, tone_labels: np.ndarray) -> TalkPattern:
    """Utterances from 20 ms frame levels; frames that are pure tones are not speech."""
    ordered = np.sort(level_db)
    loud = float(ordered[len(ordered) * 9 // 10])
    floor = min(float(ordered[len(ordered) * FLOOR_PERCENTILE // 100]), loud - MAX_FLOOR_BELOW_PEAK_DB)
    active = (level_db > max(floor + ACTIVE_ABOVE_FLOOR_DB, ACTIVE_MIN_DBFS)) & (tone_labels < 0)
    merge = int(MERGE_GAP_MS / FRAME_MS)
    for s, e in runs(~active):
        if 0 < s and e < len(active) and e - s <= merge:
            active[s:e] = True
    utterances = tuple(
        (s * FRAME_MS, e * FRAME_MS) for s, e in runs(active) if (e - s) * FRAME_MS >= MIN_UTTERANCE_MS
    )
    window_ms = len(level_db) * FRAME_MS
    return TalkPattern(window_ms, floor, utterances[0][0] if utterances else window_ms, utterances)


def pitch_track(samples: np.ndarray, pattern: TalkPattern, max_frames: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, normalised autocorrelation peak) for up to `max_frames` 40 ms frames inside utterances."""
    starts = []
    for s, e in pattern.utterances:
        a, b = int(s * 8), int(e * 8) - PITCH_FRAME
        starts.extend(range(a, b + 1, PITCH_FRAME // 2))
    if not starts:
        return np.empty(0), np.empty(0)
    starts = np.array(starts)[np.linspace(0, len(starts) - 1, min(len(starts), max_frames)).astype(int)]
    frames = samples[starts[:, None] + np.arange(PITCH_FRAME)].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, PITCH_NFFT, axis=1)
    acf = np.fft.irfft(spec.real**2 + spec.imag**2, PITCH_NFFT, axis=1)
    lo, hi = PITCH_LAGS
    # Divide by the overlap length so long lags are not penalised, then by lag 0.
    norm = acf[:, lo:hi] / (PITCH_FRAME - np.arange(lo, hi)) * PITCH_FRAME / (acf[:, :1] + 1e-9)
    lag = np.argmax(norm, axis=1)
    corr = norm[np.arange(len(lag)), lag]
    return 8000.0 / (lag + lo), corr


def voice_features(f0: np.ndarray, corr: np.ndarray) -> list[float]:
    """Voicing and intonation statistics: synthetic voices are flatter and steadier than people."""
    voiced = corr >= VOICED_MIN_CORR
    if voiced.sum() < 3:
        return [float(voiced.mean()) if corr.size else 0.0, 0.0, 0.0, 0.0, 0.0, float(corr.mean()) if corr.size else 0.0]
    semitones = 12.0 * np.log2(f0[voiced] / 100.0)
    steps = np.abs(np.diff(semitones))
    return [
        float(voiced.mean()),
        float(np.median(semitones)),
        float(np.std(semitones)),
        float(np.median(steps)),
        float(np.mean(steps > 2.0)),  # octave jumps and breaks
        float(np.mean(corr[voiced])),
    ]
