"""`pbxguard serve` with two workers: calls spread over both, one set of metrics, caller rates counted
across them, and a worker that dies or freezes fails open only its own calls and comes back."""

import asyncio
import os
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from pbxguard.audio.files import read_audio
from pbxguard.relays.contract import connect, socket_paths
from pbxguard.testing.asterisk import FakeAsterisk
from tests.ops.conftest import RunningDaemon

ROOT = Path(__file__).resolve().parents[2]
LIVE = read_audio(ROOT / "tests" / "examples" / "live_answer.wav")
SHORT = ("inbound", "600")  # a 600 ms window per call: the tests place many


def workers_of(daemon: RunningDaemon) -> dict[int, int]:
    """{worker index: pid} of the supervisor's children."""
    found = {}
    for pid in Path(f"/proc/{daemon.process.pid}/task/{daemon.process.pid}/children").read_text().split():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        found[int(argv[argv.index(b"--worker") + 1])] = int(pid)
    return found


def handled_by(daemon: RunningDaemon, call_id: str) -> int:
    """The worker whose call line names `call_id`."""
    line = re.search(rf"pbxguard\.service\.calls\[(\d+)\]: call_id={call_id} ", (daemon.dir / "daemon.log").read_text())
    assert line, f"no call line for {call_id}"
    return int(line.group(1))


async def calls(daemon: RunningDaemon, count: int, **kwargs) -> list:
    return await asyncio.gather(*(FakeAsterisk("127.0.0.1", daemon.agi_port).call(LIVE, args=SHORT, **kwargs)
                                  for _ in range(count)))


@pytest.fixture
def two_workers(tmp_path):
    daemon = RunningDaemon(tmp_path, workers=2, callerid={"max_calls_per_minute": 3},
                           eagi={"enabled": True, "directory": str(tmp_path / "run")})
    yield daemon
    daemon.stop()


def test_calls_spread_over_the_workers_and_the_metrics_count_them_all(two_workers):
    assert sorted(workers_of(two_workers)) == [0, 1]
    results = asyncio.run(calls(two_workers, 16))
    assert all(r.variables.get("PBXGUARD_VERDICT") == "HUMAN" for r in results)
    time.sleep(0.3)  # the last call lines
    by = {handled_by(two_workers, r.variables["PBXGUARD_CALL_ID"]) for r in results}
    assert by == {0, 1}
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{two_workers.config['metrics']['port']}/metrics",
                                     timeout=10).read().decode()
    total = sum(float(v) for v in re.findall(r'^pbxguard_calls_total\{[^}]*verdict="human"\} (\S+)$', metrics, re.M))
    assert total == 16
    assert "pbxguard_active_calls 0.0" in metrics and 'pbxguard_model_info{version="' in metrics


def test_a_callers_rate_is_counted_across_the_workers(two_workers):
    reasons, by = [], set()
    for _ in range(7):  # one after the other: each is in the call log before the next starts
        result = asyncio.run(FakeAsterisk("127.0.0.1", two_workers.agi_port).call(LIVE, args=SHORT,
                                                                                  callerid="+12025550143"))
        reasons.append(result.variables["PBXGUARD_REASON"])
        time.sleep(0.1)
        by.add(handled_by(two_workers, result.variables["PBXGUARD_CALL_ID"]))
    assert ["CALL_RATE" in r for r in reasons] == [False] * 3 + [True] * 4, reasons
    assert by == {0, 1}  # else this proved nothing about sharing


def test_relays_reach_every_worker_and_skip_a_stale_socket(two_workers, tmp_path):
    rundir = str(tmp_path / "run")
    for path in socket_paths(rundir, 2):  # a worker 2 that is gone: its socket files stay, nobody listens
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
            stale.bind(path)
    reached = set()
    for key in range(40):
        agi, audio = connect(rundir, f"call-{key}")
        reached.add(agi.getpeername())
        agi.close()
        assert audio is not None
        audio.close()
    assert reached == {socket_paths(rundir, 0)[0], socket_paths(rundir, 1)[0]}


@pytest.mark.parametrize("failure", ["killed", "frozen"])
def test_a_failed_worker_fails_open_only_its_calls_and_comes_back(two_workers, failure):
    victim = workers_of(two_workers)[1]

    async def during_failure():
        in_progress = [asyncio.ensure_future(FakeAsterisk("127.0.0.1", two_workers.agi_port).call(LIVE))
                       for _ in range(12)]  # a whole 2 s window each
        await asyncio.sleep(0.5)
        os.kill(victim, signal.SIGKILL if failure == "killed" else signal.SIGSTOP)
        failed_at = time.monotonic()
        ended = []
        for call in asyncio.as_completed(in_progress):
            ended.append((await call, time.monotonic() - failed_at))
        return ended

    try:
        ended = asyncio.run(during_failure())
    finally:
        if failure == "frozen":
            try:
                os.kill(victim, signal.SIGCONT)
            except ProcessLookupError:
                pass
    screened = [r for r, _ in ended if r.variables.get("PBXGUARD_VERDICT") == "HUMAN"]
    lost = [(r, after) for r, after in ended if r.variables.get("PBXGUARD_VERDICT") != "HUMAN"]
    assert screened and lost, "the calls should have been on both workers"
    assert {handled_by(two_workers, r.variables["PBXGUARD_CALL_ID"]) for r in screened} == {0}
    assert all(after <= 1.0 for _, after in lost)  # fail open: let through within a second
    assert all(r.variables.get("PBXGUARD_ACTION") in (None, "BRIDGE") for r, _ in lost)
    deadline = time.monotonic() + 20  # the supervisor restarts it
    while (workers_of(two_workers).get(1) in (None, victim)) and time.monotonic() < deadline:
        time.sleep(0.2)
    replacement = workers_of(two_workers).get(1)
    assert replacement not in (None, victim)
    time.sleep(2.0)  # it loads its model and binds
    again = asyncio.run(calls(two_workers, 12))
    assert all(r.variables.get("PBXGUARD_VERDICT") == "HUMAN" for r in again)
    time.sleep(0.3)
    assert {handled_by(two_workers, r.variables["PBXGUARD_CALL_ID"]) for r in again} == {0, 1}
    log = (two_workers.dir / "daemon.log").read_text()
    assert ("daemon worker 1 died" if failure == "killed" else "daemon worker 1 (pid") in log
