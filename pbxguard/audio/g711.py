"""G.711 mu-law and A-law in numpy, bit-exact with the ITU-T G.711 reference (Sun's g711.c).

`audioop` did this until Python 3.13 removed it. Encoding goes through a 65,536-entry table built
once from the reference algorithm, so every int16 maps exactly as the reference maps it.
"""

from __future__ import annotations

from functools import cache

import numpy as np

_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159  # in 14-bit units, after the >> 2
_SEG_MULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])

MULAW_IDLE = 0xFF  # decodes to exactly 0
ALAW_IDLE = 0xD5  # decodes to +8: an idle A-law channel is a constant, not zero


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _MULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _MULAW_BIAS - t, t - _MULAW_BIAS).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


@cache  # 64K entries each: built on first encode, not by every process that only decodes
def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_MULAW_END, mag)  # first segment whose end >= mag, as the reference's search()
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


@cache
def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_ALAW_END, mag)
    segc = np.minimum(seg, 7)
    quant = np.where(segc < 2, mag >> 1, mag >> segc) & 0x0F
    code = np.where(seg >= 8, 0x7F, (segc << 4) | quant)
    return (code ^ mask).astype(np.uint8)


ULAW_TO_LINEAR = _ulaw_decode_table()
ALAW_TO_LINEAR = _alaw_decode_table()


def _as_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16) if samples.dtype.kind == "f" else samples.astype(np.int16)


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """Linear int16 samples to mu-law codes (uint8)."""
    return _ulaw_encode_table()[_as_int16(samples).astype(np.int32) + 32768]


def ulaw_decode(codes: np.ndarray | bytes) -> np.ndarray:
    """Mu-law codes (uint8 array or bytes) to linear int16 samples."""
    return ULAW_TO_LINEAR[np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, (bytes, bytearray, memoryview)) else codes]


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """Linear int16 samples to A-law codes (uint8)."""
    return _alaw_encode_table()[_as_int16(samples).astype(np.int32) + 32768]


def alaw_decode(codes: np.ndarray | bytes) -> np.ndarray:
    """A-law codes (uint8 array or bytes) to linear int16 samples."""
    return ALAW_TO_LINEAR[np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, (bytes, bytearray, memoryview)) else codes]


def round_trip(samples: np.ndarray, law: str) -> np.ndarray:
    """Encode and decode through a G.711 law ("ulaw" or "alaw"): what a telephone channel does."""
    if law == "ulaw":
        return ulaw_decode(ulaw_encode(samples))
    if law == "alaw":
        return alaw_decode(alaw_encode(samples))
    raise ValueError(f"unknown G.711 law {law!r} (expected 'ulaw' or 'alaw')")
