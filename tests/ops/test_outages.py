"""Broken infrastructure while calls go on: PostgreSQL stopped and restarted, a full disk, kill -9 in the
middle. Every call whose verdict was sent must end up in the call log, once."""

import asyncio
import contextlib
import os
import re
import sqlite3
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from pbxguard.testing.asterisk import FakeAsterisk
from tests.daemon import Daemon
from tests.ops.conftest import RunningDaemon
from tests.ops.test_daemon import LIVE, call

DENIED = "+12025550177"


def verdicts(port: int, n: int) -> list[str]:
    """n calls at once; the call ids of those that got a verdict (each one an acknowledged row)."""
    async def calls():
        fake = FakeAsterisk("127.0.0.1", port, realtime=False)
        return await asyncio.gather(*(fake.call(LIVE) for _ in range(n)))

    done = asyncio.run(calls())
    assert all(c.variables.get("PBXGUARD_ACTION") == "BRIDGE" for c in done)  # fail open or not, every call goes on
    return [c.variables["PBXGUARD_CALL_ID"] for c in done]


def pending(daemon: RunningDaemon) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.config['metrics']['port']}/metrics", timeout=5).read()
    return float(re.search(rb"^pbxguard_call_log_pending (\S+)$", text, re.M).group(1))


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_postgresql_outages_and_kill_9_lose_no_acknowledged_row(tmp_path, postgres):
    import psycopg

    spool = str(tmp_path / "calls.spool")
    settings = {"database": {"url": postgres.url, "spool": spool, "retry_s": 0.2}}
    first = RunningDaemon(tmp_path / "first", **settings)
    second = None
    try:
        assert first.pbxguard("deny", DENIED).returncode == 0
        acknowledged = verdicts(first.agi_port, 3)
        postgres.stop()
        try:
            acknowledged += verdicts(first.agi_port, 6)
            # The deny list still applies: the last one read is used while the database is away.
            check = call(first, np.zeros(0, dtype=np.int16), script="check", args=(), callerid=DENIED)
            assert check.variables["PBXGUARD_LIST"] == "DENY"
            assert pending(first) >= 6
        finally:
            postgres.start()
        wait_until(lambda: pending(first) == 0)
        acknowledged += verdicts(first.agi_port, 2)
        postgres.stop()  # a second outage, the daemon killed in it (the spool is all there is), and a new
        try:             # one started while PostgreSQL is still away
            acknowledged += verdicts(first.agi_port, 4)
            first.process.kill()
            first.process.wait(10)
            second = RunningDaemon(tmp_path / "second", **settings)
            acknowledged += verdicts(second.agi_port, 2)
        finally:
            postgres.start()
        wait_until(lambda: pending(second) == 0)
        second.log.flush()
        started = (tmp_path / "second" / "daemon.log").read_text()
        assert "call log unreachable" in started and "Traceback" not in started
    finally:
        first.stop()
        if second is not None:
            second.stop()
    with psycopg.connect(postgres.url) as db:
        rows = db.execute("SELECT call_id FROM calls WHERE call_id = ANY(%s)", [acknowledged]).fetchall()
    assert sorted(r[0] for r in rows) == sorted(acknowledged)  # every one, and none twice


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, filled up on request: a full disk without filling the machine's."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True, capture_output=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk) -> None:
    with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


def rows(path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [r[0] for r in db.execute("SELECT call_id FROM calls")]


def test_a_full_disk_and_kill_9_lose_no_acknowledged_row(tmp_path, small_disk):
    settings = {"database": {"path": str(small_disk / "calls.db"), "spool": str(tmp_path / "calls.spool"),
                             "retry_s": 0.2}, "captures": {"enabled": False}}
    first = RunningDaemon(tmp_path / "first", **settings)
    second = None
    try:
        acknowledged = verdicts(first.agi_port, 2)
        fill(small_disk)
        acknowledged += verdicts(first.agi_port, 6)
        assert pending(first) >= 6
        first.process.kill()
        first.process.wait(10)
        os.unlink(small_disk / "filler")
        second = RunningDaemon(tmp_path / "second", **settings)
        acknowledged += verdicts(second.agi_port, 2)
        wait_until(lambda: pending(second) == 0)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    logged = rows(small_disk / "calls.db")
    assert sorted(logged) == sorted(set(logged)) and set(acknowledged) <= set(logged)


def test_no_room_for_the_spool_either_holds_rows_until_there_is(tmp_path, small_disk):
    daemon = Daemon(database={"path": str(small_disk / "calls.db"), "spool": str(small_disk / "calls.spool"),
                              "retry_s": 0.2})
    writer = daemon.server.recorder.writer
    try:
        fill(small_disk)
        held = verdicts(daemon.agi_port, 5)  # the verdicts still go out: fail open
        assert len(writer.held) >= 5
        os.unlink(small_disk / "filler")
        wait_until(lambda: writer.pending == 0)
    finally:
        daemon.stop()
    assert set(held) <= set(rows(small_disk / "calls.db"))


def test_out_of_file_descriptors_is_one_log_line_and_calls_resume(tmp_path):
    import resource
    import socket

    def few_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))  # a hard limit the daemon cannot raise

    daemon = RunningDaemon(tmp_path, preexec_fn=few_files, audiosocket={"port": (port := _port()),
                                                                       "advertise": f"127.0.0.1:{port}",
                                                                       "first_frame_timeout_s": 2.0})
    try:
        flood = []
        for _ in range(400):  # allowed peers that connect and say nothing: more than the daemon can open
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            flood.append(s)
        time.sleep(3.0)
        for s in flood:
            s.close()
        assert call(daemon).variables["PBXGUARD_ACTION"] == "BRIDGE"
    finally:
        daemon.stop()
    log = (tmp_path / "daemon.log").read_text()
    assert "open-files limit 200 is below the connections allowed" in log
    assert "out of file descriptors" in log and "Traceback" not in log


def _port() -> int:
    from tests.ops.conftest import free_port

    return free_port()
