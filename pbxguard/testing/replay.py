"""Real bytes from Asterisk 22.10.1 (captured in `testing/traces/`), read back for the fakes and the tests.

The FastAGI environment block, byte for byte; the EAGI environment; the audio and frame sizes of real
AudioSocket streams (320-byte frames with a 24-byte one among them). Each trace's origin is in
`traces/README.md`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pbxguard.protocols.audiosocket import KIND_SLIN, FrameParser

TRACES = Path(__file__).resolve().parent / "traces"
AUDIOSOCKET_TRACES = ("audiosocket_01_app_close.bin", "audiosocket_01_app_callerhangup.bin", "audiosocket_01_dial16_close.bin")


def frames(trace: str) -> list[tuple[int, bytes]]:
    """Every (kind, payload) frame of an AudioSocket capture, in order."""
    return list(FrameParser().feed((TRACES / trace).read_bytes()))


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
    return [len(payload) for kind, payload in frames(trace) if kind == KIND_SLIN]


def captured_audio(trace: str = "audiosocket_01_app_close.bin") -> np.ndarray:
    """The caller audio of a real AudioSocket capture as int16 samples."""
    return np.frombuffer(b"".join(p for kind, p in frames(trace) if kind == KIND_SLIN), dtype="<i2")




def fastagi_session(trace: str = "fastagi_02_holdopen.bin") -> tuple[bytes, list[bytes]]:
    """A recorded FastAGI session, Asterisk's side: the environment block and, per command it answered,
    the bytes it sent back (an unprompted `HANGUP` line goes with the reply it followed)."""
    data = (TRACES / trace).read_bytes()
    end = data.index(b"\n\n") + 2
    replies: list[bytes] = []
    for line in data[end:].splitlines(keepends=True):
        if line.startswith(b"HANGUP") and replies:
            replies[-1] += line
        else:
            replies.append(line)
    return data[:end], replies


async def replay_asterisk(host: str, port: int, trace: str = "fastagi_02_holdopen.bin") -> list[str]:
    """Be the Asterisk of a recorded FastAGI session: its header, then its replies in order, one per
    command received. Returns the commands."""
    import asyncio

    header, replies = fastagi_session(trace)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(header)
    commands = []
    for reply in replies:
        line = await reader.readline()
        if not line:
            break
        commands.append(line.decode().rstrip("\n"))
        writer.write(reply)
        await writer.drain()
    await reader.read()
    writer.close()
    return commands
