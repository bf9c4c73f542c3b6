"""FreeSWITCH played for the ESL outbound server: `socket host:port async full` for one call, in the wire
format recorded in the facts file."""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from typing import Any

import numpy as np

from pbxguard.audio.format import BYTES_PER_MS, FRAME_BYTES
from pbxguard.testing.asterisk import FakeCall


async def freeswitch_call(host: str, port: int, audio: np.ndarray, caller: str = "+12025550143",
                          variables: dict[str, str] | None = None, hangup_after_ms: float | None = None,
                          never_record: bool = False, window_ms: float = 2000.0) -> FakeCall:
    """Be FreeSWITCH running `socket host:port async full` for one call (wire format as in the facts file):
    the channel data in reply to `connect` (URL-encoded, `_undef_`, no Content-Length), command/reply and
    api/response replies, `uuid_record` writing the caller's audio to the file in real time, CHANNEL_HANGUP
    as text/event-plain and a disconnect notice with a body when the caller hangs up."""
    from urllib.parse import quote

    result = FakeCall()
    state: dict[str, Any] = {"hung_up": False, "recording": None}
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
                if hangup_after_ms is not None and pos / BYTES_PER_MS >= hangup_after_ms:
                    state["hung_up"] = True
                    event = f"Event-Name: CHANNEL_HANGUP\nUnique-ID: {channel_uuid}\nHangup-Cause: NORMAL_CLEARING\n\n"
                    send({"Content-Type": "text/event-plain"}, event)
                    send({"Content-Type": "text/disconnect-notice", "Controller-Type": "outbound",
                          "Content-Disposition": "linger"}, "Disconnected, goodbye.\nSee you at ChannelHangupComplete Event.\n")
                    break
                f.write(payload[pos : pos + FRAME_BYTES])
                f.flush()
                pos += FRAME_BYTES
                result.audio_sent_ms = pos / BYTES_PER_MS
                if result.window_end is None and result.audio_sent_ms >= window_ms:
                    result.window_end = time.monotonic()
                await asyncio.sleep(max(0.0, start + pos / BYTES_PER_MS / 1000 - time.monotonic()))
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
                if words[0] in ("uuid_setvar", "uuid_setvar_multi") and len(words) >= 3 and not state["hung_up"]:
                    if words[0] == "uuid_setvar":
                        pairs = [(words[2], " ".join(words[3:]))]
                    else:
                        pairs = [(k, v) for k, _, v in (p.partition("=") for p in " ".join(words[2:]).split(";") if "=" in p)]
                    result.variables.update(pairs)
                    if "pbxguard_action" in dict(pairs):
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


