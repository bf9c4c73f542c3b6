"""AudioSocket (app_audiosocket / chan_audiosocket): Asterisk streams a call's audio to us over TCP.

Frames: 1 byte kind, 2 bytes big-endian payload length, payload. The stream opens with a UUID frame (0x01,
16 raw bytes) that says which call this is; audio follows as signed 16-bit little-endian mono, 0x10 at 8 kHz
and 0x11..0x18 at 12..192 kHz, in frames whose size follows the channel's ptime (never assume 320 bytes:
Asterisk 22 sends a 24-byte frame now and then). 0x03 is a DTMF digit, 0x00 hangup, 0xff an error; other
kinds are skipped. A caller hangup is just EOF. We close the socket once the verdict is ready.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from collections.abc import Callable
from math import gcd
from typing import Protocol

import numpy as np
from scipy.signal import resample_poly

log = logging.getLogger("pbxguard.audiosocket")

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_SLIN = 0x10
KIND_ERROR = 0xFF
SLIN_RATES = {0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000,
              0x17: 96000, 0x18: 192000}
HEADER = 3
HANGUP_FRAME = bytes([KIND_HANGUP, 0, 0])


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket frame."""
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


class AudioSink(Protocol):
    """Where one call's audio goes (the screening service implements it)."""

    def feed(self, samples: np.ndarray) -> bool:
        """8 kHz int16 samples; True once the call needs no more audio."""

    def end(self, reason: str) -> None:
        """The audio stopped: "eof" (caller hung up), "hangup" or "error" frame, or "closed" by us."""


class Resampler:
    """To 8 kHz, chunk by chunk. Frames are short, so each chunk is resampled with the tail of the last
    one as context, which keeps the filter from ringing at every frame edge."""

    CONTEXT = 64

    def __init__(self, rate: int) -> None:
        g = gcd(rate, 8000)
        self.up, self.down = 8000 // g, rate // g
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
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


class AudioSocketConnection(asyncio.Protocol):
    """One TCP connection from Asterisk. `attach(uuid)` returns the call's sink, or None if unknown."""

    def __init__(self, attach: Callable[[str], AudioSink | None], allowed: Callable[[str], bool],
                 first_frame_timeout: float) -> None:
        self.attach = attach
        self.allowed = allowed
        self.first_frame_timeout = first_frame_timeout
        self.buffer = bytearray()
        self.uuid: str | None = None
        self.sink: AudioSink | None = None
        self.transport: asyncio.Transport | None = None
        self.resampler: Resampler | None = None
        self.odd_byte = b""
        self.done = False
        self.skipped_kinds: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = (transport.get_extra_info("peername") or ("?", 0))[0]
        if not self.allowed(str(self.peer)):
            log.warning("audiosocket: refused connection from %s (not in 'allow')", self.peer)
            self.close()
            return
        self._timer = asyncio.get_running_loop().call_later(self.first_frame_timeout, self._no_uuid)

    def _no_uuid(self) -> None:
        if self.uuid is None and not self.done:
            log.warning("audiosocket: %s sent no UUID frame within %.1f s; dropped", self.peer, self.first_frame_timeout)
            self.close()

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        pos = 0
        while len(self.buffer) - pos >= HEADER and not self.done:
            kind = self.buffer[pos]
            length = int.from_bytes(self.buffer[pos + 1 : pos + 3], "big")
            if len(self.buffer) - pos - HEADER < length:
                break
            payload = bytes(self.buffer[pos + HEADER : pos + HEADER + length])
            pos += HEADER + length
            self._frame(kind, payload)
        del self.buffer[:pos]

    def _frame(self, kind: int, payload: bytes) -> None:
        if kind == KIND_UUID:
            self._uuid(payload)
        elif kind in SLIN_RATES:
            self._audio(kind, payload)
        elif kind == KIND_HANGUP:
            self._end("hangup")
        elif kind == KIND_ERROR:
            log.warning("audiosocket: error frame on call %s: %s", self.uuid, payload.hex())
            self._end("error")
        elif kind != KIND_DTMF and kind not in self.skipped_kinds:
            self.skipped_kinds.add(kind)
            log.info("audiosocket: skipping frames of unknown kind 0x%02x on call %s", kind, self.uuid)

    def _uuid(self, payload: bytes) -> None:
        if self.uuid is not None:
            return
        if len(payload) != 16:
            log.warning("audiosocket: %s sent a %d-byte UUID frame; dropped", self.peer, len(payload))
            self.close()
            return
        self.uuid = str(uuidlib.UUID(bytes=payload))
        self.sink = self.attach(self.uuid)
        if self.sink is None:
            log.warning("audiosocket: %s sent unknown call UUID %s; dropped", self.peer, self.uuid)
            self.close()

    def _audio(self, kind: int, payload: bytes) -> None:
        if self.sink is None:
            log.warning("audiosocket: %s sent audio before a UUID; dropped", self.peer)
            self.close()
            return
        data = self.odd_byte + payload
        self.odd_byte = data[len(data) - len(data) % 2 :]  # a frame split mid-sample keeps its half sample
        samples = np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")
        if kind != 0x10:
            if self.resampler is None:
                self.resampler = Resampler(SLIN_RATES[kind])
            samples = self.resampler(samples)
        if len(samples) and self.sink.feed(samples):
            self._end("closed")

    def _end(self, reason: str) -> None:
        if self.sink is not None and not self.done:
            self.sink.end(reason)
        self.close()

    def close(self) -> None:
        self.done = True
        if self._timer:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.done = True
            if self._timer:
                self._timer.cancel()
            if self.sink is not None:
                self.sink.end("eof")
