"""The shipped dialplan, checked statically and run against the real daemon for every branch."""

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from pbxguard.store.record import ChallengeOutcome
from pbxguard.testing.asterisk import FakeAsterisk
from pbxguard.testing.dialplan import KNOWN_APPS, Channel, Interpreter, parse, split_args
from pbxguard.testing.eagi import eagi_call

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "asterisk" / "extensions_pbxguard.conf"


@pytest.fixture(scope="module")
def contexts():
    return parse(DIALPLAN)


def test_every_jump_lands_and_every_application_is_known(contexts):
    for name, extens in contexts.items():
        for steps in extens.values():
            labels = [s.label for s in steps if s.label]
            assert len(labels) == len(set(labels)), f"duplicate label in [{name}]"
            for step in steps:
                assert step.app in KNOWN_APPS, step.app
                assert step.args.count("(") == step.args.count(")") and step.args.count("[") == step.args.count("]")
                if step.app == "GotoIf":
                    targets = step.args.rsplit("?", 1)[1]
                    assert all(t in labels for t in targets.split(":") if t), (name, step.args)
                if step.app == "Goto":
                    assert step.args in labels, (name, step.args)
                if step.app == "Gosub":
                    target = split_args(step.args)[0]
                    assert target in contexts, (name, step.args)
    assert {"pbxguard-screen", "pbxguard-challenge", "pbxguard-amd"} <= set(contexts)


def agi_to(daemon, audio):
    """AGI() in the dialplan: talk to the daemon (whatever port the test bound) like Asterisk would."""

    def agi(url, args, channel):
        if url == "pbxguard-eagi":
            rundir = daemon.rundir if daemon else "/nonexistent"
            call = asyncio.run(eagi_call(audio, rundir, tuple(args)))
            return call.agistatus, call.variables
        m = re.match(r"agi://([^:/]+):(\d+)/(\w+)", url)
        port = daemon.agi_port if daemon else 1  # port 1: nobody listens, as with the daemon down
        call = asyncio.run(FakeAsterisk(m.group(1), port).call(audio, script=m.group(3), args=tuple(args)))
        return call.agistatus, call.variables

    return agi


def inbound(contexts, daemon, audio, dtmf=()):
    channel = Channel(dtmf=list(dtmf))
    return Interpreter(contexts, agi_to(daemon, audio)).run(channel, "pbxguard-example-inbound", "5551000")


def test_live_caller_is_bridged_to_the_queue(contexts, daemon, calls_audio):
    channel = inbound(contexts, daemon, calls_audio["live"])
    assert channel.queued == "support" and channel.variables["PBXGUARD_ACTION"] == "BRIDGE"
    assert not any(entry.startswith("Read") for entry in channel.log)


def test_dead_air_passing_the_challenge_reaches_the_queue(contexts, daemon, calls_audio):
    digits = [str(d) for d in range(10)]  # whatever the digit, the caller presses it: a person
    channel = Channel()
    channel.dtmf = _RightDigit(channel)
    Interpreter(contexts, agi_to(daemon, calls_audio["dead_air"])).run(channel, "pbxguard-example-inbound", "5551000")
    assert channel.variables["PBXGUARD_ACTION"] == "CHALLENGE"
    assert channel.variables["PBXGUARD_CHALLENGE_DIGIT"] in digits
    assert f"SayDigits({channel.variables['PBXGUARD_CHALLENGE_DIGIT']})" in channel.log
    assert channel.queued == "support"
    assert daemon.challenges[-1].call_id == channel.variables["PBXGUARD_CALL_ID"]
    assert daemon.challenges[-1].outcome == "PASS"
    assert daemon.call_log().call(channel.variables["PBXGUARD_CALL_ID"]).label == "human"


def test_dead_air_failing_the_challenge_twice_is_hung_up(contexts, daemon, calls_audio):
    channel = inbound(contexts, daemon, calls_audio["dead_air"], dtmf=["", ""])
    assert channel.queued is None and channel.hangup_cause == "21"
    assert channel.variables["CDR(userfield)"] == "REJECTED_CALLER_SILENCE"
    assert channel.log.count("Playback(please-try-again)") == 1
    assert daemon.challenges[-1] == ChallengeOutcome(channel.variables["PBXGUARD_CALL_ID"], "FAIL", "")
    logged = daemon.call_log().call(channel.variables["PBXGUARD_CALL_ID"])
    assert (logged.challenge, logged.label, logged.verdict) == ("FAIL", "silence", "silence")


def test_proven_fax_is_hung_up(contexts, daemon, calls_audio):
    channel = inbound(contexts, daemon, calls_audio["fax"])
    assert channel.hangup_cause == "21" and channel.variables["CDR(userfield)"] == "REJECTED_CALLER_FAX"


def test_daemon_down_falls_open(contexts, calls_audio):
    channel = inbound(contexts, None, calls_audio["dead_air"])
    assert channel.variables["AGISTATUS"] == "FAILURE" and channel.queued == "support"


def test_missing_variables_fall_open(contexts, calls_audio):
    def agi(url, args, channel):
        return "SUCCESS", {}  # the daemon closed without setting anything

    channel = Interpreter(contexts, agi).run(Channel(), "pbxguard-example-inbound", "5551000")
    assert channel.queued == "support"


def test_amd_drop_in(contexts, daemon, calls_audio):
    for audio, status in ((calls_audio["live"], "HUMAN"), (calls_audio["dead_air"], "MACHINE")):
        channel = Interpreter(contexts, agi_to(daemon, audio)).run(Channel(), "pbxguard-amd", "s")
        assert channel.variables["AMDSTATUS"] == status and channel.variables["AMDCAUSE"]
        assert "PBXGUARD_BEEP_MS" in channel.variables
    down = Interpreter(contexts, agi_to(None, np.zeros(8, dtype=np.int16))).run(Channel(), "pbxguard-amd", "s")
    assert (down.variables["AMDSTATUS"], down.variables["AMDCAUSE"]) == ("NOTSURE", "TOOLONG-0")


class _RightDigit(list):
    """DTMF input that presses whatever digit the channel was asked for."""

    def __init__(self, channel: Channel) -> None:
        super().__init__([""])
        self.channel = channel

    def pop(self, index: int = -1) -> str:
        return self.channel.variables.get("PBXGUARD_CHALLENGE_DIGIT", "")


def test_older_asterisk_goes_through_the_eagi_relay(contexts, daemon, calls_audio):
    for audio, action, queued in ((calls_audio["live"], "BRIDGE", "support"), (calls_audio["fax"], "HANGUP", None)):
        channel = Channel(variables={"PBXGUARD_EAGI": "yes"})
        Interpreter(contexts, agi_to(daemon, audio)).run(channel, "pbxguard-example-inbound", "5551000")
        assert channel.variables["PBXGUARD_ACTION"] == action and channel.queued == queued
    down = Interpreter(contexts, agi_to(None, calls_audio["dead_air"])).run(
        Channel(variables={"PBXGUARD_EAGI": "yes"}), "pbxguard-example-inbound", "5551000")
    assert down.queued == "support"  # relay cannot reach the daemon: fail open
