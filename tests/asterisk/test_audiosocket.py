"""AudioSocket framing over a real socket: sizes from the length field, kinds, resampling, hangup."""

import asyncio
import uuid

import numpy as np

from pbxguard.protocols.audiosocket import AudioSocketConnection, Resampler, frame


class Sink:
    def __init__(self, need: int | None = None) -> None:
        self.samples: list[np.ndarray] = []
        self.ended: list[str] = []
        self.need = need

    def feed(self, samples: np.ndarray) -> bool:
        self.samples.append(samples.copy())
        return self.need is not None and sum(map(len, self.samples)) >= self.need

    def end(self, reason: str) -> None:
        self.ended.append(reason)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(0, dtype=np.int16)


async def exchange(data: bytes, sink: Sink, call_id: str, split: int = 0, close: bool = True) -> bytes:
    attach = {call_id: sink}.get
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: AudioSocketConnection(attach, lambda ip: True, 2.0), "127.0.0.1", 0)
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
    frames, pos, k = [frame(0x01, uuid.UUID(call_id).bytes)], 0, 0
    while pos < len(payload):
        frames.append(frame(0x10, payload[pos : pos + sizes[k % len(sizes)]]))
        pos += sizes[k % len(sizes)]
        k += 1
    frames.insert(3, frame(0x03, b"5"))  # DTMF: ignored
    frames.insert(5, frame(0x42, b"xyz"))  # unknown kind: skipped
    sink = Sink()
    asyncio.run(exchange(b"".join(frames), sink, call_id, split=5))
    assert np.array_equal(sink.audio, audio)
    assert sink.ended == ["eof"]


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


def test_slin16_is_resampled_to_8k_without_frame_edge_artifacts():
    t = np.arange(32000) / 16000
    wide = (8000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    resampler = Resampler(16000)
    out = np.concatenate([resampler(wide[k : k + 320]) for k in range(0, len(wide), 320)])
    assert abs(len(out) - 16000) <= 64
    expected = 8000 * np.sin(2 * np.pi * 1000 * np.arange(len(out)) / 8000)
    lag = int(np.argmax(np.correlate(out[1000:1200].astype(float), expected[1000:1400], "valid")))
    error = out[1000:15000].astype(float) - expected[1000 + lag : 15000 + lag]
    assert np.sqrt(np.mean(error**2)) < 0.02 * 8000
