"""`pbxguard serve`: a small supervisor process that runs the daemon as its child and keeps it honest.

Asterisk's AGI has no read timeout: a daemon that accepts connections but never answers (its event loop
stuck, or the process stopped) holds every call for as long as it is stuck. Nothing inside a stopped
process can help, so the watchdog lives outside it: the daemon's event loop writes a heartbeat byte to a
pipe every HEARTBEAT_S; when none has come for `stall_s`, the supervisor kills the daemon with SIGKILL. The
kernel then closes all of its sockets, Asterisk's AGI() and AudioSocket() return at once, and the dialplan
bridges the call (fail open). The supervisor restarts the daemon and, while the heartbeat is fresh, pings
systemd's watchdog: a stuck supervisor is systemd's to kill (the second line).

Signals: SIGTERM and SIGINT are passed on (the daemon drains its calls and exits), SIGHUP too (reload). The
daemon dies with the supervisor (PR_SET_PDEATHSIG), so a `kill -9` of the service leaves nothing behind.
Standard library only: this process must stay small and never freeze itself.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time

from pbxguard import systemd

log = logging.getLogger("pbxguard.supervisor")

HEARTBEAT_S = 0.1
RESTART_BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0)  # after the n-th crash in a row
STEADY_S = 30.0  # a daemon that ran this long resets the crash count
HEARTBEAT_FD_ENV = "PBXGUARD_HEARTBEAT_FD"


def child_command(config: str | None) -> list[str]:
    return [sys.executable, "-m", "pbxguard.server", *(["--config", config] if config else [])]


class Supervisor:
    def __init__(self, config: str | None, stall_s: float) -> None:
        self.config = config
        self.stall_s = stall_s
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.signals: list[int] = []

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)  # handled in the loop: nothing but this in a signal handler

    def _start(self) -> tuple[subprocess.Popen, int]:
        read_end, write_end = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
        env[HEARTBEAT_FD_ENV] = str(write_end)
        child = subprocess.Popen(child_command(self.config), env=env, pass_fds=(write_end,))
        os.close(write_end)
        return child, read_end

    def _forward(self, child: subprocess.Popen) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
            if child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        watchdog = systemd.watchdog_interval()
        crashes = 0
        while True:
            child, beats = self._start()
            self.child = child
            started = time.monotonic()
            code, stalled, ever_ready = self._watch(child, beats, watchdog)
            os.close(beats)
            if self.stopping or (code == 0 and not stalled):
                return code
            if not ever_ready:  # it never came up (bad port, bad model): restarting will not help
                return code or 1
            crashes = 0 if time.monotonic() - started > STEADY_S else crashes + 1
            wait = RESTART_BACKOFF_S[min(crashes, len(RESTART_BACKOFF_S) - 1)]
            log.error("daemon %s (exit status %s); restarting in %.1f s",
                      "stalled and was killed" if stalled else "died", code, wait)
            time.sleep(wait)

    def _watch(self, child: subprocess.Popen, beats: int, watchdog: float | None) -> tuple[int, bool, bool]:
        """Until the child exits: (exit status, whether we killed it for stalling, whether it ever beat)."""
        last_beat: float | None = None
        last_ping = 0.0
        while True:
            self._forward(child)
            timeout = HEARTBEAT_S if last_beat is None else max(0.0, min(HEARTBEAT_S, last_beat + self.stall_s - time.monotonic()))
            try:
                readable, _, _ = select.select([beats], [], [], timeout)
            except InterruptedError:
                continue
            now = time.monotonic()
            if readable:
                data = os.read(beats, 4096)
                if not data:  # the child's end closed: it is exiting
                    return child.wait(), False, last_beat is not None
                last_beat = now
            if last_beat is not None and now - last_beat > self.stall_s and not self.stopping:
                log.error("daemon (pid %d) sent no heartbeat for %.2f s: killing it so that its calls go through",
                          child.pid, now - last_beat)
                child.kill()
                return child.wait(), True, True
            if watchdog and last_beat is not None and now - last_ping >= watchdog:
                systemd.notify("WATCHDOG=1")
                last_ping = now
            if child.poll() is not None and not readable:
                return child.returncode, False, last_beat is not None


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
