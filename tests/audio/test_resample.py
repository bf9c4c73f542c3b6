import numpy as np

from pbxguard.audio.resample import StreamResampler


def test_slin16_is_resampled_to_8k_without_frame_edge_artifacts():
    t = np.arange(32000) / 16000
    wide = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    resampler = StreamResampler(16000)
    out = np.concatenate([resampler(wide[k : k + 320]) for k in range(0, len(wide), 320)])
    assert abs(len(out) - 16000) <= 64
    expected = 8000 * np.sin(2 * np.pi * 1000 * np.arange(len(out)) / 8000)
    lag = int(np.argmax(np.correlate(out[1000:1200].astype(float), expected[1000:1400], "valid")))
    error = out[1000:15000].astype(float) - expected[1000 + lag : 15000 + lag]
    assert np.sqrt(np.mean(error**2)) < 0.02 * 8000
