import numpy as np
import pytest

from pbxguard.audio import g711
from pbxguard.features.levels import measure_levels
from pbxguard.train import signals, sources
from tests.signals import seconds


@pytest.mark.parametrize("samples", [
    np.zeros(16000),
    g711.ulaw_decode(bytes([0xFF]) * 16000),
    g711.ulaw_decode(bytes([0x7F]) * 16000),
    g711.alaw_decode(bytes([0xD5]) * 16000),  # constant +8: A-law idle
    g711.alaw_decode(bytes([0x55]) * 16000),
    np.full(16000, 3),
], ids=["zeros", "ulaw_ff", "ulaw_7f", "alaw_d5", "alaw_55", "dc3"])
def test_digital_silence(samples):
    assert measure_levels(np.asarray(samples, dtype=np.int16)).digital_silence


def test_asterisk_dithered_silence_is_digital_silence():
    for x in sources.editor_dither():
        assert measure_levels(x).digital_silence


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@pytest.mark.parametrize("level", [-85.0, -72.0, -60.0])
def test_dead_air_through_g711_is_not_digital_silence(law, level):
    rng = np.random.default_rng(1)
    noise = signals.set_rms(signals.coloured_noise(seconds(2), rng, "white"), level)
    levels = measure_levels(g711.round_trip(noise, law))
    assert not levels.digital_silence
    assert levels.rms_dbfs < -55


def test_levels_of_a_known_sine():
    t = np.arange(16000) / 8000
    x = (16384 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    levels = measure_levels(x)
    assert levels.peak_dbfs == pytest.approx(-6.02, abs=0.05)
    assert levels.rms_dbfs == pytest.approx(-9.03, abs=0.05)


def test_a_click_in_digital_silence_does_not_make_a_live_line():
    x = np.zeros(16000, dtype=np.int16)
    x[5000:5004] = 2000
    assert measure_levels(x).digital_silence
