"""Signals pbxguard generates itself: tones by the engine's own cadence tables, fax, dead air, digital silence.

Every generator takes a numpy Generator and returns float64 samples in int16 units plus the parameters it
drew, so a corpus row can say exactly how its clip was made.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from pbxguard.audio import g711
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.features.tones import CADENCES, SIT_FIRST, SIT_SECOND, SIT_THIRD, Cadence

FULL_SCALE = 32768.0

def db_to_amplitude(dbfs: float) -> float:
    """RMS level in dBFS to the RMS amplitude in int16 units."""
    return FULL_SCALE * 10.0 ** (dbfs / 20.0)


def set_rms(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = np.sqrt(np.mean(x**2)) + 1e-12
    return x * (db_to_amplitude(dbfs) / rms)


def sinusoids(freqs: tuple[float, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs) / np.sqrt(len(freqs) / 2)


def gate(n: int, pattern_ms: tuple[tuple[float, float], ...] | None, offset_ms: float) -> np.ndarray:
    """On/off envelope of a cadence, entered `offset_ms` into its cycle, with 2 ms ramps against clicks."""
    if pattern_ms is None:
        return np.ones(n)
    cycle = [d for pair in pattern_ms for d in pair]
    edges = np.cumsum([0.0, *cycle])
    t = (np.arange(n) * 1000.0 / SAMPLE_RATE + offset_ms) % edges[-1]
    segment = np.searchsorted(edges, t, side="right") - 1
    on = (segment % 2 == 0).astype(np.float64)
    ramp = np.hanning(33)[:16]
    rises = np.flatnonzero(np.diff(on) > 0) + 1
    falls = np.flatnonzero(np.diff(on) < 0) + 1
    for r in rises:
        on[r : r + 16] *= ramp[: len(on[r : r + 16])]
    for f in falls:
        seg = on[max(f - 16, 0) : f]
        seg *= ramp[::-1][-len(seg) :]
    return on


def cadence_tone(cadence: Cadence, n: int, rng: np.random.Generator, level_dbfs: float,
                 freq_scale: float = 1.0, pattern_ms: tuple[tuple[float, float], ...] | None = None,
                 offset_ms: float | None = None, window: int = 16000) -> tuple[np.ndarray, dict]:
    """A call-progress or fax tone: the cadence's frequencies and timing, optionally bent off spec.

    Without an `offset_ms` the cycle is entered at random, but never so that the first `window` samples
    are mostly the off part of a long cadence: that opening would be silence, not a tone.
    """
    freqs = tuple(f * freq_scale for f in cadence.freqs)
    pattern = pattern_ms if pattern_ms is not None else cadence.pattern_ms
    if offset_ms is None:
        offset_ms = 0.0
        for _ in range(50):
            offset_ms = float(rng.uniform(0, sum(d for pair in pattern for d in pair))) if pattern else 0.0
            if gate(window, pattern, offset_ms).mean() >= 0.3:
                break
    tone = sinusoids(freqs, n, rng) * db_to_amplitude(level_dbfs)
    return tone * gate(n, pattern, offset_ms), {
        "freqs": [round(f, 1) for f in freqs], "pattern_ms": pattern, "offset_ms": round(offset_ms, 1),
        "level_dbfs": round(level_dbfs, 1),
    }


def sit_tone(n: int, rng: np.random.Generator, level_dbfs: float, start_ms: float) -> tuple[np.ndarray, dict]:
    """Special information tone: three rising segments of 274 or 380 ms, then silence."""
    x = np.zeros(n)
    freqs = [float(rng.choice([float(f) for f in SIT_FIRST])), float(rng.choice([float(f) for f in SIT_SECOND])), float(SIT_THIRD)]
    lengths = [float(rng.choice([274.0, 380.0])) for _ in range(3)]
    pos = int(start_ms * SAMPLE_RATE / 1000)
    for f, ms in zip(freqs, lengths):
        m = int(ms * SAMPLE_RATE / 1000)
        seg = sinusoids((f,), m, rng) * db_to_amplitude(level_dbfs) * gate(m, ((ms - 1, 1),), 0)
        x[pos : pos + m] = seg[: max(0, min(m, n - pos))]
        pos += m
    return x, {"freqs": freqs, "segments_ms": lengths, "start_ms": start_ms, "level_dbfs": round(level_dbfs, 1)}


def v21_flags(n: int, rng: np.random.Generator, level_dbfs: float) -> np.ndarray:
    """V.21 channel 2 HDLC flags (0x7E) at 300 bit/s: phase-continuous FSK, 1650 Hz mark, 1850 Hz space."""
    bits = np.tile([0, 1, 1, 1, 1, 1, 1, 0], n // 200 + 2)
    per_bit = SAMPLE_RATE / 300.0
    index = (np.arange(n) / per_bit).astype(int)
    freq = np.where(bits[index] == 1, 1650.0, 1850.0)
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)
    return np.sin(phase) * np.sqrt(2) * db_to_amplitude(level_dbfs)


def beep(n: int, rng: np.random.Generator, level_dbfs: float) -> tuple[np.ndarray, dict]:
    freq = float(rng.uniform(450, 2000))
    return sinusoids((freq,), n, rng) * db_to_amplitude(level_dbfs) * gate(n, ((n * 1000 / SAMPLE_RATE - 1, 1),), 0), {
        "beep_hz": round(freq, 1)}


def coloured_noise(n: int, rng: np.random.Generator, colour: str) -> np.ndarray:
    """Unit-RMS white, pink or brown noise."""
    white = rng.standard_normal(n)
    if colour == "white":
        x = white
    elif colour == "pink":  # Kellet's economy filter
        x = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786], [1, -2.494956002, 2.017265875, -0.522189400], white)
    elif colour == "brown":
        x = lfilter([1.0], [1.0, -0.98], white)
    else:
        raise ValueError(colour)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def hum(n: int, rng: np.random.Generator, mains_hz: float) -> np.ndarray:
    """Unit-RMS mains hum: the fundamental and a few odd harmonics with random weights."""
    t = np.arange(n) / SAMPLE_RATE
    x = sum(rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * mains_hz * k * t + rng.uniform(0, 6.3)) for k in (1, 2, 3, 5, 7))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


DEAD_AIR_KINDS = ("white", "pink", "brown", "hum", "comfort")
DEAD_AIR_PEAK_DBFS = -40.0


def dead_air(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Sub-audible line noise, nobody there: -85..-60 dBFS RMS, peaks at most -40 dBFS."""
    kind = str(rng.choice(DEAD_AIR_KINDS))
    level = float(rng.uniform(-85, -60))
    params: dict = {"kind": kind, "level_dbfs": round(level, 1)}
    if kind == "hum":
        mains = float(rng.choice([50.0, 60.0]))
        x = hum(n, rng, mains) + rng.uniform(0.05, 0.5) * coloured_noise(n, rng, "white")
        params["mains_hz"] = mains
    elif kind == "comfort":  # RFC 3389 comfort noise: spectrally shaped noise whose level steps every 20 ms
        low = float(rng.uniform(100, 1500))
        sos = butter(2, [low, float(rng.uniform(low + 500, 3800))], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        x = sosfilt(sos, rng.standard_normal(n))
        x *= np.repeat(10 ** (rng.normal(0, 1.0, n // 160 + 1) / 20), 160)[:n]
    else:
        x = coloured_noise(n, rng, kind)
    x = set_rms(x, level)
    peak = FULL_SCALE * 10 ** (DEAD_AIR_PEAK_DBFS / 20)
    return np.clip(x, -peak, peak), params


def digital_silence(n: int, rng: np.random.Generator, dither: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Exact zeros, a G.711 idle pattern, a small DC constant, or an editor's dither (given)."""
    kinds = ["zeros", "ulaw_ff", "ulaw_7f", "alaw_d5", "alaw_55", "dc"] + (["dither"] if dither is not None else [])
    kind = str(rng.choice(kinds))
    if kind == "zeros":
        x = np.zeros(n)
    elif kind.startswith(("ulaw", "alaw")):
        code = int(kind[-2:], 16)
        table = g711.ULAW_TO_LINEAR if kind.startswith("ulaw") else g711.ALAW_TO_LINEAR
        x = np.full(n, float(table[code]))
    elif kind == "dc":
        x = np.full(n, float(rng.choice([-3, -2, -1, 1, 2, 3, 4])))
    else:
        assert dither is not None  # "dither" is drawn only when one is given
        reps = int(np.ceil(n / len(dither)))
        x = np.tile(dither, reps)[:n].astype(np.float64)
    return x, {"kind": kind}


def cadences(verdict: str) -> list[Cadence]:
    return [c for c in CADENCES if c.verdict == verdict]
