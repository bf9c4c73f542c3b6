"""The recorder groups the rows of calls that end together into one commit, and acknowledges each."""

import asyncio

from pbxguard.service.recorder import Recorder
from pbxguard.store.calllog import SQLiteCallLog
from pbxguard.store.record import CallRecord
from pbxguard.store.writer import CallLogWriter
from tests.store.test_writer import commits_of


def test_calls_ending_together_share_commits_and_every_row_is_in_before_its_call_returns(tmp_path):
    writer = CallLogWriter(lambda: SQLiteCallLog(tmp_path / "calls.db"), tmp_path / "calls.spool")
    statements = commits_of(writer)
    recorder = Recorder(writer)
    ids = [f"6f1c2a52-0000-4000-8000-0000000003{k:02d}" for k in range(50)]

    async def one(call_id: str) -> bool:
        await recorder.call(CallRecord(call_id, "screened", verdict="human", action="BRIDGE"))
        return SQLiteCallLog(tmp_path / "calls.db").call(call_id) is not None  # committed once call() returns

    async def main() -> list[bool]:
        return await asyncio.gather(*(one(call_id) for call_id in ids))

    assert all(asyncio.run(main()))
    recorder.close()
    assert statements.count("COMMIT") == 1  # all 50 ended in one turn of the event loop: one group
    assert sorted(r.call_id for r in SQLiteCallLog(tmp_path / "calls.db").calls(limit=100)) == ids
