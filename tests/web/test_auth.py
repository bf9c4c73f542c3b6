"""Login, sessions, CSRF and what the page shows or refuses, over a real server on loopback."""

from __future__ import annotations

import os
import re

import pytest

from pbxguard.store.calllog import SQLiteCallLog
from pbxguard.web import auth
from pbxguard.web.server import WebError, make_server
from tests.web.page import PASSWORD, PASSWORD_HASH, Client, serving, web_config


def test_passwords_are_checked_against_the_hash_only():
    assert auth.well_formed(PASSWORD_HASH) and PASSWORD_HASH.startswith("scrypt:")
    assert auth.password_matches(PASSWORD_HASH, PASSWORD)
    assert not auth.password_matches(PASSWORD_HASH, PASSWORD + " ")
    assert not auth.password_matches("", "") and not auth.password_matches("scrypt:garbage", PASSWORD)
    assert not auth.well_formed("hunter2") and not auth.well_formed("")


def test_the_limiter_counts_failures_per_address_over_a_minute():
    limiter = auth.LoginLimiter(3)
    for t in (0.0, 1.0, 2.0):
        assert limiter.retry_after("10.0.0.1", now=t) == 0
        limiter.failed("10.0.0.1", now=t)
    assert limiter.retry_after("10.0.0.1", now=3.0) == pytest.approx(57.0)
    assert limiter.retry_after("10.0.0.2", now=3.0) == 0  # another address is not held back
    assert limiter.retry_after("10.0.0.1", now=60.5) == 0  # the first failure has aged out
    limiter.failed("10.0.0.2", now=4.0)
    limiter.succeeded("10.0.0.2")
    assert "10.0.0.2" not in limiter.failures
    bounded = auth.LoginLimiter(1)
    for n in range(auth.MAX_TRACKED_ADDRESSES + 50):
        bounded.failed(f"addr{n}", now=0.0)
    assert len(bounded.failures) == auth.MAX_TRACKED_ADDRESSES


def test_the_session_key_is_made_once_and_private(tmp_path):
    path = tmp_path / "web-secret"
    first = auth.session_secret(path)
    assert len(first) == 64 and auth.session_secret(path) == first
    assert os.stat(path).st_mode & 0o777 == 0o600
    path.write_text("short")
    with pytest.raises(ValueError, match="too short"):
        auth.session_secret(path)


def test_no_password_hash_no_page(tmp_path):
    with pytest.raises(WebError, match="pbxguard web --hash-password"):
        make_server(web_config(tmp_path, password_hash=""), port=0)
    with pytest.raises(WebError, match="not a hash"):
        make_server(web_config(tmp_path, password_hash="hunter2"), port=0)


def test_every_page_needs_the_login_and_the_cookie_is_locked_down(page):
    client = Client(page)
    for path in ("/", "/calls", "/export.tar", "/overview/verdict.svg"):
        status, headers, _ = client.get(path)
        assert status == 302 and "/login" in headers["Location"], path
    assert client.login("wrong password") == 401
    assert client.login() == 302
    cookie = next(h for h in client.set_cookie_headers if h.startswith("pbxguard_session=") and "Expires" in h)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, body = client.get("/calls")
    assert status == 200 and b"+120*****143" in body and b"+12025550143" not in body  # masked by default
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in headers["Content-Security-Policy"]
    assert b"<script" not in body


def test_failed_logins_lock_the_address_out(filled):
    folder, _ = filled
    with serving(folder, login_failures_per_minute=3) as client:
        assert [client.login("nope") for _ in range(3)] == [401, 401, 401]
        status, headers, _ = client.post("/login", {"csrf": client.csrf(), "password": PASSWORD})
        assert status == 429 and int(headers["Retry-After"]) > 0  # even the right password, for now


def test_changes_need_the_sessions_csrf_token_and_this_sites_origin(page, filled):
    folder, ids = filled
    client = Client(page)
    client.login()
    token = client.csrf(f"/calls/{ids[0]}")
    target = f"/calls/{ids[0]}/label"
    assert client.post(target, {"label": "noise"})[0] == 400
    forged = ("y" if token[0] == "x" else "x") + token[1:]  # one character off (not "x" over an "x": 1 run in 64)
    assert client.post(target, {"label": "noise", "csrf": forged})[0] == 400
    assert client.post(target, {"label": "noise", "csrf": token}, headers={"Origin": "http://evil.example"})[0] == 400
    other = Client(page)  # a token is only good with the session it was given to
    other.login()
    assert other.post(target, {"label": "noise", "csrf": token})[0] == 400
    log = SQLiteCallLog(folder / "calls.db")
    assert log.call(ids[0]).label is None
    assert client.post(target, {"label": "noise", "csrf": token}, headers={"Origin": page.url})[0] == 302
    assert log.call(ids[0]).label == "noise"
    assert client.post(target, {"label": "bogus", "csrf": token})[0] == 400
    assert client.post("/login", {"csrf": token, "password": PASSWORD}) [0] == 302
    assert client.post("/logout", {"csrf": client.csrf("/calls")})[0] == 302
    assert client.get("/calls")[0] == 302


def test_after_login_only_a_path_of_this_site(page):
    client = Client(page)
    for target, expected in (("/calls?verdict=human", "/calls?verdict=human"), ("//evil.example/x", "/calls"),
                             ("https://evil.example/", "/calls")):
        token = client.csrf()
        status, headers, _ = client.post(f"/login?next={target}", {"csrf": token, "password": PASSWORD})
        assert status == 302 and headers["Location"].endswith(expected), target


def test_a_capture_outside_the_captures_folder_is_never_served(page, filled, tmp_path_factory):
    folder, ids = filled
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.wav"
    outside.write_bytes(b"RIFF not yours")
    log = SQLiteCallLog(folder / "calls.db")
    record = log.call(ids[0])
    assert record.capture
    log.record_call(record.with_(capture=str(outside)))
    client = Client(page)
    client.login()
    assert client.get(f"/calls/{ids[0]}/capture.wav")[0] == 404
    assert client.get(f"/calls/{ids[10]}/capture.wav")[0] == 200
    assert client.get("/calls/not-a-call")[0] == 404


def test_numbers_are_shown_whole_only_when_configured(filled):
    folder, _ = filled
    with serving(folder, full_numbers=True) as client:
        client.login()
        assert b"+12025550143" in client.get("/calls")[2]


def test_a_hostile_caller_id_is_text_not_markup(tmp_path):
    from tests.web.conftest import fill

    fill(tmp_path, n=1, caller='<img src=x onerror=alert(1)>"')
    with serving(tmp_path, full_numbers=True) as client:
        client.login()
        body = client.get("/calls")[2]
        assert b"<img src=x" not in body and b"&lt;img src=x onerror=alert(1)&gt;" in body


def test_paging_and_filters(page, filled):
    _, ids = filled
    client = Client(page)
    client.login()
    seen, path = [], "/calls?verdict=human"
    while path and len(seen) < 1000:  # a page that links to itself must fail, not loop
        status, _, body = client.get(path)
        assert status == 200
        seen += re.findall(rb'href="/calls/([0-9a-f-]{36})"', body)
        older = re.search(rb'href="(/calls\?[^"]*before=[^"]*)" id="older"', body)
        path = older.group(1).decode().replace("&amp;", "&") if older else ""
    assert [s.decode() for s in seen] == ids[0::2]  # every human call once, newest first, over two pages
    assert client.get("/calls?verdict=nonsense")[0] == 400
    assert client.get("/calls?since=yesterday")[0] == 400
    status, _, body = client.get("/calls?number=%28202%29+555-0143&action=CHALLENGE")
    assert status == 200 and len(re.findall(rb'href="/calls/[0-9a-f-]{36}"', body)) == 65


def test_the_command_hashes_a_password_and_refuses_to_serve_without_one(tmp_path):
    import subprocess
    import sys

    made = subprocess.run([sys.executable, "-m", "pbxguard", "web", "--hash-password"], input="a long password\n",
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and auth.password_matches(made.stdout.strip(), "a long password")
    short = subprocess.run([sys.executable, "-m", "pbxguard", "web", "--hash-password"], input="short\n",
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "8 characters" in short.stderr
    (tmp_path / "pbxguard.yaml").write_text(f"database:\n  path: {tmp_path}/calls.db\n")
    refused = subprocess.run([sys.executable, "-m", "pbxguard", "web", "--config", str(tmp_path / "pbxguard.yaml")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "web.password_hash is empty" in refused.stderr


def test_the_overview_shows_the_mix_the_challenges_and_the_decision_times(page, filled):
    folder, ids = filled
    log = SQLiteCallLog(folder / "calls.db")
    assert log.record_challenge(ids[1], "PASS", "4") and log.record_challenge(ids[3], "FAIL", "")
    client = Client(page)
    client.login()
    status, _, body = client.get("/?range=7d")
    assert status == 200 and b"130 calls" in body
    challenges = body.split(b'id="challenges"')[1].split(b"</table>")[0]
    assert re.findall(rb">([\d.]+ %)<", challenges) == [b"50.0 %", b"50.0 %"]
    assert b"<td>human</td><td class=\"n\">65</td><td class=\"n\">2000</td>" in body  # decision times per verdict
    status, headers, svg = client.get("/overview/verdict.svg?range=7d")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml") and b"machine" in svg
    assert client.get("/overview/caller.svg")[0] == 404
