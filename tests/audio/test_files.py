import struct

import numpy as np
import pytest

from pbxguard.audio import g711
from pbxguard.audio.files import AudioError, read_audio, write_wav


def wav_bytes(samples: bytes, rate=8000, channels=1, bits=16, tag=1) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    return header + b"data" + struct.pack("<I", len(samples)) + samples


def sine(rate: int, seconds: float, amp=10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * 1000 * t)


def test_round_trip_8k_wav(tmp_path):
    x = sine(8000, 0.5).astype(np.int16)
    write_wav(tmp_path / "a.wav", x)
    assert np.array_equal(read_audio(tmp_path / "a.wav"), x)


def test_stereo_44k_24bit_uses_first_channel_and_resamples(tmp_path):
    left = sine(44100, 1.0) * 256  # 24-bit scale
    frames = np.zeros((len(left), 2), dtype=np.int32)
    frames[:, 0] = left.astype(np.int32)
    frames[:, 1] = 0  # the second channel is silent: a wrong channel choice reads silence
    raw = frames.astype("<i4").view(np.uint8).reshape(-1, 2, 4)[:, :, :3].tobytes()
    (tmp_path / "s.wav").write_bytes(wav_bytes(raw, rate=44100, channels=2, bits=24))
    x = read_audio(tmp_path / "s.wav")
    assert len(x) == 8000
    assert 9000 < np.abs(x[100:-100]).max() < 11000


def test_float_and_g711_wavs(tmp_path):
    x = sine(16000, 0.5) / 32768.0
    (tmp_path / "f.wav").write_bytes(wav_bytes(x.astype("<f4").tobytes(), rate=16000, bits=32, tag=3))
    assert len(read_audio(tmp_path / "f.wav")) == 4000
    codes = g711.alaw_encode(sine(8000, 0.5))
    (tmp_path / "a.wav").write_bytes(wav_bytes(codes.tobytes(), bits=8, tag=6))
    assert np.array_equal(read_audio(tmp_path / "a.wav"), g711.alaw_decode(codes))


@pytest.mark.parametrize("suffix, encode", [
    (".ul", g711.ulaw_encode), (".ulaw", g711.ulaw_encode), (".al", g711.alaw_encode), (".alaw", g711.alaw_encode)])
def test_raw_g711(tmp_path, suffix, encode):
    codes = encode(sine(8000, 0.25))
    (tmp_path / f"x{suffix}").write_bytes(codes.tobytes())
    assert len(read_audio(tmp_path / f"x{suffix}")) == 2000


@pytest.mark.parametrize("suffix", [".sln", ".raw"])
def test_raw_slin(tmp_path, suffix):
    x = sine(8000, 0.25).astype("<i2")
    (tmp_path / f"x{suffix}").write_bytes(x.tobytes())
    assert np.array_equal(read_audio(tmp_path / f"x{suffix}"), x)


@pytest.mark.parametrize("name, content, problem", [
    ("empty.wav", b"", "empty file"),
    ("text.wav", b"hello, this is not audio at all", "no RIFF/WAVE header"),
    ("trunc.wav", wav_bytes(b"\x00\x01" * 4000)[:2000], "truncated WAV"),
    ("nodata.wav", wav_bytes(b"")[:36], "no data chunk"),
    ("x.mp3", b"ID3\x03\x00garbage", "unknown extension"),
    ("short.wav", wav_bytes(b"\x00\x01" * 800), "too short"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        read_audio(path, min_seconds=2.0)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and problem in message


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="cannot read file"):
        read_audio(tmp_path / "nope.wav")
