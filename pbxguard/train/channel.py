"""A telephone channel: what happens to audio between the caller's handset and the PBX.

At the caller's end (`front`): band limit, line noise and mains hum, comfort noise, clicks, slow AGC,
DC offset and packet-loss concealment. Then one to three codec hops (a mobile leg, trunks and SBCs that
transcode), and at the PBX either the G.711 leg or a call recorder's lossy path that hands over 16-bit
linear audio, whose quiet parts move by 1 LSB, not by G.711's steps (`finish`). The hops run in
batches (`codecs.transcode`), so `front` and `finish` are separate steps. Every draw comes from the
caller's numpy Generator, so a seed reproduces a clip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from pbxguard.audio import g711
from pbxguard.audio.format import FRAME, SAMPLE_RATE
from pbxguard.audio.resample import to_int16
from pbxguard.train import codecs
from pbxguard.train.signals import clicks, coloured_noise, comfort_noise, db_to_amplitude, hum

HOP_COUNTS, HOP_SHARES = (1, 2, 3), (0.55, 0.3, 0.15)
MOBILE_SHARE = 0.45  # first hop is a mobile leg
RECORDER_SHARE = 0.25  # the audio reaches the PBX through a recorder or capture, as linear PCM


@dataclass(frozen=True)
class ChannelDraw:
    law: str
    low_hz: float
    high_hz: float
    noise_dbfs: float
    noise_colour: str
    hum_dbfs: float
    mains_hz: float
    comfort_dbfs: float
    clicks: int
    click_peak_dbfs: float
    agc_db: float
    dc: float
    loss_rate: float
    hops: tuple[str, ...]
    recorder: str  # "" when the PBX gets the G.711 leg itself

    @property
    def stages(self) -> tuple[str, ...]:
        """The codec round trips in order, the recorder's last."""
        return self.hops + ((self.recorder,) if self.recorder else ())

    def as_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else list(v) if isinstance(v, tuple) else v
                for k, v in self.__dict__.items()}


def draw(rng: np.random.Generator, quiet_line: bool = False) -> ChannelDraw:
    """Random channel conditions. `quiet_line` (dead air) adds nothing audible: no line noise, AGC or DC,
    and clicks and comfort noise only at sub-audible levels; codecs and the recorder path as for any call."""
    n_hops = int(rng.choice(HOP_COUNTS, p=HOP_SHARES))
    first = codecs.MOBILE if rng.random() < MOBILE_SHARE else codecs.TRUNK
    hops = tuple(str(rng.choice(first if k == 0 else codecs.TRUNK)) for k in range(n_hops))
    recorder = str(rng.choice(codecs.RECORDER)) if rng.random() < RECORDER_SHARE else ""
    comfort = rng.random() < 0.2
    n_clicks = int(rng.choice([0, 0, 0, 1, 2])) if rng.random() < 0.3 else 0
    return ChannelDraw(
        law=str(rng.choice(["ulaw", "alaw"])),
        low_hz=float(rng.uniform(100, 400)),
        high_hz=float(rng.uniform(2800, 3600)),
        noise_dbfs=-200.0 if quiet_line else float(rng.uniform(-78, -50)),
        noise_colour=str(rng.choice(["white", "pink"])),
        hum_dbfs=-200.0 if rng.random() < 0.6 else float(rng.uniform(-85, -62) if not quiet_line else rng.uniform(-85, -65)),
        mains_hz=float(rng.choice([50.0, 60.0])),
        comfort_dbfs=float(rng.uniform(-80, -60)) if comfort else -200.0,
        clicks=n_clicks,
        click_peak_dbfs=float(rng.uniform(-55, -40) if quiet_line else rng.uniform(-45, -25)),
        agc_db=0.0 if quiet_line else float(rng.uniform(0, 3.0)),
        dc=0.0 if quiet_line else float(rng.uniform(-40, 40)),
        loss_rate=float(rng.choice([0.0, 0.0, rng.uniform(0, 0.03)])),
        hops=hops,
        recorder=recorder,
    )


def front(x: np.ndarray, channel: ChannelDraw, rng: np.random.Generator, band_limit: bool = True) -> np.ndarray:
    """The caller's end, on float int16-scaled samples: everything before the first codec."""
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
    if channel.comfort_dbfs > -150:
        y += comfort_noise(n, rng, channel.comfort_dbfs)
    if channel.clicks:
        y += clicks(n, rng, channel.clicks, channel.click_peak_dbfs)
    if channel.agc_db > 0:  # a slow gain wander, as a far-end AGC gives
        knots = rng.uniform(-channel.agc_db, channel.agc_db, n // 4000 + 2)
        y *= 10 ** (np.interp(np.arange(n), np.linspace(0, n, len(knots)), knots) / 20)
    y += channel.dc
    if channel.loss_rate > 0:  # lost 20 ms packets concealed by repeating the last one, attenuated
        for k in range(1, n // FRAME):
            if rng.random() < channel.loss_rate:
                y[k * FRAME : (k + 1) * FRAME] = 0.7 * y[(k - 1) * FRAME : k * FRAME]
    return y


def finish(y: np.ndarray, channel: ChannelDraw) -> np.ndarray:
    """At the PBX, after the codec hops: int16 from the recorder's linear PCM, or from the G.711 leg."""
    clipped = np.clip(y, -32768, 32767)
    return to_int16(clipped) if channel.recorder else g711.round_trip(clipped, channel.law)


def apply(x: np.ndarray, channel: ChannelDraw, rng: np.random.Generator, band_limit: bool = True) -> np.ndarray:
    """The whole channel for one clip (the corpus builder batches the hops instead)."""
    y = front(x, channel, rng, band_limit)
    for codec in channel.stages:
        y = codecs.transcode(codec, [y])[0]
    return finish(y, channel)
