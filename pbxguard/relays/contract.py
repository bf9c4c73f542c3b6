"""What the daemon and its relays agree on: where the local sockets are and how a relayed call is named.

A relay opens two Unix stream sockets in the run directory: an AGI session to `AGI_SOCKET` (the
environment block carries `CALL_ID_HEADER` with the call id the relay made), and an AudioSocket stream to
`AUDIO_SOCKET` opening with a UUID frame of the same id, then 8 kHz s16le audio frames. The daemon answers
on the AGI session (SET VARIABLE ...) and closes the audio socket once it has its verdict.
"""

from __future__ import annotations

import os

RUNDIR_ENV = "PBXGUARD_RUNDIR"
DEFAULT_RUNDIR = "/run/pbxguard"
AGI_SOCKET = "agi.sock"
AUDIO_SOCKET = "audio.sock"
CALL_ID_HEADER = "agi_pbxguard_call_id"
DTMF_KEYS = "0123456789*#ABCD"  # what a challenge report's digits may be


def socket_paths(rundir: str) -> tuple[str, str]:
    """(AGI socket, audio socket) in `rundir`."""
    return os.path.join(rundir, AGI_SOCKET), os.path.join(rundir, AUDIO_SOCKET)
