"""A fake Asterisk 22 that replays what a real one sends, for tests and load benchmarks.

Built from captures of Asterisk 22.10.1 (in pbxguard/traces/): the FastAGI environment block byte for byte,
the replies it gives (`200 result=1`, `510 Invalid or unknown command`, `511` on a dead channel, a `520-`
usage block), AudioSocket framing with the frame sizes Asterisk really sends (320-byte frames with a 24-byte
one among them), EOF when the caller hangs up, `200 result=-1` and the unprompted `HANGUP` line ~42 ms
later, and AGISTATUS as the dialplan would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TRACES = Path(__file__).resolve().parent / "traces"
FRAME_MS = 20.0
HANGUP_LINE_DELAY_S = 0.042  # observed: the HANGUP line follows `200 result=-1` by ~42 ms
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_BLOCK = ("520-Invalid command syntax.  Proper usage follows:\n"
               " Usage: {usage}\n"
               "520 End of proper usage.")


def _header_block(trace: str = "fastagi_01_classify.bin") -> list[tuple[str, str]]:
    data = (TRACES / trace).read_bytes()
    block = data[: data.index(b"\n\n")].decode()
    return [(k, v[1:] if v.startswith(" ") else v) for k, _, v in (line.partition(":") for line in block.split("\n"))]


def agi_environment(script: str, args: list[str], channel: str, uniqueid: str, callerid: str = "unknown",
                    host: str = "127.0.0.1", port: int = 4573) -> bytes:
    """The environment block Asterisk sends for `AGI(agi://host:port/script,args...)`, in its order."""
    values = {"agi_network_script": script, "agi_request": f"agi://{host}:{port}/{script}", "agi_channel": channel,
              "agi_uniqueid": uniqueid, "agi_callerid": callerid}
    lines = [f"{k}: {values.get(k, v)}" for k, v in _header_block() if not k.startswith("agi_arg_")]
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode()


def eagi_environment(args: list[str], channel: str, uniqueid: str) -> bytes:
    """The environment an EAGI script gets on stdin (captured: `agi_enhanced: 1.0`, no network keys)."""
    lines = []
    for line in (TRACES / "eagi_default_env.txt").read_text().splitlines():
        key, _, value = line.partition(":")
        if not key or key.startswith("agi_arg_"):
            continue
        value = {"agi_channel": " " + channel, "agi_uniqueid": " " + uniqueid}.get(key, value)
        lines.append(f"{key}:{value}")
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode()


def audiosocket_frame_sizes(trace: str = "audiosocket_01_app_close.bin") -> list[int]:
    """Payload sizes of the audio frames a real AudioSocket() sent, in order."""
    data, pos, sizes = (TRACES / trace).read_bytes(), 0, []
    while pos + 3 <= len(data):
        kind, length = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        if kind == 0x10:
            sizes.append(length)
        pos += 3 + length
    return sizes


def captured_audio(trace: str = "audiosocket_01_app_close.bin") -> np.ndarray:
    """The caller audio of a real AudioSocket capture as int16 samples."""
    data, pos, chunks = (TRACES / trace).read_bytes(), 0, []
    while pos + 3 <= len(data):
        kind, length = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        if kind == 0x10:
            chunks.append(data[pos + 3 : pos + 3 + length])
        pos += 3 + length
    return np.frombuffer(b"".join(chunks), dtype="<i2")


@dataclass
class FakeCall:
    agistatus: str = ""  # SUCCESS, FAILURE or HANGUP, as the dialplan sees it after AGI()
    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    audio_sent_ms: float = 0.0
    audio_closed_by_server: bool = False
    window_end: float | None = None  # monotonic time the last audio frame was sent
    done: float | None = None  # monotonic time the AGI session ended

    @property
    def latency_ms(self) -> float | None:
        """From the end of the audio we sent to the end of the AGI session (variables set)."""
        if self.window_end is None or self.done is None:
            return None
        return (self.done - self.window_end) * 1000.0


class FakeAsterisk:
    """Place calls at a FastAGI server as Asterisk 22 would.

    `realtime` paces audio frames at 20 ms; `sighup` sends the HANGUP line (a dialplan without
    `Set(AGISIGHUP=no)`).
    """

    def __init__(self, host: str, port: int, realtime: bool = True, sighup: bool = False) -> None:
        self.host, self.port = host, port
        self.realtime = realtime
        self.sighup = sighup
        self.frame_sizes = audiosocket_frame_sizes()

    async def call(self, audio: np.ndarray, script: str = "screen", args: tuple[str, ...] = ("inbound",),
                   hangup_after_ms: float | None = None, skip_first_frame: bool = False, kind: int = 0x10,
                   callerid: str = "unknown") -> FakeCall:
        result = FakeCall()
        uniqueid = f"{time.time():.6f}"
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            result.agistatus = "FAILURE"  # observed ~1 ms after the attempt when nobody listens
            return result
        state = {"hung_up": False}
        writer.write(agi_environment(script, list(args), f"PJSIP/trunk-{uniqueid}", uniqueid, callerid, self.host, self.port))
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                command = line.decode().rstrip("\n")
                result.commands.append(command)
                reply = await self._reply(command, result, audio, hangup_after_ms, skip_first_frame, kind, state)
                writer.write((reply + "\n").encode())
                if state["hung_up"] and reply == "200 result=-1" and self.sighup:
                    await asyncio.sleep(HANGUP_LINE_DELAY_S)
                    writer.write(b"HANGUP\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
        result.done = time.monotonic()
        result.agistatus = "HANGUP" if state["hung_up"] else "SUCCESS"
        return result

    async def _reply(self, command: str, result: FakeCall, audio, hangup_after_ms, skip_first_frame, kind, state) -> str:
        words = command.split(" ")
        verb = " ".join(words[:2]).upper()
        if verb == "SET VARIABLE":
            if len(words) < 4:
                return USAGE_BLOCK.format(usage="SET VARIABLE <variablename> <value>")
            result.variables[words[2]] = _unquote(" ".join(words[3:]))
            return "200 result=1"
        if verb == "GET VARIABLE":
            value = result.variables.get(words[2]) if len(words) > 2 else None
            return f"200 result=1 ({value})" if value is not None else "200 result=0"
        if words[0].upper() == "EXEC" and len(words) > 1 and words[1].lower() == "audiosocket":
            match = re.match(r'"?([0-9a-fA-F-]{36}),([^:"]+):(\d+)"?', " ".join(words[2:]))
            if not match:
                return "200 result=-1"
            return await self._audiosocket(match, result, audio, hangup_after_ms, skip_first_frame, kind, state)
        if words[0].upper() == "EXEC":
            return "200 result=0" if len(words) > 1 else USAGE_BLOCK.format(usage="EXEC <application> <options>")
        if verb == "CHANNEL STATUS":
            return DEAD_CHANNEL if state["hung_up"] else "200 result=6"
        return "510 Invalid or unknown command"

    async def _audiosocket(self, match, result: FakeCall, audio: np.ndarray, hangup_after_ms, skip_first_frame, kind,
                           state) -> str:
        call_id, host, port = match.group(1), match.group(2), int(match.group(3))
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            state["hung_up"] = True  # the app fails, returns -1 and the channel hangs up
            return "200 result=-1"
        writer.write(bytes([0x01, 0, 16]) + uuidlib.UUID(call_id).bytes)
        bytes_per_ms = 16 * (2 if kind == 0x12 else 1)
        payload = np.asarray(audio, dtype="<i2").tobytes()
        closed = asyncio.ensure_future(reader.read(1))  # the server closing (or sending) ends the app
        pos, k, start = 0, 0, time.monotonic()
        try:
            while pos < len(payload) and not closed.done():
                size = self.frame_sizes[k % len(self.frame_sizes)] * (2 if kind == 0x12 else 1)
                chunk = payload[pos : pos + size]
                if not (skip_first_frame and k == 0):
                    writer.write(bytes([kind]) + len(chunk).to_bytes(2, "big") + chunk)
                pos += size
                k += 1
                result.audio_sent_ms = pos / bytes_per_ms
                if hangup_after_ms is not None and result.audio_sent_ms >= hangup_after_ms:
                    state["hung_up"] = True
                    break
                try:
                    await writer.drain()
                except ConnectionError:  # the server closed the socket: AudioSocket() returns 0
                    break
                if self.realtime:
                    await asyncio.sleep(max(0.0, start + result.audio_sent_ms / 1000.0 - time.monotonic()))
                else:
                    await asyncio.sleep(0)
            result.window_end = time.monotonic()
            if state["hung_up"]:
                return "200 result=-1"
            try:  # AudioSocket gives up after 2 s with no traffic either way
                await asyncio.wait_for(asyncio.shield(closed), 2.0)
                result.audio_closed_by_server = True
            except ConnectionError:  # closed with unread audio in its buffer: a reset, still a close
                result.audio_closed_by_server = True
            except TimeoutError:
                pass
            return "200 result=0"
        finally:
            closed.cancel()
            writer.close()


async def eagi_call(audio: np.ndarray, rundir: str, args: tuple[str, ...] = ("inbound",),
                    hangup_after_ms: float | None = None) -> FakeCall:
    """Run the real `pbxguard-eagi` as Asterisk's EAGI() would: environment and replies on stdin, commands
    read from stdout, the caller's audio written to fd 3 in real time (640 bytes first, then 320 every 20 ms,
    as observed)."""
    import os
    import sys

    result, state = FakeCall(), {"hung_up": False}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbxguard.protocols.eagi", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        pass_fds=(read_end, 3), env={**os.environ, "PBXGUARD_RUNDIR": rundir}, preexec_fn=lambda: os.dup2(read_end, 3))
    os.close(read_end)
    uniqueid = f"{time.time():.6f}"
    process.stdin.write(eagi_environment(list(args), f"PJSIP/trunk-{uniqueid}", uniqueid))
    payload = np.asarray(audio, dtype="<i2").tobytes()

    async def audio_feed() -> None:
        pos, start, first = 0, time.monotonic(), True
        while pos < len(payload) and process.returncode is None:
            if hangup_after_ms is not None and pos / 16 >= hangup_after_ms:
                state["hung_up"] = True
                process.stdin.close()  # the channel is gone: stdin closes
                break
            size = 640 if first else 320
            if process.returncode is not None:
                break  # the script has exited: nobody reads fd 3 any more
            # fd 3 is non-blocking: audio the script does not read in time is dropped, as Asterisk drops it.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(write_end, payload[pos : pos + size])
            pos += size
            first = False
            result.audio_sent_ms = pos / 16
            await asyncio.sleep(max(0.0, start + pos / 16000 - time.monotonic()))
        result.window_end = time.monotonic()

    feeder = asyncio.ensure_future(audio_feed())
    fake = FakeAsterisk("", 0)
    try:
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            command = line.decode().rstrip("\n")
            result.commands.append(command)
            reply = await fake._reply(command, result, audio, None, False, 0x10, state)
            if not state["hung_up"]:
                process.stdin.write((reply + "\n").encode())
    finally:
        await feeder
        os.close(write_end)
        code = await process.wait()
    result.done = time.monotonic()
    result.agistatus = "HANGUP" if state["hung_up"] else ("SUCCESS" if code == 0 else "FAILURE")
    return result


async def freeswitch_call(host: str, port: int, audio: np.ndarray, caller: str = "+12025550143",
                          variables: dict[str, str] | None = None, hangup_after_ms: float | None = None,
                          never_record: bool = False, window_ms: float = 2000.0) -> FakeCall:
    """Be FreeSWITCH running `socket host:port async full` for one call (wire format as in the facts file):
    the channel data in reply to `connect` (URL-encoded, `_undef_`, no Content-Length), command/reply and
    api/response replies, `uuid_record` writing the caller's audio to the file in real time, CHANNEL_HANGUP
    as text/event-plain and a disconnect notice with a body when the caller hangs up."""
    from urllib.parse import quote

    result, state = FakeCall(), {"hung_up": False, "recording": None}
    channel_uuid = str(uuidlib.uuid4())
    reader, writer = await asyncio.open_connection(host, port)

    def send(headers: dict[str, str], body: str = "") -> None:
        if body:
            headers = {**headers, "Content-Length": str(len(body.encode()))}
        writer.write(("".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n" + body).encode())

    def reply(text: str) -> None:
        send({"Content-Type": "command/reply", "Reply-Text": text})

    async def record(path: str) -> None:
        payload = np.asarray(audio, dtype="<i2").tobytes()
        start, pos = time.monotonic(), 0
        with open(path, "wb") as f:
            while pos < len(payload) and state["recording"] is not None:
                if hangup_after_ms is not None and pos / 16 >= hangup_after_ms:
                    state["hung_up"] = True
                    event = f"Event-Name: CHANNEL_HANGUP\nUnique-ID: {channel_uuid}\nHangup-Cause: NORMAL_CLEARING\n\n"
                    send({"Content-Type": "text/event-plain"}, event)
                    send({"Content-Type": "text/disconnect-notice", "Controller-Type": "outbound",
                          "Content-Disposition": "linger"}, "Disconnected, goodbye.\nSee you at ChannelHangupComplete Event.\n")
                    break
                f.write(payload[pos : pos + 320])
                f.flush()
                pos += 320
                result.audio_sent_ms = pos / 16
                if result.window_end is None and result.audio_sent_ms >= window_ms:
                    result.window_end = time.monotonic()
                await asyncio.sleep(max(0.0, start + pos / 16000 - time.monotonic()))
        if result.window_end is None:  # stopped early: the daemon decided before the window ended
            result.window_end = time.monotonic()

    data = {"Event-Name": "CHANNEL_DATA", "Content-Type": "command/reply", "Reply-Text": "+OK", "Socket-Mode": "async",
            "Control": "full", "Channel-Name": "sofia/internal/1000@192.0.2.10", "Unique-ID": channel_uuid,
            "Caller-Caller-ID-Number": caller, "Caller-Destination-Number": "5551000", "variable_uuid": channel_uuid,
            "variable_call_uuid": channel_uuid, "variable_sip_user_agent": "_undef_",
            **{f"variable_{k}": v for k, v in (variables or {}).items()}}
    try:
        while True:
            try:
                block = await reader.readuntil(b"\n\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            command = block.decode().strip()
            result.commands.append(command)
            first = command.split("\n")[0]
            if first == "connect":
                writer.write(("".join(f"{k}: {quote(v, safe='/@_')}\n" for k, v in data.items()) + "\n").encode())
            elif first == "myevents":
                reply("+OK Events Enabled")
            elif first.startswith("linger"):
                reply("+OK will linger")
            elif first == "resume":
                reply("+OK")
            elif first == "exit":
                reply("+OK bye")
                break
            elif first.startswith("api "):
                words = first[4:].split(" ")
                body = "-ERR no such channel\n" if state["hung_up"] else "+OK\n"
                if words[0] == "uuid_setvar" and len(words) >= 4 and not state["hung_up"]:
                    result.variables[words[2]] = " ".join(words[3:])
                    if words[2] == "pbxguard_action":
                        result.done = time.monotonic()  # set last: the verdict is complete
                elif words[0] == "uuid_record" and len(words) >= 4 and words[2] == "start" and not never_record:
                    state["recording"] = asyncio.ensure_future(record(words[3]))
                    body = "+OK Success\n"
                elif words[0] == "uuid_record" and len(words) >= 4 and words[2] == "stop":
                    task, state["recording"] = state["recording"], None
                    if task is not None:
                        await task
                    body = "+OK Success\n"
                send({"Content-Type": "api/response"}, body)
            else:
                reply("-ERR command not found")
            await writer.drain()
    finally:
        task, state["recording"] = state["recording"], None
        if task is not None:
            await task
        writer.close()
    result.done = result.done or time.monotonic()
    result.agistatus = "HANGUP" if state["hung_up"] else "SUCCESS"
    return result


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
