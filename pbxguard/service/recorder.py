"""Where decisions go once made: the call log, the capture, the metrics and one log line per call.

Writes run in one worker thread, so the event loop never waits on a disk or a database. `call()` returns
once the row is acknowledged (committed, or spooled while the database is away: see `store.writer`), and
the verdict is sent after that, so a `kill -9` loses no row whose verdict was sent. pbxguard fails open: when
the row cannot be acknowledged within COMMIT_TIMEOUT_S (a database that hangs) or at all (no disk space for
the spool either), the verdict is still sent and the row is kept trying, with an error logged and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pbxguard.metrics import Metrics
from pbxguard.policy.callerid import Caller
from pbxguard.store.captures import Captures
from pbxguard.store.record import CallRecord, ChallengeOutcome
from pbxguard.store.writer import HELD, CallLogWriter

COMMIT_TIMEOUT_S = 1.0
LOGGED_FIELDS = ("call_id", "status", "verdict", "confidence", "action", "reason", "decided_ms", "channel", "model")

log = logging.getLogger("pbxguard.service.calls")


class Recorder:
    def __init__(self, writer: CallLogWriter | None = None, captures: Captures | None = None, metrics: Metrics | None = None,
                 json_lines: bool = False, full_numbers: bool = False) -> None:
        self.writer = writer
        self.captures = captures
        self.metrics = metrics or Metrics()
        self.json_lines = json_lines
        self.full_numbers = full_numbers
        self.subscribers: list[Callable[[CallRecord | ChallengeOutcome], None]] = []
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxguard-store")
        # Calls waiting for the store thread: those that end while a commit runs go together in the next one.
        self.waiting: list[tuple[CallRecord, asyncio.Future[str]]] = []
        self.committing: asyncio.Task[None] | None = None
        if writer is not None:
            self.metrics.pending.set(writer.pending)  # a spool left by the last run

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _counted(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), then the pending rows gauge (the store thread is the one that changes them)."""
        try:
            return fn(*args)
        finally:
            if self.writer is not None:
                self.metrics.pending.set(self.writer.pending)

    async def _store(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in the store thread, waited for at most COMMIT_TIMEOUT_S (it goes on after that)."""
        return await self._acknowledged(what, self._run(self._counted, fn, *args))

    async def _store_call(self, record: CallRecord) -> str | None:
        """The call's row, committed with the calls that wait beside it (one transaction), or spooled."""
        assert self.writer is not None
        kept: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting.append((record, kept))
        if self.committing is None or self.committing.done():
            self.committing = asyncio.create_task(self._commit_waiting())
        return await self._acknowledged(f"call {record.call_id}", kept)

    async def _commit_waiting(self) -> None:
        assert self.writer is not None
        while self.waiting:
            group, self.waiting = self.waiting, []
            try:
                kept = await self._run(self._counted, self.writer.record_calls, [record for record, _ in group])
            except Exception as exc:  # a bug in the store: every call of the group is told, and goes on
                for _, future in group:
                    future.set_exception(exc)
            else:
                for (_, future), how in zip(group, kept):
                    future.set_result(how)

    async def _acknowledged(self, what: str, work: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(work), COMMIT_TIMEOUT_S)
        except TimeoutError:
            self.metrics.errors.labels("call_log").inc()
            log.error("call log: %s not acknowledged within %.1f s; going on without waiting", what, COMMIT_TIMEOUT_S)
        except Exception as exc:  # a bug in the store must not stop a call: fail open, loudly
            self.metrics.errors.labels("call_log").inc()
            log.exception("call log: %s failed: %s", what, exc)
        return None

    async def call(self, record: CallRecord, caller: Caller | None = None, samples: np.ndarray | None = None) -> None:
        """Commit one call's record (and its capture), then count and log it."""
        record = record.with_(started=record.started or time.time())
        if caller is not None:
            record = record.with_(caller=caller.e164 or caller.raw, identity=caller.identity.record())
        if self.captures is not None and samples is not None and len(samples):
            try:
                record = record.with_(capture=str(await self._run(self.captures.save, record.call_id, samples)))
            except OSError as exc:
                self.metrics.errors.labels("capture").inc()
                log.error("capture for call %s not saved: %s", record.call_id, exc)
        if self.writer is not None and await self._store_call(record) == HELD:
            self.metrics.errors.labels("call_log").inc()
        self.metrics.call(record)
        self._log_line(record, caller)
        for subscriber in self.subscribers:
            subscriber(record)

    def _log_line(self, record: CallRecord, caller: Caller | None) -> None:
        shown: dict[str, Any] = {k: None if getattr(record, k) == "" else getattr(record, k) for k in LOGGED_FIELDS}
        shown["caller"] = (caller.e164 or caller.raw) if caller and self.full_numbers else (caller.masked() if caller else None)
        if record.identity:
            shown["identity"] = "/".join(filter(None, (record.identity["status"], record.identity["attestation"])))
        if self.json_lines:
            log.info(json.dumps(shown))
        else:
            log.info(" ".join(f"{k}={v}" for k, v in shown.items() if v is not None))

    async def challenge(self, call_id: str, outcome: str, pressed: str) -> bool | None:
        """Whether the call was one pbxguard challenged and had no report yet (None: not known yet)."""
        self.metrics.challenges.labels(outcome.lower()).inc()
        found: bool | None = False
        if self.writer is not None:
            kept = await self._store(f"challenge of {call_id}", self.writer.record_challenge, call_id, outcome, pressed)
            found = kept[1] if kept else None
        log.info("call_id=%s challenge=%s", call_id, outcome)
        for subscriber in self.subscribers:
            subscriber(ChallengeOutcome(call_id, outcome, pressed))
        return found

    async def lists(self) -> list[tuple[str, str, str]]:
        """The caller-ID lists; the last ones read while the database is away or slow."""
        if self.writer is None:
            return []
        lists = await self._store("reading the caller-ID lists", self.writer.lists)
        return self.writer.cached_lists if lists is None else lists

    async def calls_from(self, caller: str, since: float) -> int:
        """Calls from `caller` in the call log since `since` (0 while the database is away or slow)."""
        if self.writer is None:
            return 0
        return await self._store("counting a caller's calls", self.writer.calls_from, caller, since) or 0

    def close(self) -> None:
        """Finish pending writes and close the call log."""
        if self.writer is not None:
            if self.waiting:  # calls whose group had not yet gone to the store thread
                self.executor.submit(self.writer.record_calls, [record for record, _ in self.waiting])
                self.waiting = []
            self.executor.submit(self.writer.flush)
        self.executor.shutdown(wait=True)
        if self.writer is not None:
            self.writer.close()
