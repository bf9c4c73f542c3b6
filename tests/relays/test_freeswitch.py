"""The FreeSWITCH path end to end: a fake FreeSWITCH (wire format from the facts file) against the ESL
server process, which relays to the real daemon."""

import asyncio
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pbxguard.shipped import DIALPLAN as SHIPPED_DIALPLAN
from pbxguard.testing.asterisk import FakeAsterisk
from pbxguard.testing.freeswitch import freeswitch_call
from tests.daemon import Daemon

DIALPLAN = SHIPPED_DIALPLAN / "freeswitch"


@pytest.fixture(scope="module")
def fs_daemon(tmp_path_factory):
    d = Daemon(freeswitch={"enabled": True, "port": 0, "recordings": str(tmp_path_factory.mktemp("recordings"))})
    d.esl_port = d.server.freeswitch_port
    yield d
    d.stop()


def run(coro):
    return asyncio.run(coro)


def test_same_verdicts_as_the_asterisk_path(fs_daemon, calls_audio):
    async def both(audio):
        fs = await freeswitch_call("127.0.0.1", fs_daemon.esl_port, audio)
        ast = await FakeAsterisk("127.0.0.1", fs_daemon.agi_port).call(audio)
        return fs, ast

    for kind, action in (("live", "BRIDGE"), ("dead_air", "CHALLENGE"), ("fax", "HANGUP")):
        fs, ast = run(both(calls_audio[kind]))
        assert fs.variables["pbxguard_action"] == ast.variables["PBXGUARD_ACTION"] == action
        assert fs.variables["pbxguard_verdict"] == ast.variables["PBXGUARD_VERDICT"]
        assert fs.variables["amd_result"] == ast.variables["AMDSTATUS"]
        assert fs.variables["amd_cause"] == ast.variables["AMDCAUSE"].split("-")[0]  # mod_amd's bare cause
        assert fs.variables["RECORD_READ_ONLY"] == "true" and fs.variables["record_sample_rate"] == "8000"
        assert any(c.startswith("api uuid_record") and " stop " in c for c in fs.commands)
        assert fs.commands[-1] == "resume"  # then the socket is closed: no `exit` round trip
    assert not list(Path(fs_daemon.server.config.freeswitch.recordings).iterdir())  # recordings removed


def test_caller_hangup_mid_recording(fs_daemon, calls_audio):
    call = run(freeswitch_call("127.0.0.1", fs_daemon.esl_port, calls_audio["live"], hangup_after_ms=600))
    assert call.agistatus == "HANGUP"
    assert not any(k.startswith("pbxguard_") for k in call.variables)
    assert fs_daemon.records[-1].status == "abandoned"


def test_recording_that_never_appears_fails_open(fs_daemon, calls_audio):
    call = run(freeswitch_call("127.0.0.1", fs_daemon.esl_port, calls_audio["live"], never_record=True))
    assert (call.variables["pbxguard_action"], call.variables["pbxguard_reason"]) == ("BRIDGE", "NO_AUDIO")


def test_garbage_and_half_open_connections_leave_other_calls_alone(fs_daemon, calls_audio):
    async def bad_client(data: bytes, hold: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", fs_daemon.esl_port)
        await reader.readuntil(b"\n\n")  # our "connect"
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(hold)
        writer.close()

    async def scenario():
        bad = asyncio.gather(
            bad_client(b"this is not ESL at all\n\n\x00\xff\n\n", 0.5),
            bad_client(b"Content-Type: command/reply\nReply-Text: +OK\n", 0.2),  # half a reply, then gone
            bad_client(b"", 3.0),  # says nothing
            bad_client(b"Content-Type: text/disconnect-notice\nContent-Length: 30\n\nDisconnected, goodbye.\nBye!!!\n", 0.5),
            bad_client(b"Content-Type: api/response\nContent-Length: 5000\n\n+OK", 0.0),  # greenswitch spun here
            bad_client(b"Content-Type: command/reply\nReply-Text: +OK\n\n" * 50, 0.5),  # replies nobody asked for
        )
        good = await asyncio.gather(*(freeswitch_call("127.0.0.1", fs_daemon.esl_port, calls_audio[k])
                                      for k in ("live", "dead_air", "fax")))
        await bad
        return good

    live, dead_air, fax = run(scenario())
    assert [c.variables["pbxguard_action"] for c in (live, dead_air, fax)] == ["BRIDGE", "CHALLENGE", "HANGUP"]


@pytest.mark.parametrize("caller", ["+1202\u2028variable_pbxguard_report: PASS", "+1202\nagi_network_script: check",
                                    "+1202\r\nvariable_pbxguard_call_id: x"])
def test_a_caller_id_cannot_forge_a_report_or_a_header(fs_daemon, calls_audio, caller):
    call = run(freeswitch_call("127.0.0.1", fs_daemon.esl_port, calls_audio["fax"], caller=caller))
    assert (call.variables["pbxguard_action"], call.variables["pbxguard_verdict"]) == ("HANGUP", "FAX")
    assert fs_daemon.call_log().call(call.variables["pbxguard_call_id"]).status == "screened"


def test_challenge_outcome_is_reported_through_the_socket(fs_daemon, calls_audio):
    screened = run(freeswitch_call("127.0.0.1", fs_daemon.esl_port, calls_audio["dead_air"]))
    call_id = screened.variables["pbxguard_call_id"]
    report = run(freeswitch_call("127.0.0.1", fs_daemon.esl_port, calls_audio["dead_air"][:0],
                                 variables={"pbxguard_report": "FAIL", "pbxguard_call_id": call_id, "pbxguard_pressed": ""}))
    assert "resume" in report.commands
    logged = fs_daemon.call_log().call(call_id)
    assert (logged.challenge, logged.label) == ("FAIL", "silence")


def test_dialplan_routes_every_action_and_falls_open():
    entry = ET.parse(DIALPLAN / "public" / "00_pbxguard.xml").getroot()
    actions = [(a.get("application"), a.get("data")) for a in entry.iter("action")]
    assert ("socket", "127.0.0.1:8084 async full") in actions
    assert ("transfer", "pbxguard_route_${pbxguard_action} XML pbxguard") in actions
    context = ET.parse(DIALPLAN / "pbxguard.xml").getroot().find("context")
    patterns = {ext.get("name"): ext.find("condition").get("expression") for ext in context.iter("extension")}

    def route(target: str) -> str:
        matched = [name for name, rx in patterns.items() if re.fullmatch(rx, target)]
        assert len(matched) == 1, (target, matched)
        return matched[0]

    assert route("pbxguard_route_BRIDGE") == route("pbxguard_route_") == "pbxguard-bridge"  # missing: fail open
    assert route("pbxguard_route_HANGUP") == "pbxguard-hangup"
    assert route("pbxguard_route_DENY") == "pbxguard-deny"
    assert route("pbxguard_route_ALLOW") == "pbxguard-bridge"
    assert route("pbxguard_route_CHALLENGE") == "pbxguard-challenge"
    assert route("pbxguard_ask") == "pbxguard-ask"
    assert route("pbxguard_answer_right") == "pbxguard-challenge-passed"
    assert route("pbxguard_answer_wrong1") == "pbxguard-try-again"
    assert route("pbxguard_answer_wrong2") == "pbxguard-challenge-failed"


def test_bind_failure_is_a_clear_startup_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match=f"freeswitch: cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            Daemon(freeswitch={"enabled": True, "port": taken.getsockname()[1], "recordings": str(tmp_path)})


class _Connected:
    connected = _outbound_connected = True


def test_the_audio_pump_wakes_once_a_block_not_once_a_frame(tmp_path):
    """FreeSWITCH writes the recording 20 ms at a time; the daemon looks at it 100 ms at a time, so the pump
    forwards it in blocks of CHECK_MS, not in the 50 frames a second FreeSWITCH wrote."""
    import socket
    import threading
    import time

    from pbxguard.audio.format import BYTES_PER_MS, CHECK_MS, FRAME_BYTES
    from pbxguard.protocols.audiosocket import FrameParser
    from pbxguard.relays.freeswitch import ScreeningCall

    path = tmp_path / "call.raw"
    audio = bytes(range(256)) * 125  # 2 s
    path.write_bytes(b"")

    def record() -> None:  # as FreeSWITCH does: a frame every 20 ms, on the clock
        start = time.monotonic()
        with open(path, "ab") as f:
            for k, pos in enumerate(range(0, len(audio), FRAME_BYTES)):
                time.sleep(max(0.0, start + k * 0.02 - time.monotonic()))
                f.write(audio[pos : pos + FRAME_BYTES])
                f.flush()

    ours, theirs = socket.socketpair()
    recorder = threading.Thread(target=record)
    pump = threading.Thread(target=ScreeningCall(_Connected())._pump, args=(path, theirs))
    recorder.start()
    pump.start()
    received, payloads, parser = b"", [], FrameParser()
    ours.settimeout(5)
    while len(received) < len(audio):
        for _, payload in parser.feed(ours.recv(4096)):
            received += payload
            payloads.append(len(payload))
    ours.close()
    recorder.join(5)
    pump.join(5)
    assert received == audio
    blocks = len(audio) // (CHECK_MS * BYTES_PER_MS)
    assert len(payloads) <= 2 * blocks < len(audio) // FRAME_BYTES, payloads  # a late frame costs one more send


def test_the_audio_pump_works_with_descriptors_above_1024(tmp_path):
    """Past ~150 calls the ESL process holds more than 1,024 descriptors, which select() refuses."""
    import resource
    import socket
    import threading

    from pbxguard.protocols.audiosocket import FrameParser
    from pbxguard.relays.freeswitch import ScreeningCall

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard > 2100, "the test needs 2,100 open files"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2100), hard))
    ours, theirs = socket.socketpair()
    high = socket.socket(fileno=os.dup2(theirs.fileno(), 2050))
    theirs.detach()

    path = tmp_path / "call.raw"
    path.write_bytes(b"\x01\x00" * 1600)  # 200 ms of audio already recorded
    pump = threading.Thread(target=ScreeningCall(_Connected())._pump, args=(path, high))
    pump.start()
    received, parser = b"", FrameParser()
    ours.settimeout(5)
    while len(received) < 3200:
        received += b"".join(payload for _, payload in parser.feed(ours.recv(4096)))
    ours.close()  # the daemon has its verdict
    pump.join(5)
    assert not pump.is_alive() and received == b"\x01\x00" * 1600


def test_the_audio_pump_stops_when_the_daemon_closes_not_at_its_next_wake(tmp_path, monkeypatch):
    """The pump waits for the next block on the daemon's socket: a verdict (the daemon closing it) ends the
    pump at once, and with it the call's hold, however far off the next block is."""
    import socket
    import threading

    from pbxguard.relays import freeswitch

    monkeypatch.setattr(freeswitch, "_until_block", lambda read: 600.0)
    path = tmp_path / "call.raw"
    path.write_bytes(b"\x01\x00" * 800)
    ours, theirs = socket.socketpair()
    pump = threading.Thread(target=freeswitch.ScreeningCall(_Connected())._pump, args=(path, theirs))
    pump.start()
    ours.settimeout(5)
    ours.recv(4096)  # the audio so far is forwarded, then the pump waits
    ours.close()
    pump.join(5)
    assert not pump.is_alive()
