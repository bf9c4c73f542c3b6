"""Test signals: clean signals through the telephone channel, and durations in samples."""

from __future__ import annotations

import numpy as np

from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.train import channel


def through_line(x: np.ndarray, rng: np.random.Generator, law: str = "ulaw", noise_dbfs: float = -65.0) -> np.ndarray:
    """A clean test signal through the telephone channel: band limit, line noise, G.711, no other codec."""
    line = channel.ChannelDraw(law=law, low_hz=300, high_hz=3400, noise_dbfs=noise_dbfs, noise_colour="white",
                               hum_dbfs=-200.0, mains_hz=50.0, comfort_dbfs=-200.0, clicks=0, click_peak_dbfs=-200.0,
                               agc_db=0.0, dc=0.0, loss_rate=0.0, hops=(), recorder="")
    return channel.apply(x, line, rng)


def seconds(s: float) -> int:
    return int(s * SAMPLE_RATE)


def with_beep(opening: np.ndarray, at_ms: float, length_ms: float = 400.0, total_ms: float = 5000.0) -> np.ndarray:
    """`opening`, silence, a 1 kHz voicemail beep at `at_ms`, silence to `total_ms`."""
    x = np.zeros(int(total_ms * 8))
    x[: len(opening)] = opening
    t = np.arange(int(length_ms * 8)) / 8000.0
    x[int(at_ms * 8) : int(at_ms * 8) + len(t)] = 8000.0 * np.sin(2 * np.pi * 1000.0 * t)
    return x.astype(np.int16)
