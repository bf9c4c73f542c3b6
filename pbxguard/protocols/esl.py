"""FreeSWITCH's event socket (ESL), outbound mode: greenswitch, with its sharp edges filed off.

greenswitch 0.0.19 is gevent code on plain sockets: without monkey-patching, one call's blocking read
stalls every other call in the thread. So it runs in its own process that monkey-patches itself (the
asyncio daemon is never patched). Two quirks are wrapped here: `OutboundESLServer.listen()` calls
`sys.exit()` when it cannot bind (this raises OSError with the address instead), and `send()` waits
forever for a reply (this times out and drops the session, whose stream is out of sync by then). And its
reader leaves a disconnect notice's body unread, then takes it for the next message; this reads it.
"""

from __future__ import annotations

import errno
import logging
import socket

import gevent
from greenswitch.esl import NotConnectedError, OutboundESLServer, OutboundSession, OutboundSessionHasGoneAway

log = logging.getLogger("pbxguard.esl")


class ESLTimeout(OutboundSessionHasGoneAway):
    """No reply in time: the session is treated as gone."""


class TimedOutboundSession(OutboundSession):
    command_timeout = 5.0

    def send(self, data: str):
        try:
            with gevent.Timeout(self.command_timeout):
                return super().send(data)
        except gevent.Timeout:
            self.connected = False
            self._outbound_connected = False
            raise ESLTimeout(f"no reply to {data.split(chr(10))[0]!r} within {self.command_timeout} s") from None

    def handle_event(self, event) -> None:
        if "Content-Type" not in event.headers:  # stray lines: not an ESL message
            log.warning("freeswitch: ignoring a block without Content-Type")
            return
        if event.headers["Content-Type"] == "text/disconnect-notice" and "Content-Length" in event.headers:
            # greenswitch leaves this body unread and then parses it as the next message.
            self._read_socket(self.sock_file, int(event.headers["Content-Length"]))
        super().handle_event(event)

    def api(self, command: str) -> str:
        """`api <command>`: the response body (FreeSWITCH answers +OK... or -ERR...)."""
        return self.send(f"api {command}").data or ""


class OutboundServer(OutboundESLServer):
    """greenswitch's server with a bind error that raises, timed sessions, and a `bound` event."""

    def __init__(self, host: str, port: int, application, command_timeout: float = 5.0) -> None:
        super().__init__(bind_address=host, bind_port=port, application=application, max_connections=10_000)
        self.command_timeout = command_timeout
        self.bound = gevent.event.Event()

    def listen(self) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind((self.bind_address, self.bind_port[0]))
        except OSError as exc:
            raise OSError(exc.errno, f"freeswitch: cannot listen on {self.bind_address}:{self.bind_port[0]}: "
                                     f"{exc.strerror}") from None
        self.bound_port = self.server.getsockname()[1]
        self.server.setblocking(False)
        self.server.listen(128)
        self._running = True
        self.bound.set()
        while self._running:
            try:
                sock, address = self.server.accept()
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    gevent.sleep(0.02)
                    continue
                raise
            session = TimedOutboundSession(address, sock)
            session.command_timeout = self.command_timeout
            gevent.spawn(self._accept_call, session)
        self.server.close()
        gevent.joinall(self._greenlets, timeout=15)

    def _handle_call(self, session) -> None:
        try:
            super()._handle_call(session)
        except (OutboundSessionHasGoneAway, NotConnectedError, OSError) as exc:  # garbage, half-open or gone peer: this call only
            log.warning("freeswitch: dropped a connection before it started: %s", exc)
            session.stop()
