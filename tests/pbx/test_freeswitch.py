"""Calls through a real FreeSWITCH 1.10.12 running the shipped XML dialplan, screened by a real daemon
through its ESL outbound server.

Each call is a loopback channel: its `-b` leg runs the shipped public extension (screen, then the shipped
pbxguard context: queue, challenge or hangup), its `-a` leg is the caller, playing an opening. What the
route did is read from the `-b` leg's CHANNEL_HANGUP_COMPLETE event.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from pbxguard.audio.files import read_audio, write_wav
from pbxguard.features.tones import CADENCES
from pbxguard.shipped import DIALPLAN
from pbxguard.testing.pbx import FreeSWITCH
from pbxguard.train import signals
from tests.daemon import EXAMPLES, Daemon
from tests.ops.conftest import RunningDaemon, free_port
from tests.signals import seconds, through_line

SHIPPED = DIALPLAN / "freeswitch"
AGENT = """<include>
  <extension name="test-agent">
    <condition field="destination_number" expression="^agent$">
      <action application="answer"/>
      <action application="playback" data="hello-world.wav"/>
      <action application="hangup"/>
    </condition>
  </extension>
</include>
"""


PROMPTS = {"ivr/ivr-please_enter_the.wav": "vm-press.wav", "ivr/ivr-that_was_an_invalid_entry.wav": "please-try-again.wav",
           "voicemail/vm-goodbye.wav": "goodbye.wav"}


class PBX:
    numbers = itertools.count(5550100)

    def __init__(self, workdir: Path, daemon: Daemon) -> None:
        self.daemon = daemon
        self.a_legs: dict[str, str] = {}
        self.audio = workdir / "audio"
        self.audio.mkdir(parents=True, exist_ok=True)
        self.fs = FreeSWITCH(workdir / "freeswitch", {**self.dialplan(daemon.server.freeswitch_port),
                                                      "public/99_agent.xml": AGENT})
        self.fs.esl.api("fsctl sps 1000")

    @staticmethod
    def dialplan(esl_port: int) -> dict[str, str]:
        """The shipped XML as an admin installs it: the ESL address, the DID pattern and the prompts edited."""
        esl = f"127.0.0.1:{esl_port}"
        entry = (SHIPPED / "public" / "00_pbxguard.xml").read_text().replace("127.0.0.1:8084", esl)
        entry = entry.replace('expression="^(5551000)$"', 'expression="^(555\\d{4})$"')
        for ours, asterisks in PROMPTS.items():  # no FreeSWITCH sound pack here: Asterisk's prompts stand in
            entry = entry.replace(ours, asterisks)
        routes = (SHIPPED / "pbxguard.xml").read_text().replace("127.0.0.1:8084", esl)
        return {"public/00_pbxguard.xml": entry, "pbxguard.xml": routes}

    def point_at(self, esl_port: int) -> None:
        """Send the calls to another pbxguard ESL port (or to nothing): rewrite the XML and reloadxml."""
        for name, xml in self.dialplan(esl_port).items():
            (self.fs.dir / "conf" / "dialplan" / name).write_text(xml)
        assert "+OK" in self.fs.esl.api("reloadxml")

    def wav(self, name: str, samples) -> str:
        path = self.audio / f"{name}.wav"
        write_wav(path, samples)
        return str(path)

    def call(self, audio: str, caller: str = "+12025550143", stay_ms: int = 8000) -> str:
        number = str(next(self.numbers))
        self.a_legs[number] = a_leg = str(uuid.uuid4())
        reply = self.fs.esl.bgapi(f"originate {{origination_uuid={a_leg},origination_caller_id_number={caller}}}"
                                  f"loopback/{number}/public 'playback:{audio},sleep:{stay_ms}' inline")
        assert reply.startswith("+OK"), reply
        return number

    def answer_challenge(self, number: str, how: str, tries: int = 1) -> None:
        """Press the digit asked for (`right`), another one (`wrong`), or nothing, at each of `tries` asks."""
        for k in range(tries):
            asked = self.fs.esl.wait_event(
                lambda e, k=k: e.get("Event-Name") == "CHANNEL_EXECUTE" and e.get("Application") == "play_and_get_digits"
                and e.get("Channel-Name") == f"loopback/{number}-b" and e.get("variable_pbxguard_try") == str(k + 1), 30)
            digit = asked["variable_pbxguard_challenge_digit"]
            if how:
                time.sleep(0.3)
                self.fs.esl.api(f"uuid_send_dtmf {self.a_legs[number]} {digit if how == 'right' else (int(digit) + 1) % 10}")

    def outcome(self, number: str, timeout: float = 40.0) -> dict[str, str]:
        return self.fs.esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                                      and e.get("Channel-Name") == f"loopback/{number}-b", timeout)

    def stop(self) -> None:
        self.fs.stop()


@pytest.fixture(scope="module")
def fs(freeswitch_prefix, tmp_path_factory):
    daemon = Daemon(freeswitch={"enabled": True, "port": 0, "recordings": str(tmp_path_factory.mktemp("recordings"))})
    pbx = PBX(Path(tempfile.mkdtemp(prefix="pbxguard-freeswitch-")), daemon)
    yield pbx
    pbx.stop()
    daemon.stop()


@pytest.fixture(scope="module")
def openings(fs, calls_audio):
    return {name: fs.wav(name, samples) for name, samples in calls_audio.items()}


def test_a_live_caller_is_bridged_to_the_shipped_queue(fs, openings):
    number = fs.call(openings["live"])
    event = fs.outcome(number)
    assert (event.get("variable_pbxguard_verdict"), event.get("variable_pbxguard_action")) == ("HUMAN", "BRIDGE")
    assert event.get("variable_cc_queue_answered_epoch")  # the shipped queue's agent took the call
    record = fs.daemon.call_log().call(event["variable_pbxguard_call_id"])
    assert (record.called, record.caller, record.status) == (number, "+12025550143", "screened")


def test_a_proven_fax_is_hung_up(fs, openings):
    event = fs.outcome(fs.call(openings["fax"]))
    assert (event.get("variable_pbxguard_verdict"), event.get("variable_pbxguard_action")) == ("FAX", "HANGUP")
    assert event.get("variable_pbxguard_rejected") == "REJECTED_CALLER_FAX"
    assert event.get("Hangup-Cause") == "CALL_REJECTED"
    # Proven after its first burst (~0.6 s of audio): hung up long before the window's end, so the audio
    # reached pbxguard as it came (FreeSWITCH's recordings are buffered 4.1 s unless told otherwise).
    held = (int(event["Caller-Channel-Hangup-Time"]) - int(event["Caller-Channel-Answered-Time"])) / 1e6
    assert held < 2.0


@pytest.mark.parametrize("how, outcome", [("right", "PASS"), ("wrong", "FAIL"), ("", "FAIL")])
def test_the_challenge_passes_on_the_right_digit_and_reports_what_was_pressed(fs, openings, how, outcome):
    number = fs.call(openings["dead_air"], stay_ms=25000)
    fs.answer_challenge(number, how, tries=1 if how == "right" else 2)
    event = fs.outcome(number)
    assert (event.get("variable_pbxguard_verdict"), event.get("variable_pbxguard_action")) == ("SILENCE", "CHALLENGE")
    record = fs.daemon.call_log().call(event["variable_pbxguard_call_id"])
    assert record.challenge == outcome
    if how == "right":
        assert event.get("variable_cc_queue_answered_epoch") and record.label == "human"
    else:
        assert event.get("variable_pbxguard_rejected") == "REJECTED_CALLER_SILENCE" and record.label == "silence"
        assert record.pressed == ("" if not how else event["variable_pbxguard_pressed"])
        assert (record.pressed != "") == (how == "wrong")  # a wrong digit reaches pbxguard as that digit


def test_the_caller_id_lists_apply_before_the_call_is_answered(fs, openings):
    log = fs.daemon.call_log()
    log.add_to_list("deny", "+12025550199")
    log.add_to_list("allow", "+12025550188")
    denied = fs.outcome(fs.call(openings["live"], caller="+12025550199"))
    allowed = fs.outcome(fs.call(openings["dead_air"], caller="+12025550188"))
    assert denied.get("variable_pbxguard_rejected") == "REJECTED_CALLER_DENY_LIST"
    assert denied.get("Hangup-Cause") == "CALL_REJECTED" and denied.get("Caller-Channel-Answered-Time") == "0"
    assert allowed.get("variable_pbxguard_verdict") is None and allowed.get("variable_cc_queue_answered_epoch")


def test_with_pbxguard_down_calls_go_straight_to_the_queue(fs, openings):
    fs.point_at(1)
    try:
        event = fs.outcome(fs.call(openings["dead_air"]))
    finally:
        fs.point_at(fs.daemon.server.freeswitch_port)
    assert event.get("variable_pbxguard_action") in (None, "") and event.get("variable_cc_queue_answered_epoch")


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("failure", ["daemon killed", "daemon frozen", "esl frozen", "esl killed"])
def test_a_failing_pbxguard_lets_its_calls_through_within_a_second(fs, openings, tmp_path, failure):
    esl_port = free_port()
    daemon = RunningDaemon(tmp_path, freeswitch={"enabled": True, "port": esl_port, "recordings": str(tmp_path / "rec")},
                           eagi={"enabled": True, "directory": str(tmp_path / "run")})
    workers = children(daemon.process.pid)  # one per core; worker 0 runs the ESL server
    worker = workers[0]
    esl_process = children(worker)[-1]  # spawn's resource tracker may come first
    fs.point_at(esl_port)
    try:
        number = fs.call(openings["dead_air"])
        fs.fs.esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_EXECUTE" and e.get("Application") == "socket"
                             and e.get("Channel-Name") == f"loopback/{number}-b", 10)
        time.sleep(1.0)  # mid-window
        if failure == "daemon killed":
            os.kill(daemon.process.pid, signal.SIGKILL)
        elif failure == "esl killed":
            os.kill(esl_process, signal.SIGKILL)
        elif failure == "esl frozen":
            os.kill(esl_process, signal.SIGSTOP)
        else:  # every worker: the call may be on any
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
        stalled = time.monotonic()
        moved = fs.fs.esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_EXECUTE"
                                     and e.get("Application") == "callcenter"
                                     and e.get("Channel-Name") == f"loopback/{number}-b", 10)
        released = time.monotonic()
        event = fs.outcome(number)
        if failure == "daemon killed":  # nothing is left behind holding the ESL port
            deadline = time.monotonic() + 5
            while Path(f"/proc/{esl_process}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not Path(f"/proc/{esl_process}").exists()
        if failure.startswith("esl"):  # the daemon replaced its ESL process, on the same port, and screens again
            deadline = time.monotonic() + 10
            while esl_process in children(worker) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert esl_process not in children(worker)
            time.sleep(1.0)  # the replacement binds
            after = fs.outcome(fs.call(openings["fax"]))
            assert (after.get("variable_pbxguard_verdict"), after.get("variable_pbxguard_action")) == ("FAX", "HANGUP")
    finally:
        fs.point_at(fs.daemon.server.freeswitch_port)
        for pid in (*workers, esl_process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        daemon.stop()
    assert moved and released - stalled <= 1.0
    assert event.get("variable_pbxguard_action") in (None, "") and event.get("variable_cc_queue_answered_epoch")


@pytest.mark.parametrize("offset_ms", [0.0, 250.0])
def test_a_fax_whose_cng_is_on_at_answer_is_hung_up(fs, offset_ms):
    rng = np.random.default_rng(int(offset_ms) + 1)
    cng = next(c for c in CADENCES if c.name == "fax_cng")
    fax, _ = signals.cadence_tone(cng, seconds(3.0), rng, -20.0, offset_ms=offset_ms)
    event = fs.outcome(fs.call(fs.wav(f"fax_at_{int(offset_ms)}", through_line(fax, rng))))
    assert (event.get("variable_pbxguard_verdict"), event.get("variable_pbxguard_action")) == ("FAX", "HANGUP")


def test_the_same_audio_gets_the_same_verdict_as_alone(fs, openings):
    busy = read_audio(EXAMPLES / "busy_na.wav")
    files = {**openings, "busy": fs.wav("busy", busy)}
    numbers = {kind: fs.call(path) for kind, path in files.items()}  # at once
    for kind, number in numbers.items():
        event = fs.outcome(number)
        alone = fs.daemon.server.screener.screen(busy if kind == "busy" else read_audio(files[kind]))
        assert event.get("variable_pbxguard_verdict") == alone.label.upper(), kind


def test_a_caller_who_hangs_up_mid_window_is_abandoned(fs, calls_audio):
    short = fs.wav("live_short", calls_audio["live"][:6000])
    number = fs.call(short, stay_ms=0)
    fs.outcome(number)
    record = fs.daemon.record_for(number)
    assert record.status == "abandoned" and record.audio_ms < 1000
