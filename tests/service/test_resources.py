"""Resources a peer could hold: idle audio connections, too many connections, the metrics endpoint, file
descriptors. Each is bounded, and the good calls go on."""

import asyncio
import socket
import time
import urllib.request
import uuid

import pytest

from pbxguard.metrics import MAX_REQUESTS
from pbxguard.protocols.audiosocket import uuid_frame
from pbxguard.relays.contract import socket_paths
from pbxguard.testing.asterisk import FakeAsterisk
from tests.daemon import Daemon

CAP = 10


@pytest.fixture(scope="module")
def tight_daemon():
    d = Daemon(fastagi={"max_connections": CAP, "header_timeout_s": 1.0},
               audiosocket={"idle_timeout_s": 0.5, "max_call_s": 5.0})
    yield d
    d.stop()


async def closed_by_daemon(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except TimeoutError:
        return False


def test_audio_connections_that_go_quiet_after_their_uuid_are_dropped(tight_daemon, calls_audio):
    async def scenario():
        quiet = []
        for _ in range(20):  # the relay socket gives any UUID a call that waits: the costliest place to idle
            reader, writer = await asyncio.open_unix_connection(socket_paths(tight_daemon.rundir)[1])
            writer.write(uuid_frame(str(uuid.uuid4())))
            quiet.append((reader, writer))
        good = await FakeAsterisk("127.0.0.1", tight_daemon.agi_port).call(calls_audio["live"])
        dropped = await asyncio.gather(*(closed_by_daemon(r, 10.0) for r, _ in quiet))
        for _, writer in quiet:
            writer.close()
        return good, dropped

    good, dropped = asyncio.run(scenario())
    assert good.variables["PBXGUARD_ACTION"] == "BRIDGE"
    assert all(dropped)


def test_connections_past_the_cap_are_closed_and_calls_resume_after(tight_daemon, calls_audio, caplog):
    async def scenario():
        held = [await asyncio.open_connection("127.0.0.1", tight_daemon.agi_port) for _ in range(3 * CAP)]
        refused = await asyncio.gather(*(closed_by_daemon(r, 0.5) for r, _ in held))
        await asyncio.sleep(1.5)  # the silent ones reach their header timeout and free their slots
        good = await FakeAsterisk("127.0.0.1", tight_daemon.agi_port).call(calls_audio["fax"])
        for _, writer in held:
            writer.close()
        return refused, good

    refused, good = asyncio.run(scenario())
    assert sum(refused) == 2 * CAP  # all but the first CAP, at once
    assert good.variables["PBXGUARD_ACTION"] == "HANGUP"
    assert "connections open (max_connections); refusing a new one" in caplog.text


def test_the_metrics_endpoint_has_an_allow_list_a_timeout_and_a_cap(tight_daemon):
    port = tight_daemon.server.metrics_server[0].server_port
    url = f"http://127.0.0.1:{port}/metrics"
    hung = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_REQUESTS)]
    for s in hung:
        s.sendall(b"GET /metr")  # and nothing more
    time.sleep(0.3)
    with pytest.raises(OSError):  # every slot is taken by a client that stopped talking
        urllib.request.urlopen(url, timeout=3).read()
    time.sleep(5.5)  # their socket timeout
    assert b"pbxguard_calls" in urllib.request.urlopen(url, timeout=5).read()
    for s in hung:
        s.close()
    tight_daemon.server.config = tight_daemon.server.config.with_(allow=("10.9.9.9/32",))  # as a reload would
    try:
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=3).read()
    finally:
        tight_daemon.server.config = tight_daemon.server.config.with_(allow=("127.0.0.0/8", "::1"))
