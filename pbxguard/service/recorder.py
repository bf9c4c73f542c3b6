"""Where decisions go once made: the call log, the capture, the metrics and one log line per call.

Writes run in one worker thread, so the event loop never waits on a disk or a database, and `call()` returns
only once the record is committed: the adapter sends the verdict after that, so a `kill -9` loses no call
whose verdict was sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pbxguard.metrics import Metrics
from pbxguard.policy.callerid import Caller
from pbxguard.store.calllog import CallLog
from pbxguard.store.captures import Captures
from pbxguard.store.record import CallRecord, ChallengeOutcome

LOGGED_FIELDS = ("call_id", "status", "verdict", "confidence", "action", "reason", "decided_ms", "channel", "model")

log = logging.getLogger("pbxguard.service.calls")


class Recorder:
    def __init__(self, call_log: CallLog | None = None, captures: Captures | None = None, metrics: Metrics | None = None,
                 json_lines: bool = False, full_numbers: bool = False) -> None:
        self.call_log = call_log
        self.captures = captures
        self.metrics = metrics or Metrics()
        self.json_lines = json_lines
        self.full_numbers = full_numbers
        self.subscribers: list[Callable[[CallRecord | ChallengeOutcome], None]] = []
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxguard-store")

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def call(self, record: CallRecord, caller: Caller | None = None, samples: np.ndarray | None = None) -> None:
        """Commit one call's record (and its capture), then count and log it."""
        record = record.with_(started=record.started or time.time())
        if caller is not None:
            record = record.with_(caller=caller.e164 or caller.raw)
        if self.captures is not None and samples is not None and len(samples):
            try:
                record = record.with_(capture=str(await self._run(self.captures.save, record.call_id, samples)))
            except OSError as exc:
                self.metrics.errors.labels("capture").inc()
                log.error("capture for call %s not saved: %s", record.call_id, exc)
        if self.call_log is not None:
            try:
                await self._run(self.call_log.record_call, record)
            except Exception as exc:  # the call still goes through: fail open, but loudly
                self.metrics.errors.labels("call_log").inc()
                log.error("call %s not written to the call log: %s", record.call_id, exc)
        self.metrics.call(record)
        self._log_line(record, caller)
        for subscriber in self.subscribers:
            subscriber(record)

    def _log_line(self, record: CallRecord, caller: Caller | None) -> None:
        shown: dict[str, Any] = {k: None if getattr(record, k) == "" else getattr(record, k) for k in LOGGED_FIELDS}
        shown["caller"] = (caller.e164 or caller.raw) if caller and self.full_numbers else (caller.masked() if caller else None)
        if self.json_lines:
            log.info(json.dumps(shown))
        else:
            log.info(" ".join(f"{k}={v}" for k, v in shown.items() if v is not None))

    async def challenge(self, call_id: str, outcome: str, pressed: str) -> bool:
        self.metrics.challenges.labels(outcome.lower()).inc()
        found = await self._run(self.call_log.record_challenge, call_id, outcome, pressed) if self.call_log else False
        log.info("call_id=%s challenge=%s", call_id, outcome)
        for subscriber in self.subscribers:
            subscriber(ChallengeOutcome(call_id, outcome, pressed))
        return found

    async def lists(self) -> list[tuple[str, str, str]]:
        if self.call_log is None:
            return []
        try:
            return await self._run(self.call_log.lists)
        except Exception as exc:
            self.metrics.errors.labels("call_log").inc()
            log.error("caller-ID lists unreadable, screening without them: %s", exc)
            return []

    def close(self) -> None:
        """Finish pending writes and close the call log."""
        self.executor.shutdown(wait=True)
        if self.call_log is not None:
            self.call_log.close()
