"""Asterisk's EAGI() played for the real `pbxguard-eagi` relay: environment and replies on its stdin,
commands read from its stdout, the caller's audio on fd 3."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

import numpy as np

from pbxguard.audio.format import BYTES_PER_MS, FRAME_BYTES
from pbxguard.relays.contract import RUNDIR_ENV
from pbxguard.testing.asterisk import FakeAsterisk, FakeCall
from pbxguard.testing.replay import eagi_environment


async def eagi_call(audio: np.ndarray, rundir: str, args: tuple[str, ...] = ("inbound",),
                    hangup_after_ms: float | None = None) -> FakeCall:
    """Run the real `pbxguard-eagi` as Asterisk's EAGI() would: environment and replies on stdin, commands
    read from stdout, the caller's audio written to fd 3 in real time (640 bytes first, then 320 every 20 ms,
    as observed)."""
    result, state = FakeCall(), {"hung_up": False}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbxguard.relays.eagi", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        pass_fds=(read_end, 3), env={**os.environ, RUNDIR_ENV: rundir}, preexec_fn=lambda: os.dup2(read_end, 3))
    os.close(read_end)
    uniqueid = f"{time.time():.6f}"
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None and stdout is not None  # both are pipes
    stdin.write(eagi_environment(list(args), f"PJSIP/trunk-{uniqueid}", uniqueid))
    payload = np.asarray(audio, dtype="<i2").tobytes()

    async def audio_feed() -> None:
        pos, start, first = 0, time.monotonic(), True
        while pos < len(payload) and process.returncode is None:
            if hangup_after_ms is not None and pos / BYTES_PER_MS >= hangup_after_ms:
                state["hung_up"] = True
                stdin.close()  # the channel is gone: stdin closes
                break
            size = 2 * FRAME_BYTES if first else FRAME_BYTES
            if process.returncode is not None:
                break  # the script has exited: nobody reads fd 3 any more
            # fd 3 is non-blocking: audio the script does not read in time is dropped, as Asterisk drops it.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(write_end, payload[pos : pos + size])
            pos += size
            first = False
            result.audio_sent_ms = pos / BYTES_PER_MS
            await asyncio.sleep(max(0.0, start + pos / BYTES_PER_MS / 1000 - time.monotonic()))
        result.window_end = time.monotonic()

    feeder = asyncio.ensure_future(audio_feed())
    fake = FakeAsterisk("", 0)
    try:
        while True:
            line = await stdout.readline()
            if not line:
                break
            command = line.decode().rstrip("\n")
            result.commands.append(command)
            reply = await fake._reply(command, result, audio, None, False, 0x10, state)
            if not state["hung_up"]:
                stdin.write((reply + "\n").encode())
    finally:
        await feeder
        os.close(write_end)
        code = await process.wait()
    result.done = time.monotonic()
    result.agistatus = "HANGUP" if state["hung_up"] else ("SUCCESS" if code == 0 else "FAILURE")
    return result


