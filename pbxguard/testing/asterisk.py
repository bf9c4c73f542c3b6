"""A fake Asterisk 22 that places calls at a FastAGI server as a real one does, for tests of what a real
Asterisk cannot be made to do on purpose (garbage on the wire, odd frame sizes) and for load benchmarks.

It replays what Asterisk 22.10.1 was seen to send (`testing.replay`): the FastAGI environment block, the
replies it gives (`200 result=1`, `510 Invalid or unknown command`, `511` on a dead channel, a `520-` usage
block), AudioSocket framing with the frame sizes Asterisk really sends, EOF when the caller hangs up,
`200 result=-1` and the unprompted `HANGUP` line ~42 ms later, and AGISTATUS as the dialplan would see it.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import numpy as np

from pbxguard.audio.format import BYTES_PER_MS
from pbxguard.protocols import agi
from pbxguard.protocols.audiosocket import KIND_SLIN, SLIN_RATES, frame, uuid_frame
from pbxguard.testing.replay import agi_environment, audiosocket_frame_sizes

HANGUP_LINE_DELAY_S = 0.042  # observed: the HANGUP line follows `200 result=-1` by ~42 ms


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
    `Set(AGISIGHUP=no)`); `reset_on_close` makes AudioSocket() fail (`200 result=-1`) when the server closes,
    as a real one does when it reads a reset ("Connection reset by peer"; seen at 100-400 concurrent calls).
    """

    def __init__(self, host: str, port: int, realtime: bool = True, sighup: bool = False,
                 reset_on_close: bool = False) -> None:
        self.host, self.port = host, port
        self.realtime = realtime
        self.sighup = sighup
        self.reset_on_close = reset_on_close
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
        if verb == "SET VARIABLE" and len(words) < 4:
            return agi.USAGE_BLOCK.format(usage="SET VARIABLE <variablename> <value>")
        variables = agi.parse_variables(command)
        if variables is not None:
            result.variables.update(variables)
            return "200 result=1" if verb == "SET VARIABLE" else "200 result=0"
        if verb == "GET VARIABLE":
            value = result.variables.get(words[2]) if len(words) > 2 else None
            return f"200 result=1 ({value})" if value is not None else "200 result=0"
        if words[0].upper() == "EXEC" and len(words) > 1 and words[1].lower() == "audiosocket":
            match = re.match(r'"?([0-9a-fA-F-]{36}),([^:"]+):(\d+)"?', " ".join(words[2:]))
            if not match:
                return "200 result=-1"
            return await self._audiosocket(match, result, audio, hangup_after_ms, skip_first_frame, kind, state)
        if words[0].upper() == "EXEC":
            return "200 result=0" if len(words) > 1 else agi.USAGE_BLOCK.format(usage="EXEC <application> <options>")
        if verb == "CHANNEL STATUS":
            return agi.REPLY_DEAD_CHANNEL if state["hung_up"] else "200 result=6"
        return agi.REPLY_INVALID

    async def _audiosocket(self, match, result: FakeCall, audio: np.ndarray, hangup_after_ms, skip_first_frame, kind,
                           state) -> str:
        call_id, host, port = match.group(1), match.group(2), int(match.group(3))
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            state["hung_up"] = True  # the app fails, returns -1 and the channel hangs up
            return "200 result=-1"
        writer.write(uuid_frame(call_id))
        scale = SLIN_RATES[kind] // SLIN_RATES[KIND_SLIN]  # frame sizes scale with the rate
        bytes_per_ms = BYTES_PER_MS * scale
        payload = np.asarray(audio, dtype="<i2").tobytes()
        closed = asyncio.ensure_future(reader.read(1))  # the server closing (or sending) ends the app
        pos, k, start = 0, 0, time.monotonic()
        try:
            while pos < len(payload) and not closed.done():
                size = self.frame_sizes[k % len(self.frame_sizes)] * scale
                chunk = payload[pos : pos + size]
                if not (skip_first_frame and k == 0):
                    writer.write(frame(kind, chunk))
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
            return "200 result=-1" if result.audio_closed_by_server and self.reset_on_close else "200 result=0"
        finally:
            closed.cancel()
            writer.close()


