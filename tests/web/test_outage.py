"""A call log that goes away: the page says so (503) and works again once the database is back."""

from __future__ import annotations

from pbxguard.store.calllog import PostgresCallLog
from pbxguard.store.record import CallRecord
from tests.web.page import Client, WebPage, web_config


def test_the_page_survives_postgresql_going_away(tmp_path, postgres):
    log = PostgresCallLog(postgres.url)
    log.record_call(CallRecord("5c1f4c2e-0000-4000-8000-000000000001", "screened", verdict="fax", action="HANGUP"))
    log.close()
    page = WebPage(web_config(tmp_path).with_(database={"url": postgres.url}))
    client = Client(page)
    try:
        client.login()
        assert [client.get("/calls")[0] for _ in range(8)] == [200] * 8  # every server thread has its connection
        postgres.stop()
        try:
            answers = [client.get(path) for path in ("/calls", "/") * 5]
            assert {status for status, _, _ in answers} == {503}
            assert all(b"Call log unavailable" in body for _, _, body in answers)
        finally:
            postgres.start()
        status, _, body = client.get("/calls")
        assert status == 200 and b"5c1f4c2e" in body
    finally:
        page.stop()
