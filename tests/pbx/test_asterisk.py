"""Calls through a real Asterisk 22.10.1 running the shipped dialplan, screened by a real daemon.

Each call is a Local channel: its `;2` side runs the shipped example inbound route (screen, then the shipped
queue), its `;1` side is the caller, playing an opening and pressing a digit when told. What the route did
is written by a hangup handler into a global that the test reads back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from pbxguard.audio.files import read_audio, write_wav
from pbxguard.features.tones import CADENCES
from pbxguard.shipped import DIALPLAN
from pbxguard.testing.pbx import Asterisk
from pbxguard.train import signals
from tests.daemon import EXAMPLES, Daemon
from tests.ops.conftest import RunningDaemon
from tests.readme import ASTERISK, lines_to_run, run_line
from tests.signals import seconds, through_line, with_beep

SHIPPED = DIALPLAN / "asterisk"
# What the hangup handler records of each call, and the channel variable it comes from.
OUTCOME = {"verdict": "PBXGUARD_VERDICT", "action": "PBXGUARD_ACTION", "reason": "PBXGUARD_REASON",
           "challenge": "PBXGUARD_CHALLENGE", "member": "MEMBERINTERFACE", "agistatus": "AGISTATUS",
           "userfield": "CDR(userfield)", "call_id": "PBXGUARD_CALL_ID", "amd": "AMDSTATUS", "amd_cause": "AMDCAUSE",
           "beep": "PBXGUARD_BEEP_MS", "beep_end": "PBXGUARD_BEEP_END_MS"}

TEST_CONTEXTS = r"""
[test-route]
; the inbound side: the shipped example route, with this call's caller ID and a record of what happened
exten => _X.,1,Set(CHANNEL(hangup_handler_push)=test-outcome,s,1(${EXTEN}))
 same => n,Set(CALLERID(num)=${CALLER_${EXTEN}})
 same => n,Set(PBXGUARD_EAGI=${EAGI_${EXTEN}})
 same => n,Goto(pbxguard-example-inbound,${EXTEN},1)

[test-dialer]
; an outbound dialer's side after the callee answered: the shipped drop-in for AMD(), or AMD() itself
exten => _X.,1,Set(CHANNEL(hangup_handler_push)=test-outcome,s,1(${EXTEN}))
 same => n,Answer()
 same => n,Set(STARTED=${EPOCH})
 same => n,GotoIf($["${AMD_${EXTEN}}" = "app"]?app)
 same => n,Gosub(pbxguard-amd,s,1(${WINDOW_${EXTEN}}))
 same => n,Hangup()
 same => n(app),AMD()
 same => n,Hangup()

[test-outcome]
exten => s,1,Set(GLOBAL(OUTCOME_${ARG1})=@OUTCOME@)
 same => n,Return()

[test-caller]
; the caller: plays its opening, then answers the challenge as told (right, wrong or not at all)
exten => _X.,1,Playback(${AUDIO_${EXTEN}})
 same => n,GotoIf($["${HANGUP_${EXTEN}}" = "yes"]?gone)
 same => n,GotoIf($["${DIGIT_${EXTEN}}" = ""]?stay)
 same => n,Wait(2.5)
 same => n,Set(digit=${IMPORT(${CUT(CHANNEL,\;,1)}\;2,PBXGUARD_CHALLENGE_DIGIT)})
 same => n,GotoIf($["${DIGIT_${EXTEN}}" = "right"]?send)
 same => n,Set(digit=$[(${digit} + 1) % 10])
 same => n(send),SendDTMF(${digit})
 same => n(stay),Wait(20)
 same => n(gone),Hangup()
""".replace("@OUTCOME@", "|".join(f"${{{variable}}}" for variable in OUTCOME.values()))


class PBX:
    """The real Asterisk with the shipped dialplan and queue, and a real daemon behind it."""

    numbers = itertools.count(5550100)

    def __init__(self, workdir: Path, daemon: Daemon) -> None:
        self.daemon = daemon
        self.audio = workdir / "audio"
        self.audio.mkdir(parents=True, exist_ok=True)
        extensions = (f"[globals]\nPBXGUARD_SERVER=127.0.0.1:{daemon.agi_port}\n\n"
                      f"#include {SHIPPED / 'extensions_pbxguard.conf'}\n{TEST_CONTEXTS}")
        configs = {"queues.conf": f"[general]\n#include {SHIPPED / 'queues_pbxguard.conf'}\n",
                   "musiconhold.conf": "[default]\nmode = files\ndirectory = /usr/share/asterisk/moh\n"}
        agi_bin = workdir / "asterisk" / "agi-bin"
        agi_bin.mkdir(parents=True, exist_ok=True)
        beside = Path(sys.executable).with_name("pbxguard-eagi")  # the relay installed with this Python
        relay = str(beside) if beside.exists() else shutil.which("pbxguard-eagi")
        assert relay, "pbxguard-eagi is not installed: install the package (bash .ci/setup)"
        (agi_bin / "pbxguard-eagi").symlink_to(relay)
        self.asterisk = Asterisk(workdir / "asterisk", extensions, configs, env={"PBXGUARD_RUNDIR": daemon.rundir})

    def wav(self, name: str, samples: np.ndarray) -> str:
        path = self.audio / f"{name}.wav"
        write_wav(path, samples)
        return str(path.with_suffix(""))

    def call(self, audio: str, caller: str = "+12025550143", digit: str = "", hangup: bool = False,
             eagi: bool = False, route: str = "test-route", amd: str = "", window: str = "") -> str:
        """Place a call; returns its number (the key of its outcome)."""
        number = str(next(self.numbers))
        for name, value in (("AUDIO", audio), ("CALLER", caller), ("DIGIT", digit), ("HANGUP", "yes" if hangup else ""),
                            ("EAGI", "yes" if eagi else ""), ("AMD", amd), ("WINDOW", window)):
            self.asterisk.cli(f"dialplan set global {name}_{number} {value}")
        self.asterisk.cli(f"channel originate Local/{number}@{route} extension {number}@test-caller")
        return number

    def server(self, address: str) -> None:
        """Point the dialplan at another pbxguard (or at nothing)."""
        self.asterisk.cli(f"dialplan set global PBXGUARD_SERVER {address}")

    def outcome(self, number: str, timeout: float = 40.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.asterisk.globals().get(f"OUTCOME_{number}")
            if value is not None:
                return dict(zip(OUTCOME, value.split("|")))
            time.sleep(0.2)
        raise AssertionError(f"call {number} did not end within {timeout} s; log:\n{self.asterisk.log()[-3000:]}")

    def stop(self) -> None:
        self.asterisk.stop()


@pytest.fixture(scope="module")
def pbx(asterisk_prefix):
    daemon = Daemon()
    pbx = PBX(Path(tempfile.mkdtemp(prefix="pbxguard-asterisk-")), daemon)
    yield pbx
    pbx.stop()
    daemon.stop()


@pytest.fixture(scope="module")
def openings(pbx, calls_audio):
    files = {name: pbx.wav(name, samples) for name, samples in calls_audio.items()}
    for name in ("greeting_beep", "busy_na", "robocall"):
        files[name] = pbx.wav(name, read_audio(EXAMPLES / f"{name}.wav"))
    # speech the shipped model abstains on in the window, and a voicemail beep at 3 s, past it
    files["late_beep"] = pbx.wav("late_beep", with_beep(read_audio(EXAMPLES / "music.wav"), at_ms=3000.0))
    return files


def test_the_shipped_dialplan_and_queue_load_without_a_warning(pbx):
    before = len(pbx.asterisk.log().splitlines())
    pbx.asterisk.cli("dialplan reload")
    pbx.asterisk.cli("module reload app_queue.so")
    new = pbx.asterisk.log().splitlines()[before:]
    assert [line for line in new if "WARNING" in line or "ERROR" in line] == []
    assert "pbxguard-screen" in pbx.asterisk.cli("dialplan show pbxguard-screen")
    assert "Local/agent@pbxguard-example-agents" in pbx.asterisk.cli("queue show support")


def test_a_live_caller_is_bridged_and_answered_by_the_shipped_queue(pbx, openings):
    number = pbx.call(openings["live"])
    outcome = pbx.outcome(number)
    assert (outcome["verdict"], outcome["action"]) == ("HUMAN", "BRIDGE")
    assert outcome["member"] == "Local/agent@pbxguard-example-agents/n"
    record = pbx.daemon.call_log().call(outcome["call_id"])
    assert (record.called, record.caller, record.status) == (number, "+12025550143", "screened")


@pytest.mark.parametrize("opening", ["dead_air", "greeting_beep"])  # a greeting that ends in its beep
def test_dead_air_and_machines_are_challenged_and_the_right_digit_passes(pbx, openings, opening):
    number = pbx.call(openings[opening], digit="right")
    outcome = pbx.outcome(number)
    assert (outcome["action"], outcome["challenge"]) == ("CHALLENGE", "PASS")
    assert outcome["member"] == "Local/agent@pbxguard-example-agents/n"  # passed: on to the agents
    assert pbx.daemon.call_log().call(outcome["call_id"]).challenge == "PASS"


@pytest.mark.parametrize("digit", ["wrong", ""])
def test_a_wrong_or_missing_digit_hangs_up_and_labels_the_call(pbx, openings, digit):
    number = pbx.call(openings["dead_air"], digit=digit)
    outcome = pbx.outcome(number)
    assert (outcome["verdict"], outcome["action"], outcome["challenge"]) == ("SILENCE", "CHALLENGE", "FAIL")
    assert outcome["member"] == "" and outcome["userfield"] == "REJECTED_CALLER_SILENCE"
    record = pbx.daemon.call_log().call(outcome["call_id"])
    assert (record.challenge, record.label) == ("FAIL", "silence")  # dead air that failed: a training label


@pytest.mark.parametrize("opening, verdict", [("fax", "FAX"), ("busy_na", "TONE")])
def test_proven_fax_and_busy_tone_are_hung_up(pbx, openings, opening, verdict):
    outcome = pbx.outcome(pbx.call(openings[opening]))
    assert (outcome["verdict"], outcome["action"]) == (verdict, "HANGUP")
    assert outcome["member"] == "" and outcome["userfield"] == f"REJECTED_CALLER_{verdict}"


def test_a_caller_who_hangs_up_mid_window_is_abandoned(pbx, calls_audio):
    short = pbx.wav("live_short", calls_audio["live"][:6000])  # 750 ms, then the caller is gone
    number = pbx.call(short, hangup=True)
    outcome = pbx.outcome(number)
    assert outcome["action"] == "" and outcome["member"] == ""
    record = pbx.daemon.record_for(number)
    assert record.status == "abandoned" and record.audio_ms < 1000


def test_the_eagi_branch_screens_the_same_way(pbx, openings):
    number = pbx.call(openings["live"], eagi=True)
    outcome = pbx.outcome(number)
    assert f'EAGI("Local/{number}@test-route' in pbx.asterisk.full_log()
    assert (outcome["verdict"], outcome["action"]) == ("HUMAN", "BRIDGE")
    assert outcome["member"] == "Local/agent@pbxguard-example-agents/n"


def test_the_caller_id_lists_apply_before_screening(pbx, openings):
    log = pbx.daemon.call_log()
    log.add_to_list("deny", "+12025550199")
    log.add_to_list("allow", "+12025550188")
    denied = pbx.outcome(pbx.call(openings["live"], caller="+12025550199"))
    allowed = pbx.outcome(pbx.call(openings["dead_air"], caller="+12025550188"))
    assert denied["userfield"] == "REJECTED_CALLER_DENY_LIST" and denied["member"] == ""
    assert allowed["verdict"] == "" and allowed["member"] == "Local/agent@pbxguard-example-agents/n"  # not screened


def test_with_the_daemon_down_calls_go_straight_through(pbx, openings):
    pbx.server("127.0.0.1:1")
    try:
        outcome = pbx.outcome(pbx.call(openings["dead_air"]))
    finally:
        pbx.server(f"127.0.0.1:{pbx.daemon.agi_port}")
    assert (outcome["agistatus"], outcome["verdict"]) == ("FAILURE", "")
    assert outcome["member"] == "Local/agent@pbxguard-example-agents/n"


@pytest.mark.parametrize("opening, status", [("live", "HUMAN"), ("greeting_beep", "MACHINE")])
def test_the_amd_drop_in_speaks_amds_words_on_the_same_audio(pbx, openings, opening, status):
    ours = pbx.outcome(pbx.call(openings[opening], route="test-dialer"))
    theirs = pbx.outcome(pbx.call(openings[opening], route="test-dialer", amd="app"))
    assert ours["amd"] == status
    cause = re.compile(r"(HUMAN|LONGGREETING|INITIALSILENCE|MAXWORDLENGTH|MAXWORDS)-\d+-\d+|TOOLONG-\d+")
    assert cause.fullmatch(ours["amd_cause"]) and cause.fullmatch(theirs["amd_cause"])
    assert theirs["amd"] in ("HUMAN", "MACHINE", "NOTSURE")  # AMD() itself ran on the same call


def test_the_amd_drop_in_with_a_long_window_answers_after_the_beep(pbx, openings):
    """ARG1 5000: a greeting whose beep comes at 3 s is a MACHINE, and the AGI returns once the beep is over,
    with its onset and end (a dialer speaks after it); a live answer is still answered at the 2 s window."""
    ours = pbx.outcome(pbx.call(openings["late_beep"], route="test-dialer", window="5000"))
    assert ours["amd"] == "MACHINE" and ours["amd_cause"].startswith("LONGGREETING-")
    onset, end = int(ours["beep"]), int(ours["beep_end"])
    assert abs(onset - 3000) <= 150 and abs(end - onset - 400) <= 40
    heard = pbx.daemon.call_log().call(ours["call_id"]).audio_ms
    assert end < heard <= end + 60 + 100 + 20  # the beep's end confirmed at the next check: long before 5 s
    live = pbx.outcome(pbx.call(openings["live"], route="test-dialer", window="5000"))
    assert (live["amd"], live["beep"], live["beep_end"]) == ("HUMAN", "", "")
    assert pbx.daemon.call_log().call(live["call_id"]).audio_ms <= 2000


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def application(pbx: PBX, number: str) -> str:
    """The application the route side of call `number` is running now ('' once it is gone)."""
    for line in pbx.asterisk.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if fields[0].startswith(f"Local/{number}@test-route") and fields[0].endswith(";2"):
            return fields[5]
    return ""


def wait_for(predicate, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return time.monotonic()


def test_two_workers_share_the_real_asterisks_calls(pbx, openings, tmp_path):
    daemon = RunningDaemon(tmp_path, workers=2)  # each advertises its own AudioSocket port in EXEC AudioSocket
    pbx.server(f"127.0.0.1:{daemon.agi_port}")
    try:
        expected = {pbx.call(openings[name]): verdict for name, verdict in [("live", "HUMAN"), ("fax", "FAX")] * 5}
        outcomes = {number: pbx.outcome(number) for number in expected}
        time.sleep(0.3)  # the last call lines
        log = (daemon.dir / "daemon.log").read_text()
    finally:
        pbx.server(f"127.0.0.1:{pbx.daemon.agi_port}")
        daemon.stop()
    assert {number: o["verdict"] for number, o in outcomes.items()} == expected
    workers = {re.search(rf"calls\[(\d)\]: call_id={o['call_id']} ", log).group(1) for o in outcomes.values()}
    assert workers == {"0", "1"}


@pytest.mark.parametrize("failure", ["frozen", "killed"])
def test_a_frozen_or_killed_daemon_lets_its_calls_through_within_a_second(pbx, openings, tmp_path, failure):
    daemon = RunningDaemon(tmp_path)  # `pbxguard serve` as systemd runs it: supervisor and workers
    pbx.server(f"127.0.0.1:{daemon.agi_port}")
    workers = children(daemon.process.pid)
    try:
        number = pbx.call(openings["dead_air"])
        wait_for(lambda: application(pbx, number) == "AudioSocket", 10)
        time.sleep(0.5)  # mid-window
        if failure == "frozen":  # every worker (the call may be on any): accepts nothing, answers nothing,
            for worker in workers:  # and AGI has no timeout of its own
                os.kill(worker, signal.SIGSTOP)
        else:
            os.kill(daemon.process.pid, signal.SIGKILL)  # the service is killed; its daemon dies with it
        stalled = time.monotonic()
        released = wait_for(lambda: application(pbx, number) not in ("AGI", "AudioSocket"), 10)
        outcome = pbx.outcome(number)
    finally:
        pbx.server(f"127.0.0.1:{pbx.daemon.agi_port}")
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGCONT)
        daemon.stop()
    assert released - stalled <= 1.0
    assert outcome["verdict"] == "" and outcome["member"] == "Local/agent@pbxguard-example-agents/n"  # bridged


@pytest.mark.parametrize("offset_ms", [0.0, 250.0, 1750.0, 3250.0])
def test_a_fax_is_hung_up_whatever_the_phase_of_its_cng_at_answer(pbx, offset_ms):
    # offset into the CNG cycle at answer: inside the first burst (0, 250 ms), a burst that the window's
    # end cuts (1750: it starts 1.75 s in), a burst well inside the window (3250)
    rng = np.random.default_rng(int(offset_ms))
    cng = next(c for c in CADENCES if c.name == "fax_cng")
    fax, _ = signals.cadence_tone(cng, seconds(3.0), rng, -20.0, offset_ms=offset_ms)
    outcome = pbx.outcome(pbx.call(pbx.wav(f"fax_at_{int(offset_ms)}", through_line(fax, rng))))
    assert (outcome["verdict"], outcome["action"], outcome["reason"]) == ("FAX", "HANGUP", "FAX")


def test_a_server_that_answers_but_sets_nothing_lets_the_call_through(pbx, openings):
    # A broken pbxguard (or anything else on its port) that reads the AGI header and hangs up on Asterisk.
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    pbx.server(f"127.0.0.1:{listener.getsockname()[1]}")
    try:
        outcome = pbx.outcome(pbx.call(openings["dead_air"]))
    finally:
        pbx.server(f"127.0.0.1:{pbx.daemon.agi_port}")
        stop.set()
        thread.join(5)
        listener.close()
    assert outcome["action"] == "" and outcome["member"] == "Local/agent@pbxguard-example-agents/n"


def test_sipp_calls_with_rtp_all_get_their_verdict(asterisk_prefix):
    # The short version of `pbxguard bench --sipp N` (README): real SIP and RTP into the real Asterisk.
    from pbxguard import bench
    from pbxguard.screener.screener import Screener

    result = bench.run_sipp(Screener(), channels=9, seconds=6)
    assert result["calls"] >= 18
    assert (result["lost_verdicts"], result["wrong_verdicts"]) == (0, 0), result


def test_doctor_checks_asterisk_and_readmes_lines_install_the_dialplan(asterisk_prefix, tmp_path):
    asterisk = Asterisk(tmp_path / "asterisk", "[general]\n", {"queues.conf": "[general]\n"})
    cli = f"env LD_LIBRARY_PATH={asterisk.prefix / 'lib'} {asterisk.prefix / 'sbin/asterisk'} -C {asterisk.conf} -rx"

    def doctor() -> list[str]:
        done = subprocess.run([sys.executable, "-m", "pbxguard", "doctor", "--asterisk-cli", cli], capture_output=True,
                              text=True, timeout=120)
        return [line for line in done.stdout.splitlines() if " asterisk: " in line]

    try:
        assert doctor() == ["ok    asterisk: res_agi running", "ok    asterisk: app_audiosocket running",
                            "ok    asterisk: res_audiosocket running",
                            "FAIL  asterisk: no [pbxguard-screen] context in the dialplan; fix: #include extensions_pbxguard.conf "
                            "in extensions.conf, then asterisk -rx 'dialplan reload' (README, \"Asterisk\")"]
        for line in lines_to_run(ASTERISK):  # as an admin types them, into this Asterisk's etc instead of /etc/asterisk
            run_line(line, {"sudo ": "", "/etc/asterisk": str(asterisk.conf.parent)})
        asterisk.cli("dialplan reload")
        assert doctor()[-1] == "ok    asterisk: [pbxguard-screen] in the dialplan"
        asterisk.cli("module unload app_audiosocket.so")
        assert "FAIL  asterisk: app_audiosocket (the AudioSocket() application) is not loaded; fix: asterisk -rx 'module load " \
               "app_audiosocket.so', and load => app_audiosocket.so in modules.conf" in doctor()
        asterisk.stop()
        assert doctor()[-1].startswith(f"FAIL  asterisk: {cli} did not answer: ")
    finally:
        asterisk.stop()


def test_the_transcript_stage_on_a_real_call(asterisk_prefix, tmp_path, calls_audio):
    # Every human/machine verdict transcribed (unsure_below above 1), words kept: the evidence reaches the call log.
    daemon = Daemon(transcript={"enabled": True, "unsure_below": 1.01, "store_words": True, "budget_ms": 5000.0})
    pbx = PBX(tmp_path, daemon)
    try:
        outcome = pbx.outcome(pbx.call(pbx.wav("live", calls_audio["live"])))
    finally:
        pbx.stop()
        daemon.stop()
    record = daemon.call_log().call(outcome["call_id"])
    transcript = record.evidence["transcript"]
    assert transcript["engine"] == "pocketsphinx" and transcript["words"] == len(transcript["text"].split()) > 0
    assert outcome["verdict"] == record.verdict.upper()  # the channel variables carry the revised verdict
    from markupsafe import escape

    from tests.web.page import serving

    with serving(Path(daemon.rundir)) as client:  # and the admin's page shows it
        client.login()
        body = client.get(f"/calls/{record.call_id}")[2].decode()
    assert f"pocketsphinx: {transcript['words']} word(s)" in body and str(escape(transcript["text"])) in body
