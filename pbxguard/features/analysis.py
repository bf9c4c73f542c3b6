"""One pass over a call opening: every detector's evidence and the feature vectors of the learned stages.

Training and serving both call `analyse()`, so the models see exactly the features they were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbxguard.audio.format import FRAME, FRAME_MS, SAMPLE_RATE
from pbxguard.features import spectral, speech, tones
from pbxguard.features.layout import (
    ACTIVITY_BLOCK_MS,
    ACTIVITY_FEATURES,
    DEADAIR_FEATURES,
    ENVELOPE_BLOCK_MS,
    ENVELOPE_FEATURES,
    OPENING_FEATURES,
    WINDOW_MS,
)
from pbxguard.features.levels import Levels, measure_levels
from pbxguard.features.spectral import BASIS_FEATURES

BEEP_AFTER_SPEECH_MS = 200.0  # a voicemail beep ends a greeting: some speech comes first
ENVELOPE_RANGE_DB = 40.0

@dataclass(frozen=True)
class Analysis:
    """Evidence from every detector plus the learned stages' inputs, for one window of audio."""

    window_ms: float
    levels: Levels
    tone_events: tuple[tones.ToneEvent, ...]
    talk: speech.TalkPattern
    beep: tones.Beep | None
    deadair_vector: np.ndarray
    opening_vector: np.ndarray

    def evidence(self) -> dict:
        return {
            "levels": self.levels.as_dict(),
            "tones": [e.as_dict() for e in self.tone_events],
            "beep_ms": self.beep.onset_ms if self.beep else None,
            **self.talk.as_dict(),
        }


def _activity(talk: speech.TalkPattern, window_ms: int, block_ms: int) -> list[float]:
    """Share of each block of the window covered by utterances (a shorter window leaves the tail at 0)."""
    edges = np.arange(0, window_ms + 1, block_ms)
    covered = np.zeros(len(edges) - 1)
    for s, e in talk.utterances:
        covered += np.clip(np.minimum(edges[1:], e) - np.maximum(edges[:-1], s), 0, None)
    return (covered / block_ms).tolist()


def _envelope(level_db: np.ndarray, loud_db: float, window_ms: int, block_ms: int) -> list[float]:
    """Mean frame level of each block relative to the window's loud end, floored at -40 dB."""
    per_block = int(block_ms / FRAME_MS)
    blocks = window_ms // block_ms
    padded = np.full(blocks * per_block, loud_db - ENVELOPE_RANGE_DB)
    padded[: min(len(level_db), len(padded))] = level_db[: len(padded)]
    relative = np.maximum(padded - loud_db, -ENVELOPE_RANGE_DB)
    return relative.reshape(blocks, per_block).mean(axis=1).tolist()


def by_name(values: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """The vector of `values` in the layout's order; a missing or extra name is a bug, caught here."""
    if len(values) != len(names):
        raise KeyError(f"features computed and layout differ: {sorted(set(values) ^ set(names))}")
    return np.array([values[name] for name in names], dtype=np.float64)


HOP_MS = spectral.HOP * 1000.0 / SAMPLE_RATE


def _stft(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The magnitude spectrogram, its power, and each frame's level in dBFS."""
    magnitude = spectral.magnitude_spectrogram(x)
    power = magnitude**2
    return magnitude, power, 10.0 * np.log10(power.sum(axis=1) / (spectral.NPERSEG * 32768.0**2 * 0.375) + 1e-12)


def beep_after_ms(talk: dict) -> float | None:
    """From when a voicemail beep counts, given the talk pattern's evidence; None without speech (no greeting)."""
    return talk["speech_onset_ms"] + BEEP_AFTER_SPEECH_MS if talk["utterances_ms"] else None


def find_beep(samples: np.ndarray, after_ms: float | None) -> tones.Beep | None:
    """The voicemail beep in `samples` (any length: an outbound call listens past the window for it)."""
    _, power, stft_db = _stft(np.asarray(samples))
    return tones.find_beep(power, HOP_MS, spectral.NPERSEG, stft_db, after_ms)


def frame_view(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // FRAME
    return samples[: n * FRAME].reshape(n, FRAME).astype(np.float64)


def analyse(samples: np.ndarray, tone_frames: tuple[np.ndarray, np.ndarray] | None = None,
            tone_events: tuple[tones.ToneEvent, ...] | None = None) -> Analysis:
    """Analyse int16 8 kHz samples (normally the 2 s window). A stream passes what it already has: its frame
    labels and levels (`tone_frames`) and the proofs it found over exactly these frames (`tone_events`)."""
    x = np.asarray(samples)
    levels = measure_levels(x)
    labels, level_db = tone_frames if tone_frames is not None else tones.label_frames(frame_view(x))
    talk = speech.talk_pattern(level_db, labels)
    events = tone_events if tone_events is not None else tuple(tones.prove_tones(labels, level_db, x, lambda: talk.onset_ms))

    magnitude, power, stft_db = _stft(x)
    beep = tones.find_beep(power, HOP_MS, spectral.NPERSEG, stft_db, beep_after_ms(talk.as_dict()))
    if beep is not None:  # the beep is not part of the greeting: measure the talk pattern without it
        frame_ms = np.arange(len(level_db)) * FRAME_MS
        talk = speech.talk_pattern(level_db, labels, (frame_ms >= beep.onset_ms - FRAME_MS)
                                   & (frame_ms < beep.onset_ms + beep.duration_ms))
    bases, singular = spectral.spectral_bases(magnitude)
    active = stft_db > max(talk.floor_dbfs + speech.ACTIVE_ABOVE_FLOOR_DB, speech.ACTIVE_MIN_DBFS)
    pitch = speech.pitch_track(x, talk)

    ordered = np.sort(level_db)
    p10, p50, p90 = (float(ordered[len(ordered) * q // 100]) for q in (10, 50, 90))
    tonal = labels >= 0
    tonal_runs = tones.runs(tonal)
    first = talk.utterances[0] if talk.utterances else (talk.window_ms, talk.window_ms)
    opening = {
        "rms_dbfs": levels.rms_dbfs, "peak_dbfs": levels.peak_dbfs, "crest_db": levels.peak_dbfs - levels.rms_dbfs,
        "zero_fraction": levels.zero_fraction, "idle_fraction": levels.idle_fraction,
        "outlier_fraction": levels.outlier_fraction,
        "level_p10": p10, "level_p50": p50, "level_p90": p90, "level_std": float(level_db.std()),
        "onset_ms": talk.onset_ms, "utterances": len(talk.utterances), "speech_ms": talk.speech_ms,
        "longest_utterance_ms": talk.longest_ms, "first_utterance_ms": first[1] - first[0],
        "trailing_silence_ms": talk.trailing_silence_ms, "longest_pause_ms": talk.longest_pause_ms,
        "speech_snr_db": p90 - talk.floor_dbfs,
        "tonal_fraction": float(tonal.mean()),
        "longest_tonal_ms": max((e - s for s, e in tonal_runs), default=0) * FRAME_MS,
        **dict(zip(("fax_tonal_fraction", "progress_tonal_fraction", "sit_tonal_fraction"), tones.family_fractions(labels))),
        "beep": float(beep is not None), "beep_onset_ms": beep.onset_ms if beep else talk.window_ms,
        **dict(zip(spectral.SPECTRUM_FEATURES, spectral.spectrum_statistics(power, active))),
        **dict(zip(spectral.MODULATION_FEATURES, spectral.modulation_statistics(10.0 ** (level_db / 10.0), FRAME_MS))),
        **dict(zip(spectral.SHARE_FEATURES, singular[:3])),
        **dict(zip(speech.VOICE_FEATURES, speech.voice_features(pitch))),
        **dict(zip(speech.SPREAD_VOICE_FEATURES, speech.spread_voice_features(speech.spread_track(x, talk)))),
        **dict(zip(ACTIVITY_FEATURES, _activity(talk, WINDOW_MS, ACTIVITY_BLOCK_MS))),
        **dict(zip(ENVELOPE_FEATURES, _envelope(level_db, p90, WINDOW_MS, ENVELOPE_BLOCK_MS))),
    }
    deadair = {
        **dict(zip(BASIS_FEATURES, bases.T.ravel())),
        **dict(zip(spectral.SHARE_FEATURES, singular[:3])),
        "rms_dbfs": levels.rms_dbfs, "peak_dbfs": levels.peak_dbfs,
    }
    return Analysis(
        window_ms=talk.window_ms,
        levels=levels,
        tone_events=events,
        talk=talk,
        beep=beep,
        deadair_vector=by_name(deadair, DEADAIR_FEATURES),
        opening_vector=by_name(opening, OPENING_FEATURES),
    )
