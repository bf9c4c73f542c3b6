"""The call-log writer on its own: replay order, torn spool lines, rows the database refuses."""

import json
import stat

from pbxguard.store.calllog import PostgresCallLog, SQLiteCallLog
from pbxguard.store.record import CallRecord
from pbxguard.store.writer import COMMITTED, SPOOLED, CallLogWriter

CHALLENGED = CallRecord("6f1c2a52-0000-4000-8000-000000000001", "screened", started=1.0, action="CHALLENGE", speech_ms=0.0)


def test_spooled_operations_replay_in_order_and_once(tmp_path):
    state = {"down": True}

    def connect():
        if state["down"]:
            raise ConnectionRefusedError("database stopped")
        return SQLiteCallLog(tmp_path / "calls.db")

    writer = CallLogWriter(connect, tmp_path / "calls.spool", retry_s=0.0)
    assert writer.record_call(CHALLENGED) == SPOOLED
    assert writer.record_challenge(CHALLENGED.call_id, "FAIL", "") == (SPOOLED, None)  # needs the row before it
    assert stat.S_IMODE((tmp_path / "calls.spool").stat().st_mode) == 0o600
    state["down"] = False
    assert writer.flush() and writer.pending == 0
    writer.record_call(CHALLENGED)  # the same call again (a replay after a crash): still one row
    logged = SQLiteCallLog(tmp_path / "calls.db")
    assert [(r.call_id, r.challenge, r.label) for r in logged.calls()] == [(CHALLENGED.call_id, "FAIL", "silence")]


def test_a_torn_spool_line_is_skipped(tmp_path):
    spool = tmp_path / "calls.spool"
    writer = CallLogWriter(lambda: (_ for _ in ()).throw(OSError("down")), spool, retry_s=60)
    writer.record_call(CHALLENGED)
    with open(spool, "a") as f:
        f.write('{"op": "call", "row": {"call_')  # a kill -9 in the middle of an append
    writer = CallLogWriter(lambda: SQLiteCallLog(tmp_path / "calls.db"), spool)
    assert writer.pending == 0 and spool.read_text() == ""
    assert [r.call_id for r in SQLiteCallLog(tmp_path / "calls.db").calls()] == [CHALLENGED.call_id]


def test_a_row_the_database_refuses_is_set_aside_and_blocks_nothing(tmp_path, postgres_url):
    writer = CallLogWriter(lambda: PostgresCallLog(postgres_url), tmp_path / "calls.spool")
    bad = CHALLENGED.with_(call_id="6f1c2a52-0000-4000-8000-00000000000b", confidence="not a number")
    assert writer.record_call(bad) == SPOOLED
    assert writer.record_call(CHALLENGED.with_(caller="+1202\x00555")) == COMMITTED  # NUL: PostgreSQL refuses it raw
    rejected = [json.loads(line) for line in (tmp_path / "calls.spool.rejected").read_text().splitlines()]
    assert [r["row"]["call_id"] for r in rejected] == [bad.call_id]
    assert PostgresCallLog(postgres_url).call(CHALLENGED.call_id).caller == "+1202\ufffd555"


def commits_of(writer: CallLogWriter) -> list[str]:
    """The COMMITs the writer's SQLite connection runs from now on."""
    assert writer.flush() and writer.db is not None
    seen: list[str] = []
    writer.db.db.set_trace_callback(seen.append)
    return seen


def test_a_group_of_calls_is_one_commit_and_a_refused_row_sets_only_itself_aside(tmp_path):
    writer = CallLogWriter(lambda: SQLiteCallLog(tmp_path / "calls.db"), tmp_path / "calls.spool")
    statements = commits_of(writer)
    group = [CHALLENGED.with_(call_id=f"6f1c2a52-0000-4000-8000-0000000001{k:02d}") for k in range(20)]
    assert writer.record_calls(group) == [COMMITTED] * 20
    assert statements.count("COMMIT") == 1

    bad = CHALLENGED.with_(call_id="6f1c2a52-0000-4000-8000-00000000000b", status=None)  # NOT NULL: SQLite refuses it
    assert writer.record_calls([group[0].with_(reason="again"), bad, CHALLENGED]) == [COMMITTED, SPOOLED, COMMITTED]
    logged = SQLiteCallLog(tmp_path / "calls.db")
    assert len(logged.calls(limit=50)) == 21 and logged.call(group[0].call_id).reason == "again"
    assert [json.loads(line)["row"]["call_id"] for line in (tmp_path / "calls.spool.rejected").read_text().splitlines()] == [bad.call_id]


def test_a_group_is_spooled_whole_when_the_database_goes_away(tmp_path):
    state = {"up": True}

    def connect():
        if not state["up"]:
            raise ConnectionRefusedError("database stopped")
        return SQLiteCallLog(tmp_path / "calls.db")

    writer = CallLogWriter(connect, tmp_path / "calls.spool", retry_s=60)
    assert writer.flush() and writer.db is not None
    state["up"] = False
    writer.db.db.close()  # the connection breaks under the group
    group = [CHALLENGED.with_(call_id=f"6f1c2a52-0000-4000-8000-0000000002{k:02d}") for k in range(5)]
    assert writer.record_calls(group) == [SPOOLED] * 5 and writer.pending == 5
    state["up"], writer.next_attempt = True, 0.0
    assert writer.flush()
    assert sorted(r.call_id for r in SQLiteCallLog(tmp_path / "calls.db").calls()) == [r.call_id for r in group]
