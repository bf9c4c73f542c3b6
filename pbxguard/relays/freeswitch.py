"""The FreeSWITCH side, run in its own process: an ESL outbound server that hands each call to the daemon.

FreeSWITCH's dialplan sends the call here (`socket 127.0.0.1:8084 async full`). Per call: `connect`,
`myevents`, `linger`; then the caller's input is recorded with `uuid_record` (RECORD_READ_ONLY=true,
record_sample_rate set to the daemon's rate) into a raw file that grows as the call goes on. This process tails that file and
streams it to the daemon as AudioSocket frames over the daemon's local relay socket, and relays an AGI
session over the other one, exactly as `pbxguard-eagi` does for Asterisk: the daemon classifies with the
same engine and policy and answers with `SET VARIABLE`, which becomes `uuid_setvar` (pbxguard_* in lower
case, and amd_result/amd_cause as mod_amd names them). Then the recording is stopped and removed, and
`resume` lets the dialplan go on when the socket closes.

Why a growing file and not `record`: `record` blocks the session until its time limit, so nothing can be
decided before the window ends; the file is read as it grows, a CHECK_MS block at a time, and the call
ended early on a proof.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid as uuidlib
from pathlib import Path

from pbxguard.audio.format import BYTES_PER_MS, CHECK_MS, FRAME_MS, SAMPLE_RATE, SAMPLE_WIDTH
from pbxguard.protocols import agi as agi_wire
from pbxguard.protocols.audiosocket import KIND_SLIN, frame, uuid_frame
from pbxguard.relays.contract import CALL_ID_HEADER, DEFAULT_RUNDIR, DTMF_KEYS, connect
from pbxguard.supervisor import HEARTBEAT_S, die_with_parent

log = logging.getLogger("pbxguard.freeswitch")

POLL_S = FRAME_MS / 1000
READ_BYTES = 3200  # at most 200 ms of audio per frame sent on
BLOCK_BYTES = CHECK_MS * BYTES_PER_MS
WRITE_SLACK_S = 0.005  # FreeSWITCH writes a frame a little after its 20 ms: wake just after, not just before
NO_RECORDING_S = 1.0  # a recording that has not appeared by then never will
RECORD_MARGIN_S = 3  # past the window: listening on for a fax burst, and slack


def record_limit_s(data: dict) -> int:
    """How long FreeSWITCH may record: the call's window and a margin (the daemon stops it sooner)."""
    window = data.get("variable_pbxguard_window_ms") or "2000"
    return (int(window) if window.isdecimal() else 2000) // 1000 + RECORD_MARGIN_S


def fs_variable(name: str, value: str) -> tuple[str, str]:
    """An AGI variable as FreeSWITCH knows it: pbxguard_* lower-case, AMD in mod_amd's words."""
    if name == "AMDSTATUS":
        return "amd_result", value
    if name == "AMDCAUSE":
        return "amd_cause", value.split("-", 1)[0]
    return name.lower(), value


def verstat(data: dict) -> str:
    """STIR/SHAKEN as FreeSWITCH exposes it: `sip_verstat` when the dialplan ran `sofia_stir_shaken_vs`
    (FreeSWITCH's own verification), else the verstat a carrier put on P-Asserted-Identity or From (sofia
    puts those in the user part: `+12025550143;verstat=TN-Validation-Passed`)."""
    for name in ("variable_sip_verstat_detailed", "variable_sip_verstat", "variable_sip_P-Asserted-Identity",
                 "variable_sip_from_user"):
        found = re.search(r"(?:^|verstat=)((?:TN-Validation-(?:Passed|Failed)|No-TN-Validation)(?:-[ABC])?)",
                          data.get(name, ""))
        if found:
            return found.group(1)
    return ""


class ScreeningCall:
    """greenswitch application: one call, from `connect` to `resume`."""

    rundir = DEFAULT_RUNDIR
    recordings = os.path.join(DEFAULT_RUNDIR, "recordings")

    def __init__(self, session) -> None:
        self.session = session

    def alive(self) -> bool:
        """Still connected and not hung up (with `linger`, a hangup leaves the socket connected)."""
        return self.session.connected and self.session._outbound_connected

    def run(self) -> None:
        from gevent import joinall, spawn

        s = self.session
        data = s.session_data or {}
        channel_uuid = data.get("Unique-ID") or data.get("variable_uuid") or ""
        call_id = str(uuidlib.uuid4())
        path = Path(self.recordings) / f"{call_id}.raw"
        try:
            s.myevents()
            s.linger()
            report = data.get("variable_pbxguard_report", "")
            if report:  # the dialplan reporting a challenge outcome, not a call to screen
                self._report(data, report)
                return
            listed = self._check(data)  # the caller-ID lists, before the call is answered
            if listed in ("DENY", "ALLOW"):
                s.api(f"uuid_setvar {channel_uuid} pbxguard_action {listed}")
                s.send("resume")
                return
            # FreeSWITCH buffers recordings in 64 KiB (4.1 s of audio) unless told not to: nothing could be
            # decided before 4.1 s. Set before the answer, so that recording starts with the first frame.
            s.api(f"uuid_setvar {channel_uuid} enable_file_write_buffering false")
            s.api(f"uuid_setvar {channel_uuid} RECORD_READ_ONLY true")
            s.api(f"uuid_setvar {channel_uuid} record_sample_rate {SAMPLE_RATE}")
            s.api(f"uuid_answer {channel_uuid}")
            s.api(f"uuid_record {channel_uuid} start {path} {record_limit_s(data)}")
            agi, audio = connect(self.rundir, call_id)
            assert audio is not None
            agi.sendall(self._environment(data, call_id))
            audio.sendall(uuid_frame(call_id))
            joinall([spawn(self._pump, path, audio), spawn(self._commands, agi, channel_uuid)])
            if self.alive():
                s.api(f"uuid_record {channel_uuid} stop {path}")
                s.send("resume")
        except OSError as exc:  # the daemon is not there: the dialplan's missing variables bridge the call
            log.warning("freeswitch: call %s not screened: %s", channel_uuid, exc)
        except Exception as exc:  # a hangup (the session has gone away) or a timeout: nothing to set
            log.info("freeswitch: call %s ended before it was screened: %s", channel_uuid, exc.__class__.__name__)
        finally:
            path.unlink(missing_ok=True)
            s.stop()

    @staticmethod
    def _call_headers(data: dict) -> dict[str, str]:
        return {"agi_channel": data.get("Channel-Name", ""), "agi_uniqueid": data.get("Unique-ID", ""),
                "agi_callerid": data.get("Caller-Caller-ID-Number", ""),
                "agi_extension": data.get("Caller-Destination-Number", "")}

    def _check(self, data: dict) -> str:
        """The daemon's `check` route: PBXGUARD_LIST (DENY, ALLOW or NONE) for this caller."""
        agi, _ = connect(self.rundir, data.get("Unique-ID", ""), audio=False)
        agi.sendall(agi_wire.encode_environment({agi_wire.SCRIPT: "check", **self._call_headers(data)}))
        listed = ""
        with agi, agi.makefile("rb") as reader:
            for raw in reader:
                listed = dict(agi_wire.parse_variables(raw.decode().rstrip("\n")) or ()).get("PBXGUARD_LIST", listed)
                agi.sendall((agi_wire.REPLY_OK + "\n").encode())
        return listed

    def _environment(self, data: dict, call_id: str) -> bytes:
        mode = data.get("variable_pbxguard_mode") or "inbound"
        window = data.get("variable_pbxguard_window_ms") or "2000"
        args = (mode, window, "", "", verstat(data))  # the screen route's arguments, as Asterisk's dialplan passes them
        return agi_wire.encode_environment({agi_wire.SCRIPT: "screen", **self._call_headers(data), CALL_ID_HEADER: call_id,
                                            **{f"agi_arg_{i}": a for i, a in enumerate(args, 1)}})

    def _pump(self, path: Path, audio: socket.socket) -> None:
        """Tail the growing recording into AudioSocket frames until the daemon closes or the call ends."""
        import select

        deadline = time.monotonic() + NO_RECORDING_S
        while not path.exists():
            if time.monotonic() > deadline or not self.alive():
                log.warning("freeswitch: recording %s never appeared", path.name)
                audio.close()  # the daemon gets no audio and answers with fail-open variables
                return
            time.sleep(POLL_S)
        # poll(), not select(): past ~150 calls this process holds descriptors above 1024, which select()
        # refuses ("filedescriptor out of range"), and every call's audio stopped there.
        daemon = select.poll()
        daemon.register(audio, select.POLLIN)
        with open(path, "rb") as f:
            pending, read = b"", 0
            while self.alive():
                try:
                    while chunk := f.read(READ_BYTES):  # all there is: FreeSWITCH may write a backlog at once
                        read += len(chunk)
                        chunk, pending = pending + chunk, b""
                        whole = len(chunk) - len(chunk) % SAMPLE_WIDTH
                        chunk, pending = chunk[:whole], chunk[whole:]
                        audio.sendall(frame(KIND_SLIN, chunk))
                except OSError:
                    break
                # Wait for the next block, or for the daemon to close the socket: it has its verdict, and the
                # dialplan goes on at once, not at the next block.
                if daemon.poll(_until_block(read) * 1000) and not _recv_or_closed(audio):
                    break
        audio.close()

    def _commands(self, agi: socket.socket, channel_uuid: str) -> None:
        """The daemon's AGI commands become channel variables. Each SET VARIABLE or MSet is answered at once and
        the variables go to FreeSWITCH together, in one `uuid_setvar_multi`, when PBXGUARD_ACTION (the daemon sets
        it last) arrives: one round trip, and a dialplan never sees half a verdict."""
        reader = agi.makefile("rb")
        pending: list[tuple[str, str]] = []
        try:
            for raw in reader:
                variables = agi_wire.parse_variables(raw.decode().rstrip("\n"))
                if variables is None:
                    agi.sendall((agi_wire.REPLY_INVALID + "\n").encode())
                    continue
                pending.extend(fs_variable(*variable) for variable in variables)
                agi.sendall((agi_wire.REPLY_OK + "\n").encode())
                if any(name == "PBXGUARD_ACTION" for name, _ in variables):
                    self._set_variables(channel_uuid, pending)
                    pending = []
            if pending:
                self._set_variables(channel_uuid, pending)
        except Exception:  # the caller hung up while we were setting variables: the daemon sees EOF
            pass
        finally:
            agi.close()

    def _set_variables(self, channel_uuid: str, variables: list[tuple[str, str]]) -> None:
        if any(";" in value or "=" in value for _, value in variables):  # not expressible in one multi
            for name, value in variables:
                self.session.api(f"uuid_setvar {channel_uuid} {name} {value}")
            return
        reply = self.session.api(f"uuid_setvar_multi {channel_uuid} " + ";".join(f"{n}={v}" for n, v in variables))
        if not reply.startswith("+OK"):
            log.info("freeswitch: variables for %s not set (%s): the call has gone", channel_uuid, reply.strip())

    def _report(self, data: dict, outcome: str) -> None:
        # The call id is pbxguard's own uuid, nothing else; greenswitch folds a following empty variable into a
        # value, so only the first line counts. The digits are digits.
        call_id = data.get("variable_pbxguard_call_id", "").split("\n", 1)[0].strip()
        pressed = "".join(ch for ch in data.get("variable_pbxguard_pressed", "").split("\n", 1)[0] if ch in DTMF_KEYS)
        args = [call_id, outcome.split("\n", 1)[0].strip(), pressed]
        agi, _ = connect(self.rundir, call_id, audio=False)
        agi.sendall(agi_wire.encode_environment({agi_wire.SCRIPT: "challenge",
                                                 **{f"agi_arg_{i}": a for i, a in enumerate(args, 1)}}))
        agi.recv(64)  # closed by the daemon once recorded
        agi.close()
        self.session.send("resume")


def _until_block(read: int) -> float:
    """Seconds until the recording, `read` bytes long now, holds the next whole CHECK_MS block. The daemon
    looks at the window's audio only block by block, so waking once a block (not once a 20 ms frame) costs a
    fifth of the wake-ups and frames and delays no check in the window; past it, while a fax tone sounds, the
    engine checks every frame and this waits up to a block more. A block found short is looked at again a
    frame later."""
    missing = BLOCK_BYTES - read % BLOCK_BYTES
    return max(missing / BYTES_PER_MS / 1000, POLL_S) + WRITE_SLACK_S


def _recv_or_closed(sock: socket.socket) -> bytes:
    """What the daemon sent; b"" once it closed (a close with our audio still unread arrives as a reset)."""
    try:
        return sock.recv(64)
    except OSError:
        return b""


def serve(host: str, port: int, rundir: str, recordings: str, command_timeout: float, status) -> None:
    """The child process: patch this process for gevent, then serve until terminated.

    `status` is a pipe: "ok <port>" once bound (or the error that stopped it), then a heartbeat byte every
    HEARTBEAT_S from the gevent loop, so that the daemon sees a stuck ESL process and replaces it. This
    process dies with the daemon.
    """
    die_with_parent()
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from pbxguard.protocols.esl_outbound import OutboundServer

    def beat() -> None:
        while True:
            status.send_bytes(b".")
            gevent.sleep(HEARTBEAT_S)

    os.makedirs(recordings, exist_ok=True)
    ScreeningCall.rundir, ScreeningCall.recordings = rundir, recordings
    server = OutboundServer(host, port, ScreeningCall, command_timeout)
    listener = gevent.spawn(server.listen)
    ready = gevent.spawn(server.bound.wait)
    gevent.joinall([listener, ready], count=1)
    if listener.dead and listener.exception is not None:
        status.send(str(listener.exception))
        return
    status.send(f"ok {server.bound_port}")
    gevent.spawn(beat)
    listener.join()
