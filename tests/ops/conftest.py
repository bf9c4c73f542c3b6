"""`pbxguard serve` as systemd runs it: a subprocess with NOTIFY_SOCKET and WATCHDOG_USEC, on free ports."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from pbxguard.testing.pbx import free_port, stop_process

WATCHDOG_USEC = 300_000


class RunningDaemon:
    def __init__(self, tmp_path: Path, preexec_fn=None, command: tuple[str, ...] = (sys.executable, "-m", "pbxguard"),
                 cwd: Path | None = None, **overrides) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.dir = tmp_path
        self.config = {
            "fastagi": {"port": free_port()},
            "audiosocket": {"port": (audio := free_port(run=4)), "advertise": f"127.0.0.1:{audio}"},
            "metrics": {"port": free_port()},
            "database": {"path": str(tmp_path / "calls.db")},
            "captures": {"enabled": True, "directory": str(tmp_path / "captures")},
            **overrides,
        }
        self.config_path = tmp_path / "pbxguard.yaml"
        self.write_config()
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(tmp_path / "notify.sock"))
        self.notify.settimeout(0.2)
        self.inbox: queue.Queue[str] = queue.Queue()  # read all the time, as systemd does
        self.reader = threading.Thread(target=self._read_notifications, daemon=True)
        self.reader.start()
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        self.log = open(tmp_path / "daemon.log", "w")
        self.process = subprocess.Popen([*command, "serve", "--config", str(self.config_path)], cwd=cwd,
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        self.messages: list[str] = []
        assert self.wait_for("READY=1", 90), f"no READY=1; got {self.messages}"

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    @property
    def agi_port(self) -> int:
        return self.config["fastagi"]["port"]

    def _read_notifications(self) -> None:
        while True:
            try:
                self.inbox.put(self.notify.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, message: str, timeout: float) -> bool:
        """Wait for a notification line; the ones read on the way are kept in `messages`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.inbox.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.inbox.empty():
                    return False
                continue
            self.messages.append(data)
            if message in data.split("\n"):
                return True
        return False

    def pbxguard(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pbxguard", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, timeout=120)

    def stop(self) -> None:
        stop_process(self.process, lambda: self.process.send_signal(signal.SIGTERM))
        self.notify.close()
        self.log.close()


@pytest.fixture
def running_daemon(tmp_path):
    daemon = RunningDaemon(tmp_path)
    yield daemon
    daemon.stop()
