"""AudioSocket framing over a real socket: sizes from the length field, kinds, rates, hangup, the allow list."""

import asyncio
import uuid

import numpy as np

from pbxguard.protocols.audiosocket import AudioSocketConnection, FrameParser, Timeouts, frame, uuid_frame
from pbxguard.testing.replay import AUDIOSOCKET_TRACES, TRACES


class Sink:
    def __init__(self, need: int | None = None) -> None:
        self.samples: list[np.ndarray] = []
        self.rates: set[int] = set()
        self.ended: list[str] = []
        self.need = need

    def audio_bytes(self) -> int:
        return sum(map(len, self.samples)) * 2

    def audio(self, rate: int, pcm: bytes) -> bool:
        self.rates.add(rate)
        self.samples.append(np.frombuffer(pcm, dtype="<i2").copy())
        return self.need is not None and sum(map(len, self.samples)) >= self.need

    def end(self, reason: str) -> None:
        self.ended.append(reason)

    def received(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(0, dtype=np.int16)


async def exchange(data: bytes, sink: Sink, call_id: str, split: int = 0, close: bool = True,
                   allowed=lambda ip: True) -> bytes:
    attach = {call_id: sink}.get
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: AudioSocketConnection(attach, allowed, Timeouts(2.0, 2.0, 60.0)), "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    for k in range(0, len(data), split or len(data) or 1):
        writer.write(data[k : k + (split or len(data))])
        await writer.drain()
    if close:
        writer.write_eof()
    try:
        received = await asyncio.wait_for(reader.read(), 3)
    except ConnectionResetError:
        received = b""
    writer.close()
    server.close()
    return received


def test_frames_of_any_size_in_any_pieces():
    call_id = str(uuid.uuid4())
    rng = np.random.default_rng(0)
    audio = rng.integers(-3000, 3000, 4000).astype("<i2")
    payload = audio.tobytes()
    sizes = [320, 24, 320, 7, 1, 640, 3]  # odd sizes split samples across frames
    frames, pos, k = [uuid_frame(call_id)], 0, 0
    while pos < len(payload):
        frames.append(frame(0x10, payload[pos : pos + sizes[k % len(sizes)]]))
        pos += sizes[k % len(sizes)]
        k += 1
    frames.insert(3, frame(0x03, b"5"))  # DTMF: ignored
    frames.insert(5, frame(0x42, b"xyz"))  # unknown kind: skipped
    sink = Sink()
    asyncio.run(exchange(b"".join(frames), sink, call_id, split=5))
    assert np.array_equal(sink.received(), audio)
    assert sink.ended == ["eof"] and sink.rates == {8000}


def test_the_server_closes_once_the_sink_has_enough():
    call_id = str(uuid.uuid4())
    sink = Sink(need=1600)
    data = frame(0x01, uuid.UUID(call_id).bytes) + frame(0x10, b"\x01\x00" * 160) * 50
    asyncio.run(exchange(data, sink, call_id, close=False))
    assert sum(map(len, sink.samples)) == 1600
    assert sink.ended == ["closed"]


def test_hangup_and_error_frames_end_the_audio():
    for kind, reason in ((0x00, "hangup"), (0xFF, "error")):
        call_id = str(uuid.uuid4())
        sink = Sink()
        asyncio.run(exchange(frame(0x01, uuid.UUID(call_id).bytes) + frame(0x10, b"\x00" * 320) + frame(kind, b"\x01"),
                             sink, call_id, close=False))
        assert sink.ended == [reason]


def test_unknown_uuid_is_dropped_without_a_sink():
    sink = Sink()
    asyncio.run(exchange(frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00" * 320), sink, str(uuid.uuid4()), close=False))
    assert sink.samples == [] and sink.ended == []


def test_the_rate_comes_from_the_kind():
    call_id = str(uuid.uuid4())
    sink = Sink()
    asyncio.run(exchange(uuid_frame(call_id) + frame(0x12, b"\x00" * 640), sink, call_id))
    assert sink.rates == {16000} and sink.audio_bytes() == 640


def test_a_peer_outside_the_allow_list_is_refused_before_its_uuid_is_read():
    call_id = str(uuid.uuid4())
    sink = Sink()
    asked: list[str] = []
    asyncio.run(exchange(uuid_frame(call_id) + frame(0x10, b"\x00" * 320), sink, call_id, close=False,
                         allowed=lambda ip: asked.append(ip) or False))
    assert asked == ["127.0.0.1"]
    assert sink.samples == [] and sink.ended == []


def test_the_parser_reads_every_recorded_trace_whole():
    for trace in AUDIOSOCKET_TRACES:
        data = (TRACES / trace).read_bytes()
        parser = FrameParser()
        pieces = [f for k in range(0, len(data), 97) for f in parser.feed(data[k : k + 97])]
        assert pieces == list(FrameParser().feed(data)), trace
        assert pieces[0][0] == 0x01 and len(pieces[0][1]) == 16, trace
        assert b"".join(frame(kind, payload) for kind, payload in pieces) == data[: len(data) - len(parser.buffer)], trace
