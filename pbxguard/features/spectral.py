"""Spectrogram features: the Marchex spectral bases and summary statistics of the spectrum.

Orife, Walker and Flaks classify sub-audible dead air from the top three left singular vectors of the
magnitude spectrogram of the first 2 s: the bases say what the line noise is made of (white, coloured, hum,
comfort noise) independently of when it happens. They carry no level, so the level goes in beside them.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pbxguard.audio.format import SAMPLE_RATE

NPERSEG = 128  # 16 ms Hann frames, 62.5 Hz bins
HOP = 128  # no overlap: half the cost, and 16 ms is fine resolution for a beep onset
N_BASES = 3
BAND_EDGES_HZ = (300.0, 800.0, 1500.0, 2500.0, 3400.0)
SPECTRUM_FEATURES = ("band_300_800", "band_800_1500", "band_1500_2500", "band_2500_3400", "band_below_300",
                     "centroid_mean", "centroid_std", "flatness_mean", "flatness_std", "flux_mean", "flux_std")
MODULATION_FEATURES = ("syllabic_modulation", "modulation_peak_hz")
SHARE_FEATURES = tuple(f"energy_share_{k + 1}" for k in range(N_BASES))
BASIS_FEATURES = tuple(f"basis{k}_{b}" for k in range(N_BASES) for b in range(NPERSEG // 2 + 1))

_WINDOW = np.hanning(NPERSEG + 2)[1:-1]  # periodic-style Hann without zero end points
_FREQS = np.fft.rfftfreq(NPERSEG, 1.0 / SAMPLE_RATE)
_VOICE_BAND = (_FREQS >= BAND_EDGES_HZ[0]) & (_FREQS <= BAND_EDGES_HZ[-1])
_BANDS = [(_FREQS >= lo) & (_FREQS < hi) for lo, hi in zip(BAND_EDGES_HZ, BAND_EDGES_HZ[1:])]
_LOW = _FREQS < BAND_EDGES_HZ[0]
_BAND_MATRIX = np.stack([*_BANDS, _LOW, _VOICE_BAND], axis=1).astype(np.float64)


def magnitude_spectrogram(samples: np.ndarray) -> np.ndarray:
    """|STFT| with a Hann window, frames x bins (the transpose of the paper's bins x frames)."""
    frames = sliding_window_view(samples.astype(np.float64), NPERSEG)[::HOP] * _WINDOW
    return np.abs(np.fft.rfft(frames, axis=1))


def spectral_bases(magnitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top left singular vectors of the bins x frames magnitude matrix, and their energy shares.

    They are the top eigenvectors of the bins x bins Gram matrix (65 x 65). numpy's full eigendecomposition
    costs what scipy's dsyevr for just the top three did (~0.3 ms here) without importing scipy; subspace
    iteration was tried and was no faster, with a quarter of the openings (near-equal eigenvalues) needing
    the full decomposition anyway. Shares are squared singular values over the spectrogram's total energy.
    Sign convention: each basis's largest-magnitude entry is positive, so equal inputs give equal features.
    """
    gram = magnitude.T @ magnitude
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues, bases = eigenvalues[::-1][:N_BASES], vectors[:, ::-1][:, :N_BASES]
    pivot = np.argmax(np.abs(bases), axis=0)
    bases = bases * np.where(bases[pivot, np.arange(N_BASES)] < 0, -1.0, 1.0)
    return bases, np.maximum(eigenvalues, 0.0) / (float(np.trace(gram)) + 1e-12)


def spectrum_statistics(power: np.ndarray, active: np.ndarray) -> list[float]:
    """Band shares, centroid, flatness and flux over the active frames (all frames when none is active)."""
    p = power[active] if active.sum() >= 3 else power
    p = p[::2]  # every other (overlapping) frame says the same and costs half
    bands = p @ _BAND_MATRIX  # the four voice bands, the hum band below 300 Hz, the whole voice band
    shares = np.mean(np.log10(bands[:, :5] / (bands[:, 5:] + 1e-9) + 1e-6), axis=0)
    voice = p[:, _VOICE_BAND] + 1e-9
    centroid = (voice @ _FREQS[_VOICE_BAND]) / voice.sum(axis=1)
    flatness = np.exp(np.mean(np.log(voice), axis=1)) / np.mean(voice, axis=1)
    normalised = voice / voice.sum(axis=1, keepdims=True)
    flux = np.abs(np.diff(normalised, axis=0)).sum(axis=1) if len(normalised) > 1 else np.zeros(1)
    return [*shares.tolist(), float(centroid.mean()), float(centroid.std()), float(flatness.mean()),
            float(flatness.std()), float(flux.mean()), float(flux.std())]


def modulation_statistics(frame_power: np.ndarray, frame_ms: float) -> list[float]:
    """Share of the energy envelope's modulation at syllable rate (2-8 Hz) and the peak modulation rate."""
    envelope = np.sqrt(frame_power)
    envelope = envelope - envelope.mean()
    spectrum = np.abs(np.fft.rfft(envelope)) ** 2
    rates = np.fft.rfftfreq(len(envelope), frame_ms / 1000.0)
    band = (rates >= 0.5) & (rates <= 20.0)
    syllabic = (rates >= 2.0) & (rates <= 8.0)
    total = spectrum[band].sum() + 1e-12
    return [float(spectrum[syllabic].sum() / total), float(rates[band][np.argmax(spectrum[band])])]
