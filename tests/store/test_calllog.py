import functools
import multiprocessing
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from pbxguard.store.calllog import MIGRATIONS, PostgresCallLog, SQLiteCallLog
from pbxguard.store.record import CallRecord


@pytest.fixture(params=["sqlite", "postgres"])
def call_log(request, tmp_path):
    if request.param == "sqlite":
        log = SQLiteCallLog(tmp_path / "calls.db")
    else:
        url = request.getfixturevalue("postgres_url")
        log = PostgresCallLog(url)
        cursor = log.db.cursor()
        cursor.execute("DELETE FROM calls")
        cursor.execute("DELETE FROM lists")
        log.db.commit()
    yield log
    log.close()


def record(**overrides):
    return CallRecord(**{"call_id": str(uuid.uuid4()), "status": "screened", "caller": "+15551230000", "verdict": "silence",
                         "confidence": 0.93, "scores": {"silence": 0.93, "human": 0.07}, "action": "CHALLENGE",
                         "reason": "SILENCE", "decided_ms": 2000.0, "model": "pbxguard-test", "audio_ms": 2000.0,
                         "speech_ms": 0.0, **overrides})


def test_calls_round_trip(call_log):
    first, second = record(), record(verdict="human", action="BRIDGE", speech_ms=600.0, caller="+15559990000")
    call_log.record_call(first)
    call_log.record_call(second)
    stored = call_log.call(first.call_id)
    assert stored == first.with_(started=stored.started) and stored.started > 0
    assert [c.call_id for c in call_log.calls(verdict="human")] == [second.call_id]
    assert call_log.calls_from("+15551230000", time.time() - 60) == 1


def test_challenge_outcomes_become_labels(call_log):
    silent, talking, person = record(), record(verdict="machine", speech_ms=1800.0), record()
    for r in (silent, talking, person):
        call_log.record_call(r)
    assert call_log.record_challenge(silent.call_id, "FAIL", "")
    assert call_log.record_challenge(talking.call_id, "FAIL", "")
    assert call_log.record_challenge(person.call_id, "PASS", "4")
    assert [call_log.call(r.call_id).label for r in (silent, talking, person)] == ["silence", "machine", "human"]
    assert not call_log.record_challenge(str(uuid.uuid4()), "PASS", "1")
    call_log.label(person.call_id, "noise")  # an operator's label wins over later automatic ones
    call_log.record_challenge(person.call_id, "PASS", "4")
    assert call_log.call(person.call_id).label == "noise"


def test_rerecording_a_call_keeps_its_challenge_and_label(call_log):
    r = record()
    call_log.record_call(r)
    call_log.record_challenge(r.call_id, "FAIL", "")
    call_log.record_call(r.with_(status="screened", action="HANGUP"))
    stored = call_log.call(r.call_id)
    assert (stored.action, stored.challenge, stored.label) == ("HANGUP", "FAIL", "silence")


def test_lists(call_log):
    call_log.add_to_list("deny", "+15551230000", "pumping")
    call_log.add_to_list("allow", "+1555*")
    call_log.add_to_list("deny", "+15551230000", "updated note")
    assert call_log.lists() == [("allow", "+1555*", ""), ("deny", "+15551230000", "updated note")]
    assert call_log.remove_from_list("allow", "+1555*") and not call_log.remove_from_list("allow", "+1555*")


def test_migrations_are_versioned_and_idempotent(call_log):
    assert call_log.migrate() == len(MIGRATIONS)
    assert call_log.migrate() == len(MIGRATIONS)
    cursor = call_log.db.cursor()
    cursor.execute("SELECT version FROM schema_version ORDER BY version")
    assert [row[0] for row in cursor.fetchall()] == list(range(1, len(MIGRATIONS) + 1))


def _open_together(open_log, start, results) -> None:
    start.wait()
    try:
        open_log().close()
        results.put("ok")
    except Exception as exc:
        results.put(repr(exc))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_opening_a_new_database_together_all_migrate_it(request, tmp_path, kind):
    # The workers of one daemon, and daemons on one PostgreSQL, start at the same time on a fresh database:
    # none may fail (it would run without the call log, on stale caller-ID lists, until its retry). Ten
    # fresh databases: the races (the WAL switch, a migration run twice) do not show every time.
    for round in range(10):
        if kind == "sqlite":
            open_log = functools.partial(SQLiteCallLog, tmp_path / f"calls{round}.db")
        else:
            import psycopg

            admin_url = request.getfixturevalue("postgres_url")
            name = f"fresh_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            open_log = functools.partial(PostgresCallLog, admin_url.rsplit("/", 1)[0] + f"/{name}")
        processes = multiprocessing.get_context("fork")
        start, results = processes.Barrier(6), processes.Queue()
        workers = [processes.Process(target=_open_together, args=(open_log, start, results)) for _ in range(6)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(10)
        assert outcomes == ["ok"] * 6, f"round {round}"
        log = open_log()
        assert log.migrate() == len(MIGRATIONS)
        log.close()


def test_sqlite_is_in_wal_mode(tmp_path):
    SQLiteCallLog(tmp_path / "calls.db").close()
    assert sqlite3.connect(tmp_path / "calls.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_connection_in_one_process_leaves_the_first_ones_locks(tmp_path):
    # The web page opens a connection per server thread beside each other. Opening and closing the database file
    # by hand would drop every POSIX lock this process holds on it; another process (`pbxguard calls`) closing
    # its connection would then think itself the last user and delete the WAL index under our feet.
    path = tmp_path / "calls.db"
    first = SQLiteCallLog(path)
    first.record_call(record())
    second = SQLiteCallLog(path)
    second.record_call(record())
    reader = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('SELECT COUNT(*) FROM calls').fetchall(); c.close()"
    subprocess.run([sys.executable, "-c", reader], check=True)
    assert (tmp_path / "calls.db-shm").exists()
    first.record_call(record())
    assert len(second.calls()) == 3


def test_pages_by_key_visit_every_call_once_newest_first(call_log):
    now = time.time()
    rows = [record(started=now - i // 2, verdict=("human", "machine")[i % 2], action=("BRIDGE", "CHALLENGE")[i % 3 > 0])
            for i in range(25)]  # pairs share a start time: the call id breaks the tie
    for r in rows:
        call_log.record_call(r)
    seen, before = [], None
    while (page := call_log.calls(limit=4, before=before, verdict="machine")) and len(seen) < 100:  # a loop ends
        seen += page
        before = (page[-1].started, page[-1].call_id)
    expected = sorted((r for r in rows if r.verdict == "machine"), key=lambda r: (r.started, r.call_id), reverse=True)
    assert [r.call_id for r in seen] == [r.call_id for r in expected]
    window = call_log.calls(since=now - 5, until=now - 2, action="CHALLENGE")
    assert window and all(now - 5 <= r.started < now - 2 and r.action == "CHALLENGE" for r in window)
    assert len(window) == sum(1 for r in rows if now - 5 <= r.started < now - 2 and r.action == "CHALLENGE")
    with pytest.raises(TypeError):
        call_log.calls(status="screened")


def test_the_overview_counts_and_decision_times(call_log):
    now = time.time()
    for i, ms in enumerate((560.0, 1180.0, 2000.0, 2000.0)):
        call_log.record_call(record(started=now - 3600 + i * 900, decided_ms=ms, verdict="tone" if ms < 2000 else "human",
                                    challenge="PASS" if i == 3 else None))
    by_bucket = call_log.counts("verdict", now - 3600, now, 1800)
    assert sorted(by_bucket) == [(0, "tone", 2), (1, "human", 2)]
    assert sorted(call_log.counts("challenge", now - 3600, now, 3600), key=str) == [(0, "PASS", 1), (0, None, 3)]
    assert sorted(call_log.decision_times(now - 3600, now)) == [("human", 2000.0, 2), ("tone", 560.0, 1), ("tone", 1180.0, 1)]


def test_the_evidence_round_trips(call_log):
    evidence = {"tones": [{"name": "fax_cng", "start_ms": 1200.0}], "beep_ms": None, "levels": {"rms_dbfs": -24.0}}
    r = record(evidence=evidence)
    call_log.record_call(r)
    assert call_log.call(r.call_id).evidence == evidence
