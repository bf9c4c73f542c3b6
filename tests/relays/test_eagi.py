"""The EAGI relay: a real pbxguard-eagi process between a fake Asterisk (pipes, fd 3) and the daemon."""

import asyncio
import subprocess
import sys

from pbxguard.testing.eagi import eagi_call


def test_relay_screens_through_the_daemon(daemon, calls_audio):
    live = asyncio.run(eagi_call(calls_audio["live"], daemon.rundir))
    assert live.agistatus == "SUCCESS"
    assert (live.variables["PBXGUARD_VERDICT"], live.variables["PBXGUARD_ACTION"]) == ("HUMAN", "BRIDGE")
    assert not any(c.startswith("EXEC AudioSocket") for c in live.commands)  # the audio came over fd 3
    fax = asyncio.run(eagi_call(calls_audio["fax"], daemon.rundir))
    assert fax.variables["PBXGUARD_ACTION"] == "HANGUP"
    assert fax.audio_sent_ms < 1500  # the verdict ended the session before the window


def test_caller_hangup_and_daemon_down(daemon, calls_audio, tmp_path):
    hung = asyncio.run(eagi_call(calls_audio["live"], daemon.rundir, hangup_after_ms=600))
    assert hung.agistatus == "HANGUP" and hung.variables == {}
    down = asyncio.run(eagi_call(calls_audio["live"], str(tmp_path)))
    assert down.agistatus == "FAILURE" and down.variables == {}


def test_relay_does_not_load_the_engine():
    code = "import sys, pbxguard.relays.eagi; print(sorted(m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
