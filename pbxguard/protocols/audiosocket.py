"""AudioSocket (app_audiosocket / chan_audiosocket): Asterisk streams a call's audio to us over TCP.

Frames: 1 byte kind, 2 bytes big-endian payload length, payload. The stream opens with a UUID frame (0x01,
16 raw bytes) that says which call this is; audio follows as signed 16-bit little-endian mono, 0x10 at 8 kHz
and 0x11..0x18 at 12..192 kHz, in frames whose size follows the channel's ptime (never assume 320 bytes:
Asterisk 22 sends a 24-byte frame now and then). 0x03 is a DTMF digit, 0x00 hangup, 0xff an error; other
kinds are skipped. A caller hangup is just EOF. We close the socket once the verdict is ready.
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("pbxguard.audiosocket")

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_SLIN = 0x10
KIND_ERROR = 0xFF
SLIN_RATES = {0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000,
              0x17: 96000, 0x18: 192000}
HEADER = 3


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket frame."""
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def uuid_frame(call_id: str) -> bytes:
    """The frame that opens a stream: which call this audio belongs to."""
    return frame(KIND_UUID, uuidlib.UUID(call_id).bytes)


HANGUP_FRAME = frame(KIND_HANGUP)


class FrameParser:
    """Bytes in, whole (kind, payload) frames out; a partial frame waits for the rest."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buffer += data
        pos = 0
        try:
            while len(self.buffer) - pos >= HEADER:
                kind = self.buffer[pos]
                length = int.from_bytes(self.buffer[pos + 1 : pos + 3], "big")
                if len(self.buffer) - pos - HEADER < length:
                    break
                payload = bytes(self.buffer[pos + HEADER : pos + HEADER + length])
                pos += HEADER + length
                yield kind, payload
        finally:
            del self.buffer[:pos]


class AudioSink(Protocol):
    """Where one call's audio goes (the screening service implements it)."""

    def audio(self, rate: int, pcm: bytes) -> bool:
        """Whole s16le samples at `rate` Hz; True once the call needs no more audio."""

    def end(self, reason: str) -> None:
        """The audio stopped: "eof" (caller hung up), "hangup" or "error" frame, or "closed" by us."""


@dataclass(frozen=True)
class Timeouts:
    """How long a connection may take: to its UUID frame, between frames after it, and in all."""

    first_frame_s: float = 3.0
    idle_s: float = 2.0  # a call's audio comes every 20 ms: a second of nothing is a peer that has stopped
    total_s: float = 60.0  # longer than any window and its grace


class AudioSocketConnection:
    """One connection from Asterisk (or a relay). `attach(uuid)` returns the call's sink, or None if unknown.

    An asyncio protocol by its methods, not by inheritance: importing this module costs no asyncio, since the
    EAGI relay, which must start fast, uses the framing above. `on_lost` is called once the connection is gone
    (the server counts connections with it)."""

    def __init__(self, attach: Callable[[str], AudioSink | None], allowed: Callable[[str], bool],
                 timeouts: Timeouts, on_lost: Callable[[], None] | None = None) -> None:
        self.attach = attach
        self.allowed = allowed
        self.timeouts = timeouts
        self.on_lost = on_lost
        self.opened = self.last_data = time.monotonic()
        self.parser = FrameParser()
        self.uuid: str | None = None
        self.sink: AudioSink | None = None
        self.transport: asyncio.Transport | None = None
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
        import asyncio

        self.loop = asyncio.get_running_loop()
        self._timer = self.loop.call_later(self.timeouts.first_frame_s, self._no_uuid)

    def _no_uuid(self) -> None:
        if self.uuid is None and not self.done:
            log.warning("audiosocket: %s sent no UUID frame within %.1f s; dropped", self.peer, self.timeouts.first_frame_s)
            self.close()

    def _watch(self) -> None:
        """After the UUID: drop a peer that stops sending, or goes on past any call's length."""
        if self.done:
            return
        now = time.monotonic()
        if now - self.last_data > self.timeouts.idle_s:
            log.warning("audiosocket: call %s from %s sent nothing for %.1f s; dropped", self.uuid, self.peer,
                        self.timeouts.idle_s)
            self._end("idle")
        elif now - self.opened > self.timeouts.total_s:
            log.warning("audiosocket: call %s from %s still open after %.0f s; dropped", self.uuid, self.peer,
                        self.timeouts.total_s)
            self._end("too_long")
        else:
            self._timer = self.loop.call_later(self.timeouts.idle_s / 2, self._watch)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.last_data = time.monotonic()
        for kind, payload in self.parser.feed(data):
            self._frame(kind, payload)
            if self.done:
                break

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
            return
        if self._timer:
            self._timer.cancel()
        self._timer = self.loop.call_later(self.timeouts.idle_s / 2, self._watch)

    def _audio(self, kind: int, payload: bytes) -> None:
        if self.sink is None:
            log.warning("audiosocket: %s sent audio before a UUID; dropped", self.peer)
            self.close()
            return
        data = self.odd_byte + payload
        whole = len(data) - len(data) % 2
        self.odd_byte = data[whole:]  # a frame split mid-sample keeps its half sample
        if whole and self.sink.audio(SLIN_RATES[kind], data[:whole]):
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

    def eof_received(self) -> None:
        """The peer is done sending: returning None closes the transport, and connection_lost follows."""

    def pause_writing(self) -> None:
        """Nothing to pause: we never write to AudioSocket."""

    def resume_writing(self) -> None:
        """Nothing to resume."""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.done = True
            if self._timer:
                self._timer.cancel()
            if self.sink is not None:
                self.sink.end("eof")
        if self.on_lost is not None:
            self.on_lost()
