"""Read call audio from files into 8 kHz int16 mono.

WAV of any sample rate, width and channel count (the first channel is the caller), including G.711 WAVs;
headerless `.ul`/`.ulaw`, `.al`/`.alaw` and `.sln`/`.raw` (8 kHz s16le). Every problem is an `AudioError`
whose message names the file and says what is wrong in one line.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from pbxguard.audio import g711
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.audio.resample import resample, to_int16

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_ALAW = 6
_WAVE_FORMAT_MULAW = 7
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

RAW_FORMATS = {".ul": "ulaw", ".ulaw": "ulaw", ".al": "alaw", ".alaw": "alaw", ".sln": "slin", ".raw": "slin"}


class AudioError(ValueError):
    """A file that cannot be read as call audio; str() is a one-line message naming the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def decode_raw(data: bytes, encoding: str) -> np.ndarray:
    """Headerless 8 kHz audio bytes ("ulaw", "alaw" or "slin" = s16le) to int16 samples."""
    if encoding == "ulaw":
        return g711.ulaw_decode(data)
    if encoding == "alaw":
        return g711.alaw_decode(data)
    if encoding == "slin":
        return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.int16)
    raise ValueError(f"unknown raw encoding {encoding!r}")


def read_audio(path: str | Path, min_seconds: float = 0.0) -> np.ndarray:
    """The file's audio as 8 kHz int16 mono; `AudioError` if unreadable or shorter than `min_seconds`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AudioError(path, f"cannot read file ({exc.strerror or exc})") from None
    return decode_audio(path, data, min_seconds)


def decode_audio(path: str | Path, data: bytes, min_seconds: float = 0.0) -> np.ndarray:
    """`read_audio` for bytes already read (from an archive, say); `path` names them and gives the format."""
    path = Path(path)
    if not data:
        raise AudioError(path, "empty file")
    suffix = path.suffix.lower()
    if data[:4] == b"RIFF" or suffix == ".wav":
        samples = _parse_wav(path, data)
    elif suffix in RAW_FORMATS:
        samples = decode_raw(data, RAW_FORMATS[suffix])
    else:
        raise AudioError(path, f"not audio: unknown extension {suffix or '(none)'!r} and no RIFF/WAVE header")
    if samples.size == 0:
        raise AudioError(path, "no audio samples")
    if samples.size < min_seconds * SAMPLE_RATE:
        have, need = samples.size / SAMPLE_RATE * 1000, min_seconds * 1000
        raise AudioError(path, f"too short: {have:.0f} ms of audio, the window needs {need:.0f} ms")
    return samples


def _chunks(path: Path, data: bytes) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(path, "not a WAV file (no RIFF/WAVE header)")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"data" and len(body) < size:
            raise AudioError(path, f"truncated WAV: data chunk declares {size} bytes, file holds {len(body)}")
        chunks.setdefault(cid, body)
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks:
        raise AudioError(path, "malformed WAV: no fmt chunk")
    if b"data" not in chunks:
        raise AudioError(path, "malformed WAV: no data chunk (truncated?)")
    return chunks


def _parse_wav(path: Path, data: bytes) -> np.ndarray:
    chunks = _chunks(path, data)
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise AudioError(path, "malformed WAV: fmt chunk too short")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    if channels < 1 or rate < 1000 or block_align < 1:
        raise AudioError(path, f"malformed WAV: {channels} channels at {rate} Hz")
    body = chunks[b"data"]
    body = body[: len(body) - len(body) % block_align]
    width = block_align // channels
    if tag in (_WAVE_FORMAT_MULAW, _WAVE_FORMAT_ALAW) and width == 1:
        codes = np.frombuffer(body, dtype=np.uint8)[::channels]
        mono = (g711.ULAW_TO_LINEAR if tag == _WAVE_FORMAT_MULAW else g711.ALAW_TO_LINEAR)[codes].astype(np.float64)
    elif tag == _WAVE_FORMAT_PCM and width in (1, 2, 3, 4):
        mono = _pcm_first_channel(body, channels, width)
    elif tag == _WAVE_FORMAT_IEEE_FLOAT and width in (4, 8):
        mono = np.frombuffer(body, dtype=f"<f{width}")[::channels].astype(np.float64) * 32768.0
    else:
        raise AudioError(path, f"unsupported WAV encoding (format tag {tag}, {bits} bits)")
    if rate != SAMPLE_RATE:
        mono = resample(mono, rate)
    return to_int16(mono)


def _pcm_first_channel(body: bytes, channels: int, width: int) -> np.ndarray:
    """Integer PCM of any width, first channel, scaled to the int16 range as float64."""
    frames = np.frombuffer(body, dtype=np.uint8).reshape(-1, channels * width)[:, :width]
    if width == 1:  # 8-bit WAV is unsigned
        return (frames[:, 0].astype(np.float64) - 128.0) * 256.0
    padded = np.zeros((frames.shape[0], 4), dtype=np.uint8)
    padded[:, 4 - width :] = frames  # little-endian bytes into the top of an int32
    return padded.view("<i4")[:, 0].astype(np.float64) / 65536.0


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE, mode: int = 0o644) -> None:
    """Write int16 mono samples as a PCM WAV, created with `mode` whatever the umask."""
    pcm = np.asarray(samples, dtype="<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, _WAVE_FORMAT_PCM, 1, rate, rate * 2, 2, 16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(header + b"data" + struct.pack("<I", len(pcm)) + pcm)
