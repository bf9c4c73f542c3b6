"""Hostile clients, for the tests and the soak benchmark: each one attacks a listener the way a bad peer
on the PBX's network could, and ends by itself."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from pbxguard.protocols.audiosocket import frame
from pbxguard.testing.replay import agi_environment


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


async def connect_and_close(port: int, times: int) -> None:
    """Connections opened and closed at once, as fast as they go."""
    for _ in range(times):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()


async def mix(agi_port: int, audio_port: int, stop: asyncio.Event) -> int:
    """Every attack above, round after round, until `stop`; returns the rounds run."""
    rounds = 0
    while not stop.is_set():
        loris = asyncio.ensure_future(slow_loris(agi_port, stop))
        quiet = [asyncio.ensure_future(silent(p, stop)) for p in (agi_port, audio_port)]
        await asyncio.gather(huge_header(agi_port), garbage(agi_port), half_open(agi_port),
                             audiosocket_abuse(audio_port), connect_and_close(agi_port, 200),
                             connect_and_close(audio_port, 200), return_exceptions=True)
        rounds += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        loris.cancel()
        for task in quiet:
            task.cancel()
        await asyncio.gather(loris, *quiet, return_exceptions=True)
    return rounds
