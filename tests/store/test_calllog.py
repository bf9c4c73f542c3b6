import sqlite3
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


def test_sqlite_is_in_wal_mode(tmp_path):
    SQLiteCallLog(tmp_path / "calls.db").close()
    assert sqlite3.connect(tmp_path / "calls.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
