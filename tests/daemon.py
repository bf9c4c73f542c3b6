"""A real pbxguard daemon on loopback ports, in its own thread and event loop, with the shipped models."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pbxguard import config
from pbxguard.audio.files import read_audio
from pbxguard.features.tones import CADENCES
from pbxguard.server import Server
from pbxguard.store.record import CallRecord, ChallengeOutcome
from pbxguard.train import signals
from tests.signals import seconds, through_line

EXAMPLES = Path(__file__).resolve().parent / "examples"


class Daemon:
    def __init__(self, **overrides) -> None:
        self.rundir = tempfile.mkdtemp(prefix="pbxguard-run-")
        cfg = config.load(None).with_(fastagi={"port": 0}, audiosocket={"port": 0}, metrics={"port": 0},
                                      eagi={"enabled": True, "directory": self.rundir},
                                      database={"path": f"{self.rundir}/calls.db"}).with_(**overrides)
        self.loop = asyncio.new_event_loop()
        self.records: list[CallRecord] = []
        self.challenges: list[ChallengeOutcome] = []
        ready = threading.Event()

        self.error: Exception | None = None

        async def start():
            try:
                self.server = Server(cfg)
                self.server.recorder.subscribers.append(
                    lambda r: (self.challenges if isinstance(r, ChallengeOutcome) else self.records).append(r))
                await self.server.start()
            except Exception as exc:  # surfaced in the test's thread below
                self.error = exc
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(60), "daemon did not start"
        if self.error is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise self.error
        self.agi_port = self.server.port(0)
        self.audio_port = self.server.port(1)

    def record_for(self, called: str, timeout: float = 10.0) -> CallRecord:
        """The call-log row of the call to `called`, once the daemon has written it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.records if r.called == called]
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"no record for a call to {called} within {timeout} s")

    def call_log(self):
        """A reader of the daemon's SQLite call log (its own connection, in the test's thread)."""
        from pbxguard.store.calllog import SQLiteCallLog

        return SQLiteCallLog(f"{self.rundir}/calls.db")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def calls_audio():
    """Openings with a known right answer: a live hello, dead air, and a fax whose CNG burst is proven."""
    rng = np.random.default_rng(21)
    cng = next(c for c in CADENCES if c.name == "fax_cng")
    fax, _ = signals.cadence_tone(cng, seconds(2.4), rng, -20.0, offset_ms=3400.0)
    return {
        "live": read_audio(EXAMPLES / "live_answer.wav"),
        "dead_air": read_audio(EXAMPLES / "silence.wav"),
        "fax": through_line(fax, rng),
    }
