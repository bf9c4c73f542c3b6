"""The call log: every screened call, its challenge outcome and its label; and the caller-ID lists.

SQLite in WAL mode by default (a `kill -9` loses nothing already committed, and every call is committed
before its verdict is sent); PostgreSQL (psycopg 3) when `database.url` is set, so several daemons behind
several PBXs share one log. The schema is versioned: migrations run in order and are recorded.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pbxguard.store.record import COLUMNS, CallRecord

MIGRATIONS: tuple[str, ...] = (
    # 1: calls and lists
    """
    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY, started DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, channel TEXT,
        uniqueid TEXT, caller TEXT, called TEXT, mode TEXT, verdict TEXT, confidence DOUBLE PRECISION,
        scores TEXT, action TEXT, reason TEXT, decided_ms DOUBLE PRECISION, model TEXT,
        audio_ms DOUBLE PRECISION, speech_ms DOUBLE PRECISION, capture TEXT, challenge TEXT, pressed TEXT, label TEXT, error TEXT
    );
    CREATE INDEX calls_started ON calls (started);
    CREATE INDEX calls_caller ON calls (caller, started);
    CREATE TABLE lists (
        kind TEXT NOT NULL, pattern TEXT NOT NULL, note TEXT, added DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kind, pattern)
    );
    """,
    # 2: the verdict's evidence, and an index per filter of the web page (a page of 100 from a million rows)
    """
    ALTER TABLE calls ADD COLUMN evidence TEXT;
    CREATE INDEX calls_verdict ON calls (verdict, started);
    CREATE INDEX calls_action ON calls (action, started);
    CREATE INDEX calls_challenge ON calls (challenge, started);
    """,
    # 3: the caller ID's STIR/SHAKEN verification
    """
    ALTER TABLE calls ADD COLUMN identity TEXT;
    """,
)
LOCK_TIMEOUT_S = 10.0  # how long SQLite waits for another connection's lock
SCHEMA_LOCK = 0x70627867  # PostgreSQL advisory lock key of the migrations ("pbxg")
FILTERS = ("verdict", "action", "challenge", "caller")  # the columns calls() filters on by equality


class CallLog:
    """Dialect-neutral SQL over a DB-API connection; subclasses connect and say how to write parameters."""

    placeholder = "?"
    whole = "CAST({} AS INTEGER)"  # the integer part of a non-negative number (PostgreSQL's cast rounds)
    data_errors: tuple[type[Exception], ...] = ()  # what the database raises for a bad row rather than an outage
    schema_lock = "BEGIN IMMEDIATE"  # begins the migrations' transaction with a lock others wait for (SQLite's write lock)

    def __init__(self, connection) -> None:
        self.db = connection
        self.migrate()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        cursor = self.db.cursor()
        cursor.execute(self._sql(sql), tuple(params))
        rows = cursor.fetchall() if cursor.description else []
        self.db.commit()
        return rows

    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version. One transaction under the schema
        lock: workers and daemons that start together on one database must not run a migration twice."""
        cursor = self.db.cursor()
        cursor.execute(self.schema_lock)
        cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)")
        cursor.execute("SELECT version FROM schema_version")
        done = {row[0] for row in cursor.fetchall()}
        for version, script in enumerate(MIGRATIONS, 1):
            if version in done:
                continue
            for statement in filter(str.strip, script.split(";")):
                cursor.execute(statement)
            cursor.execute(self._sql("INSERT INTO schema_version (version, applied) VALUES (?, ?)"), (version, time.time()))
        self.db.commit()
        return len(MIGRATIONS)

    def record_call(self, record: CallRecord) -> None:
        self.record_calls([record])

    def record_calls(self, records: list[CallRecord]) -> None:
        """Insert or replace calls in one transaction (committed when this returns); a later challenge or label is
        kept. One commit for a group: under load the commits, not the inserts, were the store thread's cost."""
        columns = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("call_id", "challenge", "pressed", "label"))
        sql = self._sql(f"INSERT INTO calls ({columns}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                        f"ON CONFLICT (call_id) DO UPDATE SET {updates}")
        cursor = self.db.cursor()
        for record in records:
            cursor.execute(sql, (record if record.started else record.with_(started=time.time())).row())
        self.db.commit()

    def record_challenge(self, call_id: str, outcome: str, pressed: str) -> bool:
        """The Turing test's outcome, which also labels an unlabelled call for retraining: a pass means a
        person was there (human); a fail with no speech in the window is dead air (silence), as in the
        Marchex paper; a fail after speech is a machine."""
        # Only a call that was challenged and not yet reported on: a report is the dialplan's word, and the
        # call id could have been copied from another call.
        found = self._execute("SELECT speech_ms FROM calls WHERE call_id = ? AND action = 'CHALLENGE' "
                              "AND challenge IS NULL", [call_id])
        if not found:
            return False
        label = "human" if outcome == "PASS" else "silence" if not found[0][0] else "machine"
        self._execute("UPDATE calls SET challenge = ?, pressed = ?, label = COALESCE(label, ?) WHERE call_id = ?",
                      [outcome, pressed, label, call_id])
        return True

    def label(self, call_id: str, label: str) -> bool:
        found = self._execute("SELECT 1 FROM calls WHERE call_id = ?", [call_id])
        if found:
            self._execute("UPDATE calls SET label = ? WHERE call_id = ?", [label, call_id])
        return bool(found)

    def calls(self, since: float | None = None, until: float | None = None, before: tuple[float, str] | None = None,
              limit: int = 100, **equal: str | None) -> list[CallRecord]:
        """Newest first. `equal` filters on FILTERS columns; `before` is the (started, call_id) of the last row of
        the previous page: paging by key, which an index serves at any depth, where OFFSET would count rows."""
        unknown = set(equal) - set(FILTERS)
        if unknown:
            raise TypeError(f"calls() filters on {', '.join(FILTERS)}, not {', '.join(sorted(unknown))}")
        where, params = self._range(since, until)
        for column, value in equal.items():
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("(started < ? OR (started = ? AND call_id < ?))")
            params += [before[0], before[0], before[1]]
        sql = f"SELECT {', '.join(COLUMNS)} FROM calls"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._execute(sql + " ORDER BY started DESC, call_id DESC LIMIT ?", [*params, limit])
        return [CallRecord.from_row(r) for r in rows]

    @staticmethod
    def _range(since: float | None, until: float | None) -> tuple[list[str], list[Any]]:
        where, params = [], []
        for bound, op in ((since, ">="), (until, "<")):
            if bound is not None:
                where.append(f"started {op} ?")
                params.append(bound)
        return where, params

    def counts(self, column: str, since: float, until: float, bucket_s: float) -> list[tuple[int, str | None, int]]:
        """(bucket number from `since`, value of `column`, calls) over a time range: the overview's mix over time."""
        if column not in FILTERS[:3] + ("status",):
            raise ValueError(f"no counts by {column!r}")
        where, params = self._range(since, until)
        bucket = self.whole.format("(started - ?) / ?")
        rows = self._execute(f"SELECT {bucket}, {column}, COUNT(*) FROM calls "
                             f"WHERE {' AND '.join(where)} GROUP BY 1, 2 ORDER BY 1", [since, bucket_s, *params])
        return [(int(b), value, int(n)) for b, value, n in rows]

    def decision_times(self, since: float, until: float, step_ms: float = 20.0) -> list[tuple[str, float, int]]:
        """(verdict, decided_ms rounded down to `step_ms`, calls): a histogram, so quantiles need no row scan
        in Python."""
        where, params = self._range(since, until)
        step = self.whole.format("decided_ms / ?")
        rows = self._execute(f"SELECT verdict, {step}, COUNT(*) FROM calls WHERE {' AND '.join(where)} "
                             "AND decided_ms IS NOT NULL GROUP BY 1, 2", [step_ms, *params])
        return [(verdict, int(b) * step_ms, int(n)) for verdict, b, n in rows]

    def call(self, call_id: str) -> CallRecord | None:
        rows = self._execute(f"SELECT {', '.join(COLUMNS)} FROM calls WHERE call_id = ?", [call_id])
        return CallRecord.from_row(rows[0]) if rows else None

    def calls_from(self, caller: str, since: float) -> int:
        return int(self._execute("SELECT COUNT(*) FROM calls WHERE caller = ? AND started >= ?", [caller, since])[0][0])

    def add_to_list(self, kind: str, pattern: str, note: str = "") -> None:
        self._execute("INSERT INTO lists (kind, pattern, note, added) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (kind, pattern) DO UPDATE SET note = excluded.note", [kind, pattern, note, time.time()])

    def remove_from_list(self, kind: str, pattern: str) -> bool:
        found = self._execute("SELECT 1 FROM lists WHERE kind = ? AND pattern = ?", [kind, pattern])
        self._execute("DELETE FROM lists WHERE kind = ? AND pattern = ?", [kind, pattern])
        return bool(found)

    def lists(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._execute("SELECT kind, pattern, note FROM lists ORDER BY kind, pattern")]

    def rollback(self) -> None:
        self.db.rollback()

    def close(self) -> None:
        self.db.close()


def _wal(db: sqlite3.Connection) -> None:
    """WAL mode (kept in the file). Switching takes an exclusive lock without waiting for one, so processes
    opening a new file together (the workers) see "database is locked": retried up to LOCK_TIMEOUT_S."""
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteCallLog(CallLog):
    data_errors = (sqlite3.IntegrityError, sqlite3.DataError)

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        # Callers' numbers: 0600 whatever the umask; SQLite gives its -wal and -shm files the same mode (and, as
        # root, the same owner).
        created = not path.exists()
        if created:  # never open and close an existing one: a close() drops every POSIX lock this process holds
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # on it, other connections' too (SQLite's FAQ)
        if created and os.geteuid() == 0:  # `pbxguard deny` as root before the first start: the file is the daemon's
            folder = path.parent.stat()
            os.chown(path, folder.st_uid, folder.st_gid)
        if path.stat().st_uid == os.geteuid():
            os.chmod(path, 0o600)
        db = sqlite3.connect(str(path), check_same_thread=False, timeout=LOCK_TIMEOUT_S)
        _wal(db)
        db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable against a killed process
        super().__init__(db)


class PostgresCallLog(CallLog):
    placeholder = "%s"
    whole = "CAST(FLOOR({}) AS INTEGER)"
    schema_lock = f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"  # released at commit

    def __init__(self, url: str) -> None:
        import psycopg

        self.data_errors = (psycopg.DataError, psycopg.IntegrityError)
        # Bounded waits: a server that stops answering must not hold the store thread (and every verdict) for long.
        super().__init__(psycopg.connect(url, connect_timeout=3, keepalives=1, keepalives_idle=5,
                                         keepalives_interval=2, keepalives_count=2, tcp_user_timeout=6000))


def open_call_log(path: str | Path, url: str = "") -> CallLog:
    """PostgreSQL when `url` is set, else SQLite at `path`."""
    return PostgresCallLog(url) if url else SQLiteCallLog(path)
