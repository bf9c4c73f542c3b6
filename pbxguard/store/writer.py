"""The call log's writer: every acknowledged row reaches the database, across outages.

A row is acknowledged once it is committed to the database or appended and fsynced to the spool, an
append-only JSON-lines file of the operations the database has not yet taken. When a write fails (PostgreSQL
stopped, a full disk, a dropped connection) the connection is dropped, the operation goes to the spool, and
the writer reconnects at most every `retry_s`; once connected it replays the spool in order and empties it.
Replays are idempotent (a call is an upsert by call id, a challenge applies once), so a crash in the middle
of one writes no row twice. An operation the database refuses for itself (a data error, not an outage) goes
to `<spool>.rejected` with a log line instead of blocking the ones behind it. When the spool cannot be
written either (the same full disk), the operation is held in memory and retried: it is not acknowledged,
and the caller is told so.

Not thread-safe: every method runs in the recorder's one store thread.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pbxguard.store.calllog import CallLog
from pbxguard.store.record import COLUMNS, CallRecord

log = logging.getLogger("pbxguard.store")

COMMITTED, SPOOLED, HELD = "committed", "spooled", "held"
MAX_HELD = 100_000  # about 100 MB of rows: past that the oldest unacknowledged ones are dropped, loudly


def private_file(path: Path) -> int:
    """An append-only descriptor for a 0600 file, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


class CallLogWriter:
    def __init__(self, connect: Callable[[], CallLog], spool: str | Path, retry_s: float = 1.0) -> None:
        self.connect = connect
        self.spool = Path(spool)
        self.rejected = self.spool.with_name(self.spool.name + ".rejected")
        self.retry_s = retry_s
        self.db: CallLog | None = None
        self.next_attempt = 0.0
        self.down_since: float | None = None
        self.held: deque[dict[str, Any]] = deque()
        self.spooled = len(self._read(self.spool)) if self.spool.exists() else 0
        self.cached_lists: list[tuple[str, str, str]] = []
        self.flush()

    @property
    def pending(self) -> int:
        """Operations not yet in the database: spooled and held."""
        return self.spooled + len(self.held)

    def record_call(self, record: CallRecord) -> str:
        return self.record_calls([record])[0]

    def record_calls(self, records: list[CallRecord]) -> list[str]:
        """How each call was kept. A group goes in one transaction; when the database refuses one of its rows,
        each is written alone (the bad one set aside), and when the database goes away, each is spooled."""
        ops = [{"op": "call", "row": dict(zip(COLUMNS, record.row()))} for record in records]
        if len(ops) > 1 and self.flush():
            assert self.db is not None
            try:
                self.db.record_calls(records)
                return [COMMITTED] * len(ops)
            except Exception as exc:
                if isinstance(exc, self.db.data_errors):
                    self.db.rollback()
                else:
                    self._lost(exc)
        return [self._write(op)[0] for op in ops]

    def record_challenge(self, call_id: str, outcome: str, pressed: str) -> tuple[str, bool | None]:
        """(how it was kept, whether the call was one pbxguard challenged: None while not yet known)."""
        return self._write({"op": "challenge", "args": [call_id, outcome, pressed]})

    def lists(self) -> list[tuple[str, str, str]]:
        """The caller-ID lists; while the database is away, the last ones read."""
        self.cached_lists = self._query(lambda db: db.lists(), self.cached_lists)
        return self.cached_lists

    def calls_from(self, caller: str, since: float) -> int:
        """Calls from `caller` committed since `since`; 0 while the database is away."""
        return self._query(lambda db: db.calls_from(caller, since), 0)

    def _query(self, read: Callable[[CallLog], Any], otherwise: Any) -> Any:
        """read(database), once what is pending has reached it; `otherwise` while it is away."""
        if self.flush():
            assert self.db is not None  # flush() is True only when connected
            try:
                return read(self.db)
            except Exception as exc:
                self._lost(exc)
        return otherwise

    def flush(self) -> bool:
        """Connect if due and replay what is pending; True when connected with nothing pending."""
        if self.db is None:
            now = time.monotonic()
            if now < self.next_attempt:
                return False
            self.next_attempt = now + self.retry_s
            try:
                self.db = self.connect()
            except Exception as exc:
                self._unreachable(exc)
                return False
        return self._replay() if self.pending else True

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _write(self, op: dict[str, Any]) -> tuple[str, Any]:
        if self.flush():
            assert self.db is not None
            try:
                return COMMITTED, self._apply(self.db, op)
            except Exception as exc:
                if self._refused(exc, op):
                    return SPOOLED, None
                self._lost(exc)
        return self._append(op), None

    def _apply(self, db: CallLog, op: dict[str, Any]) -> Any:
        if op["op"] == "call":  # .get: a row spooled by an older pbxguard lacks the newer columns
            return db.record_call(CallRecord.from_row(tuple(op["row"].get(c) for c in COLUMNS)))
        return db.record_challenge(*op["args"])

    def _replay(self) -> bool:
        assert self.db is not None
        while self.held and self._append(self.held[0], hold=False) == SPOOLED:  # keep the order: spool first
            self.held.popleft()
        ops = self._read(self.spool) + list(self.held)
        for op in ops:
            try:
                self._apply(self.db, op)
            except Exception as exc:
                if not self._refused(exc, op):
                    self._lost(exc)
                    return False
        if self.spool.exists():
            os.truncate(self.spool, 0)
        self.spooled = 0
        self.held.clear()
        if self.down_since is not None:
            log.warning("call log is back after %.1f s: %d rows replayed from %s", time.monotonic() - self.down_since,
                        len(ops), self.spool)
            self.down_since = None
        return True

    def _append(self, op: dict[str, Any], hold: bool = True) -> str:
        line = (json.dumps(op, separators=(",", ":")) + "\n").encode()
        try:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            fd = private_file(self.spool)
        except OSError as exc:
            return self._hold(op, exc) if hold else HELD
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError("short write")
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, size)  # no torn line for the next append to run into
                return self._hold(op, exc) if hold else HELD
        finally:
            os.close(fd)
        self.spooled += 1
        return SPOOLED

    def _hold(self, op: dict[str, Any], exc: Exception) -> str:
        if len(self.held) >= MAX_HELD:
            self.held.popleft()
            log.error("call log: %d rows held in memory; the oldest one is dropped", MAX_HELD)
        self.held.append(op)
        log.error("call log: row not acknowledged: neither the database nor the spool %s can be written (%s); "
                  "held in memory (%d rows) until one can", self.spool, exc, len(self.held))
        return HELD

    def _refused(self, exc: Exception, op: dict[str, Any]) -> bool:
        """A data error (the row, not the database): set the row aside in the rejected file."""
        assert self.db is not None
        if not isinstance(exc, self.db.data_errors):
            return False
        self.db.rollback()
        log.error("call log refused a row (%s); kept in %s", exc, self.rejected)
        with os.fdopen(private_file(self.rejected), "a") as f:
            f.write(json.dumps({**op, "error": str(exc)}) + "\n")
        return True

    def _lost(self, exc: Exception) -> None:
        log.error("call log write failed (%s): reconnecting every %.0f s, rows go to %s meanwhile", exc, self.retry_s,
                  self.spool)
        if self.db is not None:
            try:
                self.db.close()
            except Exception:  # a connection already broken may not close cleanly: it is dropped either way
                pass
        self.db = None
        self.next_attempt = time.monotonic() + self.retry_s
        self.down_since = self.down_since or time.monotonic()

    def _unreachable(self, exc: Exception) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error("call log unreachable (%s): rows go to %s until it is back", exc, self.spool)

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        ops = []
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        for number, line in enumerate(lines, 1):
            try:
                ops.append(json.loads(line))
            except ValueError:
                log.warning("%s:%d: not a spooled row; skipped", path, number)
        return ops
