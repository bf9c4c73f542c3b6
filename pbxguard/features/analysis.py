"""One pass over a call opening: every detector's evidence and the feature vectors of the learned stages.

Training and serving both call `analyse()`, so the models see exactly the features they were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbxguard.features import spectral, speech, tones
from pbxguard.features.levels import Levels, measure_levels

SAMPLE_RATE = 8000
WINDOW_MS = 2000
BEEP_AFTER_SPEECH_MS = 200.0  # a voicemail beep ends a greeting: some speech comes first
# The temporal shape of the window (where the speech is, how loud when), which the spectral bases lack.
ACTIVITY_BLOCK_MS = 400
ENVELOPE_BLOCK_MS = 200
ENVELOPE_RANGE_DB = 40.0

OPENING_FEATURES: tuple[str, ...] = (
    "rms_dbfs", "peak_dbfs", "crest_db", "zero_fraction", "idle_fraction", "outlier_fraction",
    "level_p10", "level_p50", "level_p90", "level_std",
    "onset_ms", "utterances", "speech_ms", "longest_utterance_ms", "first_utterance_ms",
    "trailing_silence_ms", "longest_pause_ms", "speech_snr_db",
    "tonal_fraction", "longest_tonal_ms", "fax_tonal_fraction", "progress_tonal_fraction", "sit_tonal_fraction", "beep", "beep_onset_ms",
    "band_300_800", "band_800_1500", "band_1500_2500", "band_2500_3400", "band_below_300",
    "centroid_mean", "centroid_std", "flatness_mean", "flatness_std", "flux_mean", "flux_std",
    "syllabic_modulation", "modulation_peak_hz",
    "energy_share_1", "energy_share_2", "energy_share_3",
    *speech.VOICE_FEATURES,
    *(f"speech_in_{k * ACTIVITY_BLOCK_MS}_{(k + 1) * ACTIVITY_BLOCK_MS}ms" for k in range(WINDOW_MS // ACTIVITY_BLOCK_MS)),
    *(f"level_in_{k * ENVELOPE_BLOCK_MS}_{(k + 1) * ENVELOPE_BLOCK_MS}ms" for k in range(WINDOW_MS // ENVELOPE_BLOCK_MS)),
)
DEADAIR_FEATURES: tuple[str, ...] = (
    *(f"basis{k}_{b}" for k in range(spectral.N_BASES) for b in range(spectral.NPERSEG // 2 + 1)),
    "energy_share_1", "energy_share_2", "energy_share_3", "rms_dbfs", "peak_dbfs",
)


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
    per_block = int(block_ms / tones.FRAME_MS)
    blocks = window_ms // block_ms
    padded = np.full(blocks * per_block, loud_db - ENVELOPE_RANGE_DB)
    padded[: min(len(level_db), len(padded))] = level_db[: len(padded)]
    relative = np.maximum(padded - loud_db, -ENVELOPE_RANGE_DB)
    return relative.reshape(blocks, per_block).mean(axis=1).tolist()


def frame_view(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // tones.FRAME
    return samples[: n * tones.FRAME].reshape(n, tones.FRAME).astype(np.float64)


def analyse(samples: np.ndarray, tone_frames: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Analysis:
    """Analyse int16 8 kHz samples (normally the 2 s window). `tone_frames` reuses a stream's frame labels."""
    x = np.asarray(samples)
    levels = measure_levels(x)
    labels, share, level_db = tone_frames if tone_frames is not None else tones.label_frames(frame_view(x))
    talk = speech.talk_pattern(level_db, labels)
    events = tuple(tones.prove_tones(labels, level_db, x, lambda: talk.onset_ms))

    magnitude = spectral.magnitude_spectrogram(x)
    power = magnitude**2
    stft_db = 10.0 * np.log10(power.sum(axis=1) / (spectral.NPERSEG * 32768.0**2 * 0.375) + 1e-12)
    hop_ms = spectral.HOP * 1000.0 / SAMPLE_RATE
    after = talk.onset_ms + BEEP_AFTER_SPEECH_MS if talk.utterances else None
    beep = tones.find_beep(power, hop_ms, spectral.NPERSEG, stft_db, after)
    if beep is not None:  # the beep is not part of the greeting: measure the talk pattern without it
        frame_ms = np.arange(len(level_db)) * tones.FRAME_MS
        talk = speech.talk_pattern(level_db, labels, (frame_ms >= beep.onset_ms - tones.FRAME_MS)
                                   & (frame_ms < beep.onset_ms + beep.duration_ms))
    bases, singular = spectral.spectral_bases(magnitude)
    active = stft_db > max(talk.floor_dbfs + speech.ACTIVE_ABOVE_FLOOR_DB, speech.ACTIVE_MIN_DBFS)
    pitch = speech.pitch_track(x, talk)

    ordered = np.sort(level_db)
    p10, p50, p90 = (float(ordered[len(ordered) * q // 100]) for q in (10, 50, 90))
    tonal = labels >= 0
    tonal_runs = tones.runs(tonal)
    first = talk.utterances[0] if talk.utterances else (talk.window_ms, talk.window_ms)
    opening = [
        levels.rms_dbfs, levels.peak_dbfs, levels.peak_dbfs - levels.rms_dbfs, levels.zero_fraction,
        levels.idle_fraction, levels.outlier_fraction,
        p10, p50, p90, float(level_db.std()),
        talk.onset_ms, len(talk.utterances), talk.speech_ms, talk.longest_ms, first[1] - first[0],
        talk.trailing_silence_ms, talk.longest_pause_ms, p90 - talk.floor_dbfs,
        float(tonal.mean()), max((e - s for s, e in tonal_runs), default=0) * tones.FRAME_MS,
        *tones.family_fractions(labels),
        float(beep is not None), beep.onset_ms if beep else talk.window_ms,
        *spectral.spectrum_statistics(power, active),
        *spectral.modulation_statistics(10.0 ** (level_db / 10.0), tones.FRAME_MS),
        *singular[:3],
        *speech.voice_features(pitch),
        *_activity(talk, WINDOW_MS, ACTIVITY_BLOCK_MS),
        *_envelope(level_db, p90, WINDOW_MS, ENVELOPE_BLOCK_MS),
    ]
    deadair = np.concatenate([bases.T.ravel(), singular[:3], [levels.rms_dbfs, levels.peak_dbfs]])
    return Analysis(
        window_ms=talk.window_ms,
        levels=levels,
        tone_events=events,
        talk=talk,
        beep=beep,
        deadair_vector=deadair,
        opening_vector=np.asarray(opening, dtype=np.float64),
    )
