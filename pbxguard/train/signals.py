"""Signals pbxguard generates itself: tones by the engine's own cadence tables, fax, dead air, digital silence.

Every generator takes a numpy Generator and returns float64 samples in int16 units plus the parameters it
drew, so a corpus row can say exactly how its clip was made.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from pbxguard.audio import g711
from pbxguard.audio.files import read_audio
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


def comfort_noise(n: int, rng: np.random.Generator, level_dbfs: float) -> np.ndarray:
    """RFC 3389 comfort noise: spectrally shaped noise whose level steps every 20 ms."""
    low = float(rng.uniform(100, 1500))
    sos = butter(2, [low, float(rng.uniform(low + 500, 3800))], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    x = sosfilt(sos, rng.standard_normal(n))
    x *= np.repeat(10 ** (rng.normal(0, 1.0, n // 160 + 1) / 20), 160)[:n]
    return set_rms(x, level_dbfs)


def clicks(n: int, rng: np.random.Generator, count: int, peak_dbfs: float) -> np.ndarray:
    """Clicks and pops: a step or impulse ringing down over 100-300 ms (a handset knocked, a relay), not speech."""
    x = np.zeros(n)
    for _ in range(count):
        m = int(rng.uniform(0.1, 0.3) * SAMPLE_RATE)
        at = int(rng.integers(0, max(1, n - m)))
        t = np.arange(m) / SAMPLE_RATE
        ring = np.sin(2 * np.pi * rng.uniform(80, 2500) * t + rng.uniform(0, 6.3)) * np.exp(-t / rng.uniform(0.005, 0.05))
        thump = rng.standard_normal(m) * np.exp(-t / rng.uniform(0.002, 0.02))
        pop = ring + rng.uniform(0, 1.5) * thump
        pop *= FULL_SCALE * 10 ** (peak_dbfs / 20) / (np.max(np.abs(pop)) + 1e-12)
        x[at : at + m] += pop[: n - at]
    return x


DEAD_AIR_KINDS = ("white", "pink", "brown", "hum", "comfort", "room", "pops")
DEAD_AIR_PEAK_DBFS = -40.0
DEAD_AIR_LEVELS_DBFS = (-85.0, -55.0)
ROOM_SHARE = 0.3  # of dead air, when real room tone is given: the one kind recorded, not made


def dead_air(n: int, rng: np.random.Generator, room: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Sub-audible line noise, nobody there: -85..-55 dBFS RMS, peaks at most -40 dBFS. `room` is real
    room tone (a microphone open in an empty room) for the kind "room"."""
    kinds = [k for k in DEAD_AIR_KINDS if k != "room" or room is not None]
    shares = np.array([ROOM_SHARE * (len(kinds) - 1) / (1 - ROOM_SHARE) if k == "room" else 1.0 for k in kinds])
    kind = str(rng.choice(kinds, p=shares / shares.sum()))
    level = float(rng.uniform(*DEAD_AIR_LEVELS_DBFS))
    params: dict = {"kind": kind, "level_dbfs": round(level, 1)}
    if kind == "hum":
        mains = float(rng.choice([50.0, 60.0]))
        x = hum(n, rng, mains) + rng.uniform(0.05, 0.5) * coloured_noise(n, rng, "white")
        params["mains_hz"] = mains
    elif kind == "comfort":
        x = comfort_noise(n, rng, level)
    elif kind == "room":
        assert room is not None  # "room" is drawn only when given
        start = int(rng.integers(0, max(1, len(room) - n)))
        x = np.tile(room.astype(np.float64), int(np.ceil(n / max(1, len(room)))) + 1)[start : start + n]
        x = x - np.mean(x)
    elif kind == "pops":  # a quiet line with one to three clicks that are not an utterance
        x = coloured_noise(n, rng, str(rng.choice(["white", "pink"])))
    else:
        x = coloured_noise(n, rng, kind)
    x = set_rms(x, level)
    if kind == "pops":
        x += clicks(n, rng, int(rng.integers(1, 4)), float(rng.uniform(max(level + 10, -60), DEAD_AIR_PEAK_DBFS)))
    peak = FULL_SCALE * 10 ** (DEAD_AIR_PEAK_DBFS / 20)
    return np.clip(x, -peak, peak), params


def echo(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A speakerphone in a room: a decaying noise impulse response (RT60 0.2-0.7 s) mixed with the direct path."""
    rt60 = float(rng.uniform(0.2, 0.7))
    m = int(rt60 * SAMPLE_RATE)
    t = np.arange(m) / SAMPLE_RATE
    response = rng.standard_normal(m) * 10 ** (-3 * t / rt60)
    response[0] = 0.0
    wet = np.convolve(x, response)[: len(x)]
    mix = float(rng.uniform(0.3, 1.0))
    return x + set_rms(wet, 20 * np.log10(np.sqrt(np.mean(x**2)) / FULL_SCALE + 1e-12)) * mix, {"rt60_s": round(rt60, 2),
                                                                                              "echo_mix": round(mix, 2)}


WEATHER_KINDS = ("wind", "traffic", "water", "rain", "dishes", "hvac")


def weather(n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Non-stationary noise pbxguard makes itself: wind (gusting low rumble), traffic (swelling passes),
    running water (bright, flickering), rain (dense drops on a hiss), dishes (clinks ringing at several
    kHz), air conditioning (a steady low roar with a motor's hum)."""
    kind = str(rng.choice(WEATHER_KINDS))
    t = np.arange(n) / SAMPLE_RATE
    if kind == "wind":
        base = sosfilt(butter(2, float(rng.uniform(200, 600)), fs=SAMPLE_RATE, output="sos"), rng.standard_normal(n))
        gust = 0.3 + np.abs(np.interp(t, np.linspace(0, t[-1], 12), rng.standard_normal(12)))
        x = base * gust
    elif kind == "traffic":
        x = coloured_noise(n, rng, "brown")
        for _ in range(int(rng.integers(1, 4))):
            centre, width = rng.uniform(0, t[-1]), rng.uniform(0.3, 1.2)
            x = x + coloured_noise(n, rng, "pink") * 3 * np.exp(-(((t - centre) / width) ** 2))
    elif kind == "water":
        x = sosfilt(butter(2, [float(rng.uniform(800, 1500)), 3800], btype="bandpass", fs=SAMPLE_RATE, output="sos"),
                    rng.standard_normal(n))
        x *= np.repeat(rng.uniform(0.4, 1.6, n // 80 + 1), 80)[:n]
    elif kind == "rain":
        drops = (rng.random(n) < rng.uniform(0.005, 0.05)) * rng.standard_normal(n) * 8
        x = sosfilt(butter(2, [300, 3500], btype="bandpass", fs=SAMPLE_RATE, output="sos"), drops)
        x = x + coloured_noise(n, rng, "pink") * rng.uniform(0.3, 1.0)
    elif kind == "dishes":
        x = coloured_noise(n, rng, "pink") * 0.3
        for _ in range(int(rng.integers(2, 9))):
            m = int(rng.uniform(0.05, 0.4) * SAMPLE_RATE)
            at = int(rng.integers(0, n - m))
            ring = np.arange(m) / SAMPLE_RATE
            clink = sum(np.sin(2 * np.pi * rng.uniform(1500, 3800) * ring) for _ in range(3))
            x[at : at + m] += clink * np.exp(-ring / rng.uniform(0.02, 0.12)) * rng.uniform(2, 8)
    else:  # hvac
        x = sosfilt(butter(2, float(rng.uniform(300, 900)), fs=SAMPLE_RATE, output="sos"), rng.standard_normal(n))
        x = x / (np.std(x) + 1e-12) + 0.3 * hum(n, rng, float(rng.choice([50.0, 60.0]))) * rng.uniform(0, 1)
    return x, kind


def babble(n: int, rng: np.random.Generator, voices: list[np.ndarray]) -> np.ndarray:
    """A crowd, a cafe, a call centre floor: several voices at once, none of them the caller."""
    x = np.zeros(n)
    for v in voices:
        start = int(rng.integers(-len(v) // 2, n))
        a, b = max(start, 0), min(start + len(v), n)
        if b > a:
            x[a:b] += set_rms(v.astype(np.float64), -20.0 + float(rng.uniform(-6, 6)))[a - start : b - start]
    return x


def melody(n: int, rng: np.random.Generator, level_dbfs: float) -> np.ndarray:
    """A melodic ringtone or caller tune: notes of a scale with a few harmonics and a decay each."""
    out = np.zeros(n)
    pos = int(rng.integers(0, SAMPLE_RATE // 4))
    root = float(rng.uniform(220, 660))
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    note_s = float(rng.uniform(0.12, 0.4))
    harmonics = rng.uniform(0.0, 0.6, 3)
    while pos < n:
        m = int(note_s * SAMPLE_RATE * rng.choice([1, 1, 2]))
        f = root * 2 ** (int(rng.choice(scale)) / 12)
        t = np.arange(m) / SAMPLE_RATE
        note = np.sin(2 * np.pi * f * t) + sum(h * np.sin(2 * np.pi * f * (k + 2) * t) for k, h in enumerate(harmonics))
        note *= np.exp(-t / (note_s * rng.uniform(0.5, 2))) * np.minimum(1, t / 0.005)
        out[pos : pos + m] += note[: n - pos]
        pos += m
    return set_rms(out, level_dbfs)


def psk_qam(n: int, rng: np.random.Generator, carrier_hz: float, baud: float, points: int, level_dbfs: float) -> np.ndarray:
    """A modem's data signal: random symbols of a PSK (points <= 8) or square QAM constellation, raised-cosine
    shaped, on a carrier: V.22 (1200/2400 Hz, 600 baud), V.27ter, V.29, V.17, V.32 (1700-1800 Hz, 1600-2400 baud)."""
    if points <= 8:
        alphabet = np.exp(2j * np.pi * np.arange(points) / points)
    else:
        side = int(np.sqrt(points))
        grid = np.arange(side) - (side - 1) / 2
        alphabet = (grid[:, None] + 1j * grid[None, :]).ravel()
    per_symbol = SAMPLE_RATE / baud
    count = int(n / per_symbol) + 8
    symbols = alphabet[rng.integers(0, len(alphabet), count)]
    at = (np.arange(n) / per_symbol)
    k = np.floor(at).astype(int)
    frac = at - k
    # raised-cosine interpolation between neighbouring symbols: a band-limited baseband, cheaply
    w = 0.5 - 0.5 * np.cos(np.pi * frac)
    baseband = symbols[k] * (1 - w) + symbols[k + 1] * w
    x = np.real(baseband * np.exp(2j * np.pi * carrier_hz * np.arange(n) / SAMPLE_RATE + 1j * rng.uniform(0, 6.3)))
    return set_rms(x, level_dbfs)


def ansam(n: int, rng: np.random.Generator, level_dbfs: float) -> np.ndarray:
    """V.8 ANSam: 2100 Hz, amplitude-modulated at 15 Hz, phase reversed every 450 ms."""
    t = np.arange(n) / SAMPLE_RATE
    reversals = np.floor((t + rng.uniform(0, 0.45)) / 0.45) % 2 * np.pi
    x = np.sin(2 * np.pi * 2100 * t + reversals) * (1 + 0.2 * np.sin(2 * np.pi * 15 * t))
    return set_rms(x, level_dbfs)


# minimodem baud modes and (mark, space) Hz: what a calling or answering data modem or TDD sends
FSK_MODES = {
    "bell103_orig": ("300", 1270, 1070), "bell103_ans": ("300", 2225, 2025), "bell202": ("1200", 1200, 2200),
    "v21_ch1": ("300", 980, 1180), "v21_ch2": ("300", 1650, 1850), "v23": ("1200", 1300, 2100),
}


def fsk_modem(n: int, rng: np.random.Generator, mode: str, level_dbfs: float) -> np.ndarray:
    """`n` samples of an FSK modem sending random bytes, made by Debian's minimodem (its --tx at 8 kHz)."""
    baud, mark, space = FSK_MODES[mode]
    data = rng.integers(0, 256, int(n / SAMPLE_RATE * int(baud) / 10) + 16).astype(np.uint8).tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "modem.wav"
        subprocess.run(["minimodem", "--tx", "-q", "-R", str(SAMPLE_RATE), "-M", str(mark), "-S", str(space),
                        "-f", str(out), baud], input=data, check=True, capture_output=True, timeout=60)
        x = read_audio(out).astype(np.float64)
    x = np.tile(x, int(np.ceil(n / len(x))))[:n]
    return set_rms(x, level_dbfs)


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
