"""Signal levels and the deterministic digital-silence test.

Digital silence is a codec idling or a silent file: exact zeros, a constant code (A-law idle decodes to +8),
or an editor's +-1/+-2 dither. G.711 cannot produce the dither case (its smallest non-zero output is 8), and
sub-audible line noise through G.711 always moves by at least one step of 8 around its centre, so "almost every
sample within 2 of the most common value" separates digital silence from -72 dBFS dead air without a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pbxguard.audio.format import SAMPLE_RATE

FULL_SCALE = 32768.0
FLOOR_DB = -120.0

DITHER_SPAN = 2  # +-2 around the idle value is still digital silence (editor dither)
DIGITAL_SILENCE_MAX_OUTLIERS = 0.001  # a stray click or two in 2 s does not make it a live line


def dbfs(power: np.ndarray | float) -> np.ndarray | float:
    """Mean-square power of int16-scaled samples to dBFS (a full-scale square wave is 0 dBFS)."""
    return 10.0 * np.log10(np.maximum(power, 1e-12) / FULL_SCALE**2)


@dataclass(frozen=True)
class Levels:
    rms_dbfs: float
    peak_dbfs: float
    zero_fraction: float
    idle_value: int  # the most common sample value within +-127 (idle codes and DC are small)
    idle_fraction: float  # share of samples equal to it
    outlier_fraction: float  # share of samples more than DITHER_SPAN away from it
    longest_constant_ms: float

    @property
    def digital_silence(self) -> bool:
        return self.outlier_fraction <= DIGITAL_SILENCE_MAX_OUTLIERS

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def measure_levels(samples: np.ndarray) -> Levels:
    x = samples.astype(np.int32)
    n = x.size
    counts = np.bincount(np.clip(x, -128, 127) + 128, minlength=256)
    counts[[0, 255]] = 0  # clipped values are not idle candidates
    idle_index = int(np.argmax(counts))
    idle = idle_index - 128
    near = int(counts[max(idle_index - DITHER_SPAN, 0) : idle_index + DITHER_SPAN + 1].sum())
    change = np.flatnonzero(np.diff(x)) if n > 1 else np.array([], dtype=np.int64)
    run_edges = np.concatenate(([-1], change, [n - 1]))
    longest_run = int(np.max(np.diff(run_edges))) if n else 0
    xf = x.astype(np.float64)
    return Levels(
        rms_dbfs=float(dbfs(float(np.mean(xf * xf)))),
        peak_dbfs=float(dbfs(float(np.max(np.abs(xf))) ** 2)) if n else FLOOR_DB,
        zero_fraction=float(np.count_nonzero(x == 0) / n),
        idle_value=idle,
        idle_fraction=float(counts[idle_index] / n),
        outlier_fraction=float((n - near) / n),
        longest_constant_ms=longest_run * 1000.0 / SAMPLE_RATE,
    )
