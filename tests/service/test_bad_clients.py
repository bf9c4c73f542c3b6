"""Bad clients on both listeners while good calls go through: the good calls must not notice."""

import asyncio
import uuid

import pytest

from pbxguard.protocols.audiosocket import frame
from pbxguard.testing.asterisk import FakeAsterisk
from pbxguard.testing.replay import agi_environment
from tests.daemon import Daemon

HEADER_TIMEOUT_S = 30.0  # far longer than the good calls take: a blocked loop would show


@pytest.fixture(scope="module")
def patient_daemon():
    d = Daemon(fastagi={"header_timeout_s": HEADER_TIMEOUT_S}, audiosocket={"first_frame_timeout_s": HEADER_TIMEOUT_S})
    yield d
    d.stop()


async def slow_loris(port: int, stop: asyncio.Event) -> bool:
    """Send a header one byte per 100 ms; True if the daemon was still waiting when the good calls ended."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = agi_environment("screen", ["inbound"], "PJSIP/slow", "1.1")
    for byte in data[:-2]:
        if stop.is_set():
            break
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)
    still_open = not reader.at_eof()
    writer.close()
    return still_open


async def silent(port: int, stop: asyncio.Event) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await stop.wait()
    writer.close()


async def huge_header(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(160):  # 10 MB of header-looking bytes, no blank line
            writer.write(b"agi_x: " + b"y" * 65536 + b"\n")
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def garbage(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage \n\n")
    await writer.drain()
    await reader.read()  # the daemon closes on us
    writer.close()


async def half_open(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(agi_environment("screen", ["inbound"], "PJSIP/half", "2.2")[:200])
    await writer.drain()
    writer.close()  # mid-header: panoramisk itself would spin forever here


async def audiosocket_abuse(port: int) -> None:
    async def send(data: bytes, split: int = 0) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            chunks = [data[i : i + split] for i in range(0, len(data), split)] if split else [data]
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            await asyncio.wait_for(reader.read(), 2)
        except (ConnectionError, TimeoutError):
            pass
        writer.close()

    await asyncio.gather(
        send(frame(0x01, uuid.uuid4().bytes) + frame(0x10, b"\x00" * 320)),  # unknown UUID
        send(frame(0x10, b"\x00" * 320)),  # audio before any UUID
        send(frame(0x01, b"short")),  # malformed UUID frame
        send(frame(0x42, b"??") + frame(0x77, b"") + frame(0x01, uuid.uuid4().bytes), split=1),  # unknown kinds, 1-byte writes
        send(b"\x10\xff"),  # half a header, then EOF
    )


def test_bad_clients_leave_good_calls_alone(patient_daemon, calls_audio):
    d = patient_daemon
    fake = FakeAsterisk("127.0.0.1", d.agi_port)

    async def good_calls():
        return await asyncio.gather(*(fake.call(calls_audio[k]) for k in ("live", "dead_air", "fax")))

    baseline = asyncio.run(good_calls())

    async def under_attack():
        stop = asyncio.Event()
        loris = asyncio.ensure_future(slow_loris(d.agi_port, stop))
        quiet = [asyncio.ensure_future(silent(p, stop)) for p in (d.agi_port, d.audio_port)]
        await asyncio.sleep(0.2)
        attacks = asyncio.gather(huge_header(d.agi_port), garbage(d.agi_port), half_open(d.agi_port),
                                 audiosocket_abuse(d.audio_port))
        good = await good_calls()
        stop.set()
        await attacks
        await asyncio.gather(*quiet)
        return good, await loris

    good, loris_still_waiting = asyncio.run(under_attack())
    assert loris_still_waiting, "the good calls finished only after the slow client gave up"
    for before, after in zip(baseline, good):
        assert after.agistatus == "SUCCESS"
        for name in ("PBXGUARD_VERDICT", "PBXGUARD_ACTION", "PBXGUARD_DECIDED_MS"):
            assert after.variables[name] == before.variables[name]
