"""What the daemon and its relays agree on: where the local sockets are and how a relayed call is named.

A relay opens two Unix stream sockets in the run directory, both of one worker: an AGI session to its AGI
socket (the environment block carries `CALL_ID_HEADER` with the call id the relay made), and an AudioSocket
stream to its audio socket opening with a UUID frame of the same id, then 8 kHz s16le audio frames. The
daemon answers on the AGI session (SET VARIABLE ...) and closes the audio socket once it has its verdict.
Worker 0's sockets are `agi.sock` and `audio.sock`, worker N's `agi-N.sock` and `audio-N.sock`; a relay
picks the worker by the call id and skips one that does not answer (`connect`).
"""

from __future__ import annotations

import glob
import os
import socket
import zlib

RUNDIR_ENV = "PBXGUARD_RUNDIR"
DEFAULT_RUNDIR = "/run/pbxguard"
CALL_ID_HEADER = "agi_pbxguard_call_id"
DTMF_KEYS = "0123456789*#ABCD"  # what a challenge report's digits may be


def socket_paths(rundir: str, worker: int = 0) -> tuple[str, str]:
    """(AGI socket, audio socket) of worker `worker` in `rundir`."""
    suffix = f"-{worker}" if worker else ""
    return os.path.join(rundir, f"agi{suffix}.sock"), os.path.join(rundir, f"audio{suffix}.sock")


def workers_in(rundir: str) -> list[int]:
    """The workers whose AGI socket is in `rundir` (a stale one is skipped by `connect`)."""
    found = {0} if os.path.exists(socket_paths(rundir)[0]) else set()
    for path in glob.glob(os.path.join(glob.escape(rundir), "agi-*.sock")):
        index = os.path.basename(path)[len("agi-"):-len(".sock")]
        if index.isdecimal():
            found.add(int(index))
    return sorted(found)


def connect(rundir: str, key: str, audio: bool = True) -> tuple[socket.socket, socket.socket | None]:
    """(AGI session, audio stream or None) to one worker, chosen by `key` (a call id) so that calls spread
    over the workers; a worker that does not answer (stopped, restarting) is skipped. OSError when none does."""
    workers = workers_in(rundir) or [0]
    first = zlib.crc32(key.encode()) % len(workers)
    error: OSError | None = None
    for worker in workers[first:] + workers[:first]:
        opened: list[socket.socket] = []
        try:
            for path in socket_paths(rundir, worker)[: 2 if audio else 1]:
                opened.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                opened[-1].connect(path)
            return opened[0], opened[1] if audio else None
        except OSError as exc:
            for sock in opened:
                sock.close()
            error = exc
    assert error is not None
    raise error
