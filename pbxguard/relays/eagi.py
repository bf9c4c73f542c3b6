"""`pbxguard-eagi`: the EAGI fallback for Asterisk before 20.14, 21.9 and 22.4.

On those releases a server-side close of AudioSocket() hangs the call up, so the daemon cannot end the
audio when it has its verdict. Instead the dialplan runs `EAGI(pbxguard-eagi,inbound)`: Asterisk starts this
small process with the AGI session on stdin/stdout and the caller's audio on fd 3 (8 kHz s16le by default).
It classifies nothing. It opens two Unix sockets to the daemon and relays:
- the AGI session, verbatim, to the daemon's FastAGI handler, with one added header line
  `agi_pbxguard_call_id: <uuid>` so the daemon knows the audio is coming another way;
- fd 3, as AudioSocket frames (a UUID frame, then audio frames), to the daemon's AudioSocket handler.
The daemon answers as it would over TCP: it sets the variables through the AGI session and closes; the
relay then exits and the dialplan continues. If the daemon is not there, the relay exits at once and
AGISTATUS says so: the dialplan fails open.

Standard library only (it imports only the relay contract and the stdlib wire formats), so it starts in
tens of milliseconds: no numpy, no pbxguard engine.
"""

from __future__ import annotations

import os
import selectors
import sys
import uuid

from pbxguard.protocols import agi as agi_wire
from pbxguard.protocols.audiosocket import KIND_SLIN, frame, uuid_frame
from pbxguard.relays.contract import CALL_ID_HEADER, DEFAULT_RUNDIR, RUNDIR_ENV, connect

AUDIO_FD = 3
MAX_HEADER = 65536


def _read_header(stdin: int) -> bytes:
    block = b""
    while not block.endswith(b"\n\n") and len(block) < MAX_HEADER:
        chunk = os.read(stdin, 1)  # byte by byte: what follows the header is not ours to consume yet
        if not chunk:
            break
        block += chunk
    return block


def relay(stdin: int = 0, stdout: int = 1, audio_fd: int = AUDIO_FD, rundir: str | None = None) -> int:
    """Run one EAGI session; returns the exit status."""
    rundir = rundir or os.environ.get(RUNDIR_ENV, DEFAULT_RUNDIR)
    header = _read_header(stdin)
    if not header.endswith(b"\n\n"):
        sys.stderr.write("pbxguard-eagi: no AGI environment on stdin\n")
        return 1
    call_id = str(uuid.uuid4())
    try:
        agi, audio = connect(rundir, call_id)
        assert audio is not None
    except OSError as exc:
        sys.stderr.write(f"pbxguard-eagi: daemon not reachable in {rundir}: {exc.strerror or exc}\n")
        return 1
    environment = agi_wire.parse_environment(header)
    environment[agi_wire.SCRIPT] = "screen"  # what this relay is for, whatever the environment says
    environment[CALL_ID_HEADER] = call_id
    agi.sendall(agi_wire.encode_environment(environment))
    audio.sendall(uuid_frame(call_id))

    selector = selectors.DefaultSelector()
    selector.register(agi, selectors.EVENT_READ, "agi")
    selector.register(stdin, selectors.EVENT_READ, "stdin")
    selector.register(audio_fd, selectors.EVENT_READ, "fd3")
    selector.register(audio, selectors.EVENT_READ, "audio")

    def stop_audio() -> None:
        """Audio is over (fd 3 closed, or the daemon has its verdict): stop reading fd 3."""
        for target in (audio_fd, audio):
            if target in (key.fileobj for key in selector.get_map().values()):
                selector.unregister(target)
        audio.close()

    try:
        while True:
            for key, _ in selector.select():
                if key.data == "agi":  # daemon -> Asterisk: AGI commands
                    data = agi.recv(4096)
                    if not data:
                        return 0
                    os.write(stdout, data)
                elif key.data == "stdin":  # Asterisk -> daemon: AGI replies
                    data = os.read(stdin, 4096)
                    if not data:
                        return 0  # the channel is gone
                    agi.sendall(data)
                elif key.data == "fd3":
                    data = os.read(audio_fd, 4096)
                    try:
                        if not data:
                            raise ConnectionResetError
                        audio.sendall(frame(KIND_SLIN, data))
                    except OSError:
                        stop_audio()
                else:  # the daemon closed the audio side: it has its verdict
                    try:
                        closed = not audio.recv(64)
                    except OSError:
                        closed = True
                    if closed:
                        stop_audio()
    except OSError:
        return 0
    finally:
        agi.close()


def main() -> None:
    sys.exit(relay())


if __name__ == "__main__":
    main()
