"""The channel model's codecs (Debian's ffmpeg and sox, AMR-NB by ctypes) and its two ends at the PBX."""

import numpy as np
import pytest

from pbxguard.audio import g711
from pbxguard.train import channel, codecs, sources


@pytest.fixture(scope="module")
def speech():
    voices = [s for s in sources.natural_speech() if s.group == "asterisk"][:6]
    return [np.asarray(s.samples[:16000], dtype=np.float64) for s in voices]


def rms_db(x):
    return 10 * np.log10(np.mean(np.square(x)) + 1e-12)


def test_every_tool_is_installed():
    assert codecs.missing_tools() == []


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_each_codec_keeps_level_and_time_alignment(codec, speech):
    out = codecs.transcode(codec, speech)
    assert [len(y) for y in out] == [len(x) for x in speech]
    change = [rms_db(y) - rms_db(x) for x, y in zip(speech, out)]
    # a codec that changes the level would teach levels wrong (G.729 here came out 13 dB quiet: not used)
    assert abs(np.median(change)) < 1.0 and max(map(abs, change)) < 2.0, (codec, change)
    for x, y in zip(speech, out):
        # aligned: the codec's delay is taken off (vocoders keep the envelope, not the waveform)
        ex, ey = (np.convolve(np.abs(v), np.ones(160) / 160, "same") for v in (x, y))
        assert np.corrcoef(ex, ey)[0, 1] > 0.9, codec


def test_batched_equals_alone_for_a_clip_far_from_its_neighbours(speech):
    alone = codecs.transcode("mp3_16k", speech[:1])[0]
    batched = codecs.transcode("mp3_16k", speech)[0]
    assert np.corrcoef(alone, batched)[0, 1] > 0.99


def test_the_recorder_path_hands_over_1_lsb_steps_the_g711_leg_does_not():
    rng = np.random.default_rng(3)
    quiet = rng.standard_normal(16000) * 200.0  # about -44 dBFS
    base = channel.draw(rng)
    recorded = channel.finish(quiet, channel.ChannelDraw(**{**base.__dict__, "recorder": "mp3_16k"}))
    direct = channel.finish(quiet, channel.ChannelDraw(**{**base.__dict__, "recorder": "", "law": "ulaw"}))
    loud = np.abs(direct) > 256
    assert len(np.unique(recorded[np.abs(recorded) > 256])) > 3 * len(np.unique(direct[loud]))
    assert np.array_equal(direct, g711.round_trip(quiet, "ulaw"))


def test_draws_cover_mobile_trunk_and_recorder_chains():
    rng = np.random.default_rng(1)
    draws = [channel.draw(rng) for _ in range(400)]
    assert {len(d.hops) for d in draws} == {1, 2, 3}
    assert {d.hops[0] for d in draws} & set(codecs.MOBILE) and {d.hops[0] for d in draws} & set(codecs.TRUNK)
    assert 0.15 < np.mean([bool(d.recorder) for d in draws]) < 0.35
    quiet = [channel.draw(rng, quiet_line=True) for _ in range(100)]
    assert all(d.noise_dbfs < -150 and d.agc_db == 0 and d.click_peak_dbfs <= -40 for d in quiet)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_each_codec_is_repeatable(codec, speech):
    # the same seed must give the same corpus bytes: sox dithered VOX at random until told not to
    first, second = codecs.transcode(codec, speech[:2]), codecs.transcode(codec, speech[:2])
    assert all(np.array_equal(a, b) for a, b in zip(first, second)), codec
