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


def test_a_worker_only_waiting_for_a_cpu_is_not_killed(two_workers):
    """A saturated machine is not a frozen worker: killing it would drop its calls and load its models again
    on the same busy CPUs (at 75 concurrent FreeSWITCH calls both workers were killed). Its beating thread is
    starved here for 1.5 s, twice `stall_s`, by a real-time busy loop on its CPU."""
    import multiprocessing

    victim = workers_of(two_workers)[1]
    cpu = min(os.sched_getaffinity(0))
    hog = multiprocessing.get_context("fork").Process(target=_spin_on, args=(cpu, 1.5))
    os.sched_setaffinity(victim, {cpu})
    try:
        hog.start()
        hog.join()
    finally:
        os.sched_setaffinity(victim, os.sched_getaffinity(0))
    time.sleep(0.5)
    assert workers_of(two_workers).get(1) == victim
    log = (two_workers.dir / "daemon.log").read_text()
    assert "killing it" not in log
    assert re.search(rf"daemon worker 1 \(pid {victim}\) is [\d.]+ s late but waiting for a CPU", log)
    assert all(r.variables.get("PBXGUARD_VERDICT") == "HUMAN" for r in asyncio.run(calls(two_workers, 4)))


@pytest.mark.parametrize("state", ["spinning", "stopped", "waiting for a CPU"])
def test_only_a_process_waiting_for_a_cpu_counts_as_starved(state):
    """The watchdogs' grace is for a process that cannot get a CPU; one spinning (a busy-loop bug) or stopped
    is stuck and is killed after `stall_s`, so its calls still fail open within a second."""
    import multiprocessing

    from pbxguard.supervisor import ran_s, starved

    ctx = multiprocessing.get_context("fork")
    cpu = min(os.sched_getaffinity(0))
    child = ctx.Process(target=_spin_on, args=(cpu, 30.0), kwargs={"realtime": False})
    child.start()
    hog = None
    try:
        time.sleep(0.2)
        if state == "stopped":
            os.kill(child.pid, signal.SIGSTOP)
        elif state == "waiting for a CPU":
            hog = ctx.Process(target=_spin_on, args=(cpu, 1.2))
            hog.start()
            time.sleep(0.1)
        ran_at_beat = ran_s(child.pid)
        time.sleep(0.8)
        assert starved(child.pid, 0.8, ran_at_beat) == (state == "waiting for a CPU")
        assert not starved(child.pid, 3.5, ran_at_beat)  # past the grace, even a starved one is killed
    finally:
        child.kill()
        child.join()
        if hog is not None:
            hog.join()


def _spin_on(cpu: int, seconds: float, realtime: bool = True) -> None:
    os.sched_setaffinity(0, {cpu})
    if realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
