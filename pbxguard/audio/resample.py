"""Resampling to 8 kHz: whole signals (files) and chunk by chunk (a live stream at another rate); and from it, for
speech recognisers that want 16 kHz."""

from __future__ import annotations

from math import gcd

import numpy as np

from pbxguard.audio.format import SAMPLE_RATE


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """scipy.signal's polyphase resampler, imported on first use: importing scipy.signal takes longer than a
    whole `pbxguard classify` of an 8 kHz file, and 8 kHz audio (every PBX call) never needs it."""
    from scipy.signal import resample_poly as polyphase

    return polyphase(x, up, down)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """A whole signal at `rate` Hz to `target` Hz (SAMPLE_RATE unless said), as float64."""
    g = gcd(rate, target)
    return resample_poly(x, target // g, rate // g)


class StreamResampler:
    """To 8 kHz, chunk by chunk. Frames are short, so each chunk is resampled with the tail of the last
    one as context, which keeps the filter from ringing at every frame edge."""

    CONTEXT = 64

    def __init__(self, rate: int) -> None:
        g = gcd(rate, SAMPLE_RATE)
        self.up, self.down = SAMPLE_RATE // g, rate // g
        self.tail = np.zeros(0)
        self.pending = np.zeros(0)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        x = np.concatenate([self.pending, samples.astype(np.float64)])
        usable = len(x) - len(x) % self.down
        self.pending = x[usable:]
        x = x[:usable]
        if not usable:
            return np.zeros(0, dtype=np.int16)
        context = self.tail[-self.CONTEXT * self.down :] if len(self.tail) else np.zeros(0)
        y = resample_poly(np.concatenate([context, x]), self.up, self.down)
        y = y[len(context) * self.up // self.down :]
        self.tail = x
        return to_int16(y)
