"""Property-based fuzzing of the three parsers a peer's bytes reach: AGI, AudioSocket and ESL.

Whatever the bytes: no exception escapes but the parser's own, nothing hangs (hypothesis' deadline), and
what the parser keeps stays bounded. The tests run 2,000 inputs each; the benchmark profile runs 10^6:
`HYPOTHESIS_PROFILE=fuzz python -m pytest -q tests/protocols/test_fuzz.py` (README, "Benchmarks").
"""

import asyncio
import io
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbxguard.protocols import agi
from pbxguard.protocols.audiosocket import HEADER, AudioSocketConnection, FrameParser, Timeouts, frame
from pbxguard.protocols.esl import ESLError, MessageReader
from pbxguard.protocols.fastagi import AGIError, FastAGIApplication, FastAGIRequest

settings.register_profile("tests", max_examples=2000, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=1_000_000, deadline=1000, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tests"))

# Bytes that look like the protocols, and bytes that do not.
AGI_LINES = st.lists(st.one_of(
    st.sampled_from([b"200 result=1", b"200 result=-1", b"HANGUP", b"511 Command Not Permitted", b"520-Invalid",
                     b"520 End of proper usage.", b"100 result=0 Trying...", b"agi_callerid: x", b""]),
    st.binary(max_size=40)), max_size=12).map(lambda lines: b"\n".join(lines))
ESL_WIRE = st.lists(st.one_of(
    st.sampled_from([b"Content-Type: api/response\n", b"Content-Type: text/event-plain\n", b"Content-Length: 3\n",
                     b"Content-Length: 99999999\n", b"Content-Length: -1\n", b"Content-Length: x\n", b"\n", b"\r\n",
                     b"Reply-Text: +OK\n", b"X: %0A%00%E2%80%A8\n", b"+OK"]),
    st.binary(max_size=60)), max_size=16).map(b"".join)


@given(st.one_of(st.binary(max_size=4096), AGI_LINES))
@example(b"\xc2\xb2\n200 result=1")  # found by the 10^6 run: '\u00b2'.isdigit() is true, and int() of it fails
def test_agi_environment_and_replies(data):
    headers = agi.parse_environment(data)
    assert all("\n" not in k + v for k, v in headers.items())
    assert agi.parse_environment(agi.encode_environment(headers)) == {k: agi.header_value(v) for k, v in headers.items()}

    async def replies():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        request = FastAGIRequest(FastAGIApplication(), {}, reader, None, command_timeout=1.0)
        for _ in range(20):
            try:
                await asyncio.wait_for(request._read_reply(), 1.0)
            except AGIError:
                return

    asyncio.run(replies())


class Sink:
    def __init__(self) -> None:
        self.received = 0

    def audio(self, rate: int, pcm: bytes) -> bool:
        assert len(pcm) % 2 == 0
        self.received += len(pcm)
        return self.received > 64000

    def end(self, reason: str) -> None:
        pass


class Transport:
    def get_extra_info(self, name):
        return ("127.0.0.1", 4242)

    def close(self) -> None:
        pass


KINDS = st.sampled_from([0x00, 0x01, 0x03, 0x10, 0x12, 0x18, 0x42, 0xFF])
AUDIOSOCKET_WIRE = st.lists(st.one_of(
    st.builds(frame, KINDS, st.binary(max_size=400)),
    st.builds(lambda k, n: bytes([k]) + n.to_bytes(2, "big"), KINDS, st.integers(0, 65535)),  # a header alone
    st.binary(max_size=50)), max_size=20).map(b"".join)


@given(AUDIOSOCKET_WIRE, st.lists(st.integers(1, 700), min_size=1, max_size=8))
def test_audiosocket_frames_in_any_pieces(data, cuts):
    parser, pos = FrameParser(), 0
    connection = AudioSocketConnection(lambda call_id: Sink(), lambda peer: True, Timeouts())

    async def feed():
        nonlocal pos
        connection.connection_made(Transport())
        for cut in cuts * (len(data) // sum(cuts) + 1):
            piece, pos = data[pos : pos + cut], pos + cut
            list(parser.feed(piece))
            assert len(parser.buffer) < HEADER + 65536
            connection.data_received(piece)
        connection.connection_lost(None)

    asyncio.run(feed())


@given(st.one_of(st.binary(max_size=4096), ESL_WIRE))
@example(b"Content-Type: api/response\nContent-Length: \xc2\xb2\n\n")
def test_esl_messages(data):
    reader = MessageReader(io.BufferedReader(io.BytesIO(data)), max_header_bytes=2048, max_body_bytes=4096)
    try:
        while (message := reader.read()) is not None:
            assert len(message.body) <= 4096 and all("\n" not in k for k in message.headers)
    except ESLError:
        pass
