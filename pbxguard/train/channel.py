"""A telephone channel: what happens to audio between the caller's handset and the PBX.

Band limit, line noise and mains hum, slow AGC, DC offset, packet-loss concealment and a G.711 round
trip. Every draw comes from the caller's numpy Generator, so a seed reproduces a clip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from pbxguard.audio import g711
from pbxguard.audio.format import FRAME, SAMPLE_RATE
from pbxguard.train.signals import coloured_noise, db_to_amplitude, hum


@dataclass(frozen=True)
class ChannelDraw:
    law: str
    low_hz: float
    high_hz: float
    noise_dbfs: float
    noise_colour: str
    hum_dbfs: float
    mains_hz: float
    agc_db: float
    dc: float
    loss_rate: float

    def as_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def draw(rng: np.random.Generator, quiet_line: bool = False) -> ChannelDraw:
    """Random channel conditions. `quiet_line` keeps added noise out (dead air and digital silence)."""
    return ChannelDraw(
        law=str(rng.choice(["ulaw", "alaw"])),
        low_hz=float(rng.uniform(200, 400)),
        high_hz=float(rng.uniform(3000, 3600)),
        noise_dbfs=-200.0 if quiet_line else float(rng.uniform(-78, -55)),
        noise_colour=str(rng.choice(["white", "pink"])),
        hum_dbfs=-200.0 if quiet_line or rng.random() < 0.5 else float(rng.uniform(-85, -62)),
        mains_hz=float(rng.choice([50.0, 60.0])),
        agc_db=0.0 if quiet_line else float(rng.uniform(0, 1.5)),
        dc=0.0 if quiet_line else float(rng.uniform(-40, 40)),
        loss_rate=0.0 if quiet_line else float(rng.choice([0.0, 0.0, rng.uniform(0, 0.03)])),
    )


def apply(x: np.ndarray, channel: ChannelDraw, rng: np.random.Generator, band_limit: bool = True) -> np.ndarray:
    """Pass float int16-scaled samples through the channel; returns int16 after the G.711 round trip."""
    if not np.all(np.isfinite(x)):
        raise ValueError("channel input has non-finite samples: a generator is broken")
    n = len(x)
    y = x.copy()
    if band_limit:
        sos = butter(4, [channel.low_hz, channel.high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        y = sosfilt(sos, y)
    if channel.noise_dbfs > -150:
        y += coloured_noise(n, rng, channel.noise_colour) * db_to_amplitude(channel.noise_dbfs)
    if channel.hum_dbfs > -150:
        y += hum(n, rng, channel.mains_hz) * db_to_amplitude(channel.hum_dbfs)
    if channel.agc_db > 0:  # a slow gain wander, as a far-end AGC gives
        knots = rng.uniform(-channel.agc_db, channel.agc_db, n // 4000 + 2)
        y *= 10 ** (np.interp(np.arange(n), np.linspace(0, n, len(knots)), knots) / 20)
    y += channel.dc
    if channel.loss_rate > 0:  # lost 20 ms packets concealed by repeating the last one, attenuated
        for k in range(1, n // FRAME):
            if rng.random() < channel.loss_rate:
                y[k * FRAME : (k + 1) * FRAME] = 0.7 * y[(k - 1) * FRAME : k * FRAME]
    return g711.round_trip(np.clip(y, -32768, 32767), channel.law)
