"""The daemon end to end over real sockets, against a fake Asterisk replaying real Asterisk 22 bytes."""

import asyncio

import numpy as np
import pytest
from scipy.signal import resample_poly

from pbxguard.testing.asterisk import FakeAsterisk
from pbxguard.testing.replay import captured_audio

CONTRACT = {"PBXGUARD_CALL_ID", "PBXGUARD_VERDICT", "PBXGUARD_CONFIDENCE", "PBXGUARD_ACTION", "PBXGUARD_REASON",
            "PBXGUARD_DECIDED_MS", "PBXGUARD_MODEL", "AMDSTATUS", "AMDCAUSE"}


def run(coro):
    return asyncio.run(coro)


def test_live_dead_air_and_fax_at_once(daemon, calls_audio):
    fake = FakeAsterisk("127.0.0.1", daemon.agi_port)

    async def three():
        return await asyncio.gather(*(fake.call(calls_audio[k]) for k in ("live", "dead_air", "fax")))

    live, dead_air, fax = run(three())
    for call in (live, dead_air, fax):
        assert call.agistatus == "SUCCESS"
        assert CONTRACT <= set(call.variables)
        assert call.commands[0].startswith("EXEC AudioSocket")
        assert list(call.variables)[-1] == "PBXGUARD_ACTION"  # set last: seeing it means the rest are there
    live_vars = live.variables
    assert (live_vars["PBXGUARD_VERDICT"], live_vars["PBXGUARD_ACTION"], live_vars["AMDSTATUS"]) == ("HUMAN", "BRIDGE", "HUMAN")
    assert (dead_air.variables["PBXGUARD_VERDICT"], dead_air.variables["PBXGUARD_ACTION"]) == ("SILENCE", "CHALLENGE")
    assert dead_air.variables["PBXGUARD_CHALLENGE_DIGIT"] in list("0123456789")
    assert dead_air.variables["AMDCAUSE"].startswith("INITIALSILENCE-")
    assert (fax.variables["PBXGUARD_VERDICT"], fax.variables["PBXGUARD_ACTION"]) == ("FAX", "HANGUP")
    # The CNG burst is proven before the window ends: the daemon closed the audio socket early.
    assert fax.audio_closed_by_server and fax.audio_sent_ms < 1000
    assert int(fax.variables["PBXGUARD_DECIDED_MS"]) < 1000


def test_caller_hangs_up_mid_window(daemon, calls_audio):
    for sighup in (False, True):  # with and without the unprompted HANGUP line
        call = run(FakeAsterisk("127.0.0.1", daemon.agi_port, sighup=sighup).call(calls_audio["live"], hangup_after_ms=700))
        assert call.agistatus == "HANGUP"
        assert call.variables == {}
    assert daemon.records[-1].status == "abandoned"
    assert daemon.records[-1].audio_ms < 1000


def test_missing_first_frame_still_decides(daemon, calls_audio):
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(calls_audio["live"], skip_first_frame=True))
    assert call.variables["PBXGUARD_VERDICT"] == "HUMAN"


def test_real_captured_audio_is_screened(daemon):
    audio = captured_audio()  # what Asterisk 22 sent for a played prompt, frame sizes and all
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(audio))
    alone = daemon.server.screener.screen(audio)  # the same audio screened offline: the same verdict
    assert call.agistatus == "SUCCESS" and call.variables["PBXGUARD_VERDICT"] == alone.label.upper()
    assert call.variables["PBXGUARD_ACTION"] == daemon.server.service.policy.decide(alone).action
    assert daemon.records[-1].audio_ms >= 1900


def test_slin16_frames_give_the_same_verdict(daemon, calls_audio):
    wide = np.clip(resample_poly(calls_audio["live"].astype(float), 2, 1), -32768, 32767).astype(np.int16)
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(wide, kind=0x12))
    assert call.variables["PBXGUARD_VERDICT"] == "HUMAN"


def test_outbound_mode_sets_the_beep_variable(daemon, calls_audio):
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(calls_audio["live"], args=("outbound", "2000")))
    assert "PBXGUARD_BEEP_MS" in call.variables and call.variables["AMDSTATUS"] == "HUMAN"


def test_daemon_down_is_agistatus_failure(unused_port):
    call = run(FakeAsterisk("127.0.0.1", unused_port).call(np.zeros(16000, dtype=np.int16)))
    assert call.agistatus == "FAILURE" and call.variables == {}


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_verdict_is_sent_when_audiosocket_fails_after_the_window(daemon, calls_audio):
    # Under load Asterisk reads a reset after our close and AudioSocket() returns -1 with the channel up.
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port, reset_on_close=True).call(calls_audio["fax"]))
    assert call.audio_closed_by_server
    assert (call.variables["PBXGUARD_VERDICT"], call.variables["PBXGUARD_ACTION"]) == ("FAX", "HANGUP")
    assert daemon.records[-1].status == "screened"


@pytest.mark.parametrize("injected", ["\nagi_pbxguard_call_id: ../../../tmp/x", "\nagi_pbxguard_call_id: {uuid}",
                                      "\u2028agi_network_script: check", "\x0bagi_callerid: +12025550100"])
def test_a_tcp_peer_cannot_name_the_call_or_rewrite_the_header(daemon, calls_audio, injected):
    import uuid

    chosen = str(uuid.uuid4())
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(calls_audio["fax"],
                                                               callerid="Bob" + injected.format(uuid=chosen)))
    assert call.commands[0].startswith("EXEC AudioSocket")  # screened, with audio asked of Asterisk
    assert call.variables["PBXGUARD_ACTION"] == "HANGUP"
    assert call.variables["PBXGUARD_CALL_ID"] not in (chosen, "../../../tmp/x")
    assert str(uuid.UUID(call.variables["PBXGUARD_CALL_ID"])) == call.variables["PBXGUARD_CALL_ID"]


def test_challenge_reports_count_only_for_calls_pbxguard_challenged(daemon, calls_audio):
    fake = FakeAsterisk("127.0.0.1", daemon.agi_port)
    bridged, challenged = (run(fake.call(calls_audio[k])).variables["PBXGUARD_CALL_ID"] for k in ("live", "dead_air"))
    for call_id, outcome in ((bridged, "FAIL"), (challenged, "FAIL"), (challenged, "PASS"), ("../../x", "PASS")):
        run(fake.call(calls_audio["live"][:0], script="challenge", args=(call_id, outcome, "7#x\u2028")))
    log = daemon.call_log()
    assert (log.call(bridged).challenge, log.call(bridged).label) == (None, None)  # never challenged: no label
    assert (log.call(challenged).challenge, log.call(challenged).pressed) == ("FAIL", "7#")  # the first report holds


def test_a_window_argument_that_only_looks_like_digits_is_ignored(daemon, calls_audio):
    call = run(FakeAsterisk("127.0.0.1", daemon.agi_port).call(calls_audio["live"], args=("inbound", "\u00b2\u00b3")))
    assert (call.variables["PBXGUARD_VERDICT"], call.variables["PBXGUARD_ACTION"]) == ("HUMAN", "BRIDGE")
