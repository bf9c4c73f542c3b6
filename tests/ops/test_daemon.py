"""The daemon as an operator runs it: notify, watchdog, signals, call log, captures, metrics, lists."""

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from pbxguard.audio.files import read_audio
from pbxguard.shipped import CONFIG_FILE
from pbxguard.testing.asterisk import FakeAsterisk
from tests.ops.conftest import WATCHDOG_USEC, RunningDaemon

ROOT = Path(__file__).resolve().parents[2]
LIVE = read_audio(ROOT / "tests" / "examples" / "live_answer.wav")


def call(daemon, audio=LIVE, **kwargs):
    return asyncio.run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(audio, **kwargs))


def test_ready_after_binding_then_watchdog_pings(running_daemon):
    assert call(running_daemon).variables["PBXGUARD_ACTION"] == "BRIDGE"  # READY meant listening
    start, pings = time.monotonic(), 0
    while time.monotonic() - start < 1.0:
        pings += running_daemon.wait_for("WATCHDOG=1", 0.3)
    assert pings >= 1.0 / (WATCHDOG_USEC / 2e6) - 2  # every half WATCHDOG_USEC, from the event loop


def test_calls_are_logged_captured_counted_and_exported(running_daemon, tmp_path):
    result = call(running_daemon, callerid="+12025550143")
    call_id = result.variables["PBXGUARD_CALL_ID"]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{running_daemon.config['metrics']['port']}/metrics", timeout=10).read().decode()
    assert 'pbxguard_calls_total{action="BRIDGE",status="screened",verdict="human"} 1.0' in metrics
    assert "pbxguard_active_calls 0.0" in metrics and "pbxguard_model_info{version=" in metrics
    listing = running_daemon.pbxguard("calls")
    assert call_id in listing.stdout and "human" in listing.stdout
    shown = running_daemon.pbxguard("calls", "show", call_id)
    assert '"caller": "+12025550143"' in shown.stdout
    assert Path(eval(shown.stdout.replace("null", "None"))["capture"]).exists()
    assert running_daemon.pbxguard("calls", "label", call_id, "human").returncode == 0
    assert running_daemon.pbxguard("calls", "label", call_id, "robot").returncode == 2
    out = tmp_path / "export"
    running_daemon.pbxguard("calls", "export", str(out))
    assert (out / f"{call_id}.wav").exists() and f"{call_id}.wav,human" in (out / "labels.csv").read_text()


def test_lists_apply_without_a_restart(running_daemon):
    number = "+12025550143"

    def listed() -> str:
        check = call(running_daemon, np.zeros(0, dtype=np.int16), script="check", args=(), callerid=number)
        return check.variables["PBXGUARD_LIST"]

    assert listed() == "NONE"
    assert running_daemon.pbxguard("deny", "(202) 555-0143").returncode == 0
    assert listed() == "DENY"
    running_daemon.pbxguard("unlist", number)
    running_daemon.pbxguard("allow", "+1202*")
    assert listed() == "ALLOW"
    assert "allow  +1202*" in running_daemon.pbxguard("lists").stdout
    assert running_daemon.pbxguard("deny", "12345").returncode == 2


def test_sighup_reloads_without_dropping_a_call(running_daemon):
    async def during_reload():
        in_progress = asyncio.ensure_future(FakeAsterisk("127.0.0.1", running_daemon.agi_port).call(LIVE))
        await asyncio.sleep(0.6)
        running_daemon.config["policy"] = {"rules": {"human": {"action": "CHALLENGE"}}}
        running_daemon.write_config()
        running_daemon.process.send_signal(signal.SIGHUP)
        return await in_progress

    survivor = asyncio.run(during_reload())
    assert survivor.agistatus == "SUCCESS" and survivor.variables["PBXGUARD_VERDICT"] == "HUMAN"
    assert running_daemon.wait_for("RELOADING=1", 30) or any("RELOADING=1" in m for m in running_daemon.messages)
    assert running_daemon.wait_for("READY=1", 60)
    assert call(running_daemon).variables["PBXGUARD_ACTION"] == "CHALLENGE"  # the new policy
    running_daemon.config_path.write_text("fastagi:\n  prot: 1\n")  # a broken config is refused, the old one kept
    running_daemon.process.send_signal(signal.SIGHUP)
    assert running_daemon.wait_for("READY=1", 60)
    assert call(running_daemon).variables["PBXGUARD_ACTION"] == "CHALLENGE"


def test_sighup_applies_a_new_allow_list_and_names_what_needs_a_restart(running_daemon):
    assert call(running_daemon).variables["PBXGUARD_ACTION"] == "BRIDGE"
    running_daemon.config["allow"] = ["192.0.2.0/24"]  # loopback no longer allowed
    running_daemon.config["database"] = {**running_daemon.config["database"], "path": str(running_daemon.dir / "other.db")}
    running_daemon.write_config()
    running_daemon.process.send_signal(signal.SIGHUP)
    assert running_daemon.wait_for("READY=1", 60)
    refused = call(running_daemon)
    assert refused.variables == {} and refused.commands == []  # dropped before a byte of its header was read
    log = (running_daemon.dir / "daemon.log").read_text()
    assert "reload: changed database take effect only after a restart" in log
    assert not (running_daemon.dir / "other.db").exists()


def test_sigterm_finishes_the_call_in_progress(running_daemon):
    async def during_stop():
        in_progress = asyncio.ensure_future(FakeAsterisk("127.0.0.1", running_daemon.agi_port).call(LIVE))
        await asyncio.sleep(0.6)
        running_daemon.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        late = await FakeAsterisk("127.0.0.1", running_daemon.agi_port).call(LIVE)
        return await in_progress, late

    finished, late = asyncio.run(during_stop())
    assert finished.variables["PBXGUARD_VERDICT"] == "HUMAN"
    assert late.agistatus == "FAILURE"  # no longer accepting
    assert running_daemon.process.wait(30) == 0
    assert running_daemon.wait_for("STOPPING=1", 5) or any("STOPPING=1" in m for m in running_daemon.messages)


def test_kill_9_loses_no_call_whose_verdict_was_sent(running_daemon):
    sent = [call(running_daemon).variables["PBXGUARD_CALL_ID"] for _ in range(4)]
    running_daemon.process.kill()
    running_daemon.process.wait(10)
    db = sqlite3.connect(running_daemon.config["database"]["path"])
    logged = {row[0] for row in db.execute("SELECT call_id FROM calls WHERE status = 'screened'")}
    assert set(sent) <= logged


def test_bad_configuration_is_refused_at_start(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fastagi:\n  port: 4573\n  hots: 0.0.0.0\n")
    result = subprocess.run([sys.executable, "-m", "pbxguard", "serve", "--config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and f"{bad}:3: unknown key 'fastagi.hots'" in result.stderr
    check = subprocess.run([sys.executable, "-m", "pbxguard", "check-config", str(bad)], capture_output=True, text=True)
    assert check.returncode == 2
    good = subprocess.run([sys.executable, "-m", "pbxguard", "check-config", str(CONFIG_FILE)],
                          capture_output=True, text=True)
    assert good.returncode == 0 and "ok" in good.stdout


def test_port_in_use_is_a_clear_startup_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            RunningDaemon(tmp_path, fastagi={"port": port})
        except AssertionError:
            pass
        result = subprocess.run([sys.executable, "-m", "pbxguard", "serve", "--config", str(tmp_path / "pbxguard.yaml")],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and f"fastagi: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_postgresql_call_log_shared_by_two_daemons(tmp_path, postgres_url):
    import psycopg

    first = RunningDaemon(tmp_path / "a", database={"url": postgres_url})
    second = RunningDaemon(tmp_path / "b", database={"url": postgres_url})
    try:
        ids = [call(first).variables["PBXGUARD_CALL_ID"], call(second).variables["PBXGUARD_CALL_ID"]]
        assert first.pbxguard("deny", "+12025550143").returncode == 0  # a list entry made through one ...
        check = call(second, np.zeros(0, dtype=np.int16), script="check", args=(), callerid="+12025550143")
        assert check.variables["PBXGUARD_LIST"] == "DENY"  # ... applies on the other
    finally:
        first.stop()
        second.stop()
    with psycopg.connect(postgres_url) as db:
        rows = db.execute("SELECT call_id, verdict FROM calls WHERE call_id = ANY(%s)", [ids]).fetchall()
    assert sorted(rows) == sorted((i, "human") for i in ids)
