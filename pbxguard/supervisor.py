"""`pbxguard serve`: a small supervisor process that runs the daemon's workers as its children and keeps
them honest.

Workers (`workers` in the configuration, one per CPU core by default) are whole daemons that own whole
calls: they share the FastAGI port (SO_REUSEPORT: the kernel spreads connections across them) and each has
its own AudioSocket port and relay sockets (`Config.for_worker`). Each is watched and restarted on its own,
so a worker that dies or freezes fails open only the calls it holds. With more than one, metrics go through
prometheus_client's multiprocess files in a folder made here, and worker 0 serves them.

Asterisk's AGI has no read timeout: a daemon that accepts connections but never answers (its event loop
stuck, or the process stopped) holds every call for as long as it is stuck. Nothing inside a stopped
process can help, so the watchdog lives outside it: each worker's event loop writes a heartbeat byte to a
pipe every HEARTBEAT_S; when none has come for `stall_s`, the supervisor kills the daemon with SIGKILL. The
kernel then closes all of its sockets, Asterisk's AGI() and AudioSocket() return at once, and the dialplan
bridges the call (fail open). The supervisor restarts the worker and, while a heartbeat is fresh, pings
systemd's watchdog: a stuck supervisor is systemd's to kill (the second line).

Signals: SIGTERM and SIGINT are passed on (the daemon drains its calls and exits), SIGHUP too (reload). The
daemon dies with the supervisor (PR_SET_PDEATHSIG), so a `kill -9` of the service leaves nothing behind.
Standard library only: this process must stay small and never freeze itself.
"""

from __future__ import annotations

import glob
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from pbxguard import systemd

log = logging.getLogger("pbxguard.supervisor")

HEARTBEAT_S = 0.1
RESTART_BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0)  # after the n-th crash in a row
STEADY_S = 30.0  # a daemon that ran this long resets the crash count
HEARTBEAT_FD_ENV = "PBXGUARD_HEARTBEAT_FD"
BEAT, READY = b".", b"R"  # what a worker writes to its heartbeat pipe: alive; ready (started or reloaded)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode, read at its import
STARVED_GRACE_S = 3.0  # how late a process that only waits for a CPU may be before it is killed anyway


def child_command(config: str | None, worker: int = 0) -> list[str]:
    return [sys.executable, "-m", "pbxguard.server", *(["--config", config] if config else []), "--worker", str(worker)]


@dataclass
class Worker:
    """One daemon process slot: the process now in it, its heartbeat pipe, and its crash history."""

    index: int
    child: subprocess.Popen | None = None
    beats: int = -1
    last_beat: float | None = None  # None until its first beat: it has not come up yet
    started: float = 0.0
    crashes: int = 0
    restart_at: float | None = None
    ran_at_beat: float | None = None  # its CPU time (ran_s) at its last beat
    waiting: bool = False  # late, but waiting for a CPU: logged once, not killed yet
    ever_ready: bool = False  # it has beaten: it came up
    ready: bool = False  # it said READY since it started or was last told to reload
    code: int | None = None  # the exit status once stopped for good


class Supervisor:
    def __init__(self, config: str | None, stall_s: float, workers: int = 1) -> None:
        self.config = config
        self.stall_s = stall_s
        self.workers = [Worker(i) for i in range(workers)]
        self.stopping = False
        self.signals: list[int] = []
        self.metrics_dir: str | None = None
        self.status = 0  # the exit status of a worker that ended by itself
        self.announced = False  # READY=1 sent to systemd (since the last reload)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)  # handled in the loop: nothing but this in a signal handler

    def _start(self, worker: Worker) -> None:
        read_end, write_end = os.pipe()
        # systemd hears from the supervisor only: READY=1 once every worker is ready.
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID", "NOTIFY_SOCKET")}
        env[HEARTBEAT_FD_ENV] = str(write_end)
        if self.metrics_dir:
            env[METRICS_DIR_ENV] = self.metrics_dir
        worker.child = subprocess.Popen(child_command(self.config, worker.index), env=env, pass_fds=(write_end,))
        os.close(write_end)
        worker.beats, worker.last_beat, worker.started, worker.restart_at = read_end, None, time.monotonic(), None
        worker.ready = False

    def _running(self) -> list[Worker]:
        return [w for w in self.workers if w.child is not None]

    def _forward(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
                systemd.notify("STOPPING=1")
            elif signum == signal.SIGHUP:
                systemd.notify("RELOADING=1")
                self.announced = False
                for worker in self.workers:
                    worker.ready = False
            for worker in self._running():
                if worker.child is not None and worker.child.poll() is None:
                    worker.child.send_signal(signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        if len(self.workers) > 1:
            self.metrics_dir = tempfile.mkdtemp(prefix="pbxguard-metrics-")
        try:
            for worker in self.workers:
                self._start(worker)
            return self._watch(systemd.watchdog_interval())
        finally:
            for worker in self._running():  # only after an exception: the loop waits for every child
                assert worker.child is not None
                worker.child.kill()
                worker.child.wait()
            if self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _watch(self, watchdog: float | None) -> int:
        """Until every worker has stopped: beats, stalls, exits and restarts; the service's exit status."""
        last_ping = 0.0
        while True:
            self._forward()
            running = self._running()
            if not running and (self.stopping or all(w.code is not None for w in self.workers)):
                return self.status or max(w.code or 0 for w in self.workers)
            now = time.monotonic()
            deadlines = [w.restart_at for w in self.workers if w.restart_at is not None]
            deadlines += [w.last_beat + self.stall_s for w in running if w.last_beat is not None]
            timeout = max(0.0, min([HEARTBEAT_S, *(d - now for d in deadlines)]))
            try:
                readable, _, _ = select.select([w.beats for w in running], [], [], timeout)
            except InterruptedError:
                continue
            now = time.monotonic()
            for worker in running:
                assert worker.child is not None
                stalled = False
                if worker.beats in readable:
                    data = os.read(worker.beats, 4096)
                    if data:
                        worker.last_beat, worker.ever_ready = now, True
                        worker.ran_at_beat, worker.waiting = ran_s(worker.child.pid), False
                        worker.ready = worker.ready or READY in data
                        continue
                    worker.child.wait()  # the child's end closed: it is exiting
                elif worker.last_beat is not None and now - worker.last_beat > self.stall_s and not self.stopping:
                    if starved(worker.child.pid, now - worker.last_beat, worker.ran_at_beat):
                        if not worker.waiting:
                            log.warning("daemon worker %d (pid %d) is %.2f s late but waiting for a CPU (the machine is "
                                        "saturated): not killed for up to %.0f s", worker.index, worker.child.pid,
                                        now - worker.last_beat, STARVED_GRACE_S)
                            worker.waiting = True
                        continue
                    log.error("daemon worker %d (pid %d) sent no heartbeat for %.2f s: killing it so that its calls "
                              "go through", worker.index, worker.child.pid, now - worker.last_beat)
                    worker.child.kill()
                    worker.child.wait()
                    stalled = True
                elif worker.child.poll() is None:
                    continue
                self._exited(worker, stalled)
            for worker in self.workers:
                if worker.restart_at is not None and now >= worker.restart_at and not self.stopping:
                    self._start(worker)
            if not self.announced and not self.stopping and all(w.ready for w in self.workers):
                systemd.notify(f"READY=1\nSTATUS=screening with {len(self.workers)} worker(s)")
                self.announced = True
            if watchdog and now - last_ping >= watchdog and any(
                    w.last_beat is not None and now - w.last_beat <= self.stall_s for w in self._running()):
                systemd.notify("WATCHDOG=1")
                last_ping = now

    def _exited(self, worker: Worker, stalled: bool) -> None:
        """A worker's process has ended: restart it after a backoff, unless the service is stopping or the
        worker ended by itself; then the others are stopped too and its status is the service's."""
        assert worker.child is not None
        code, pid = worker.child.returncode, worker.child.pid
        os.close(worker.beats)
        worker.child = None
        if self.metrics_dir:  # its gauges of calls now (the counters stay: they count what it did)
            for path in glob.glob(os.path.join(self.metrics_dir, f"gauge_live*_{pid}.db")):
                os.unlink(path)
        if self.stopping:
            worker.code = code
            return
        if not stalled and (code == 0 or not worker.ever_ready):
            worker.code = code  # it ended by itself, or never came up (bad port, bad model): restarting will not help
            self.status = self.status or code
            self.stopping = True
            for other in self._running():
                assert other.child is not None
                other.child.terminate()
            return
        worker.crashes = 0 if time.monotonic() - worker.started > STEADY_S else worker.crashes + 1
        wait = RESTART_BACKOFF_S[min(worker.crashes, len(RESTART_BACKOFF_S) - 1)]
        worker.restart_at = time.monotonic() + wait
        log.error("daemon worker %d %s (exit status %s); restarting in %.1f s", worker.index,
                  "stalled and was killed" if stalled else "died", code, wait)


def ran_s(pid: int) -> float | None:
    """Seconds of CPU the process's main thread (the one that beats) has run; None if it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def starved(pid: int, late_s: float, ran_at_beat: float | None) -> bool:
    """Late only for want of a CPU, so not to be killed yet: runnable (state R), at most STARVED_GRACE_S late,
    and it ran less than half the time since its last beat. Killing such a process on a saturated machine
    drops every call it carries, and its restart loads the models on the same busy CPUs (at 75 concurrent
    FreeSWITCH calls both workers were killed within a second). A stopped (T) or blocked (S, D) process, or
    one spinning on a CPU, is stuck: it is killed after `stall_s`."""
    ran = ran_s(pid)
    if late_s > STARVED_GRACE_S or ran is None or ran_at_beat is None or ran - ran_at_beat >= late_s / 2:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, IndexError):
        return False


def die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when its parent (the supervisor) dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent was gone before the call above
        os._exit(1)


def heartbeat_fd() -> int | None:
    value = os.environ.pop(HEARTBEAT_FD_ENV, "")
    return int(value) if value.isdecimal() else None
