"""FreeSWITCH's event socket, outbound mode: greenswitch's session and server, with their broken parts replaced.

greenswitch 0.0.19 is gevent code on plain sockets: without monkey-patching, one call's blocking read
stalls every other call in the thread. So it runs in its own process that monkey-patches itself (the
asyncio daemon is never patched). What is replaced, and why (see integration-facts.md):
- reading: greenswitch URL-decodes a whole block before splitting it into lines (a caller's encoded
  newline becomes a header, e.g. a forged `variable_pbxguard_report`), spins without yielding when the
  peer closes inside a body, and leaves a disconnect notice's body unread. Messages are read here with
  `pbxguard.protocols.esl.MessageReader`: split first, bounded, and EOF or a short body ends the session.
  The socket has an idle timeout, so a peer that stops talking ends its session too.
- `send()` waits forever for a reply: here it times out and drops the session, whose stream is out of sync.
- `OutboundESLServer.listen()` calls `sys.exit()` when it cannot bind: here it raises OSError with the address.
"""

from __future__ import annotations

import errno
import logging
import socket

import gevent
from greenswitch.esl import ESLEvent, NotConnectedError, OutboundESLServer, OutboundSession, OutboundSessionHasGoneAway

from pbxguard.protocols import esl

log = logging.getLogger("pbxguard.esl")

IDLE_TIMEOUT_S = 30.0  # no byte from FreeSWITCH for this long: the session is dead (ours last seconds)


class ESLTimeout(OutboundSessionHasGoneAway):
    """No reply in time: the session is treated as gone."""


def _event(message: esl.Message) -> ESLEvent:
    """greenswitch's event object, filled from a message read here."""
    event = ESLEvent("")
    event.headers = dict(message.event or message.headers)
    event.data = message.body
    return event


class TimedOutboundSession(OutboundSession):
    command_timeout = 5.0

    def __init__(self, client_address, sock: socket.socket) -> None:
        sock.settimeout(IDLE_TIMEOUT_S)
        self.stopping = False
        super().__init__(client_address, sock)

    def send(self, data: str):
        try:
            with gevent.Timeout(self.command_timeout):
                return super().send(data)
        except gevent.Timeout:
            self._gone()
            raise ESLTimeout(f"no reply to {data.split(chr(10))[0]!r} within {self.command_timeout} s") from None

    def _gone(self) -> None:
        self.connected = False
        self._outbound_connected = False

    def receive_events(self) -> None:
        reader = esl.MessageReader(self.sock_file)
        while self._run:  # type: ignore[has-type]
            try:
                message = reader.read()
            except (esl.ESLError, OSError) as exc:  # a broken peer, or one silent past the idle timeout
                if not self.stopping:  # our own stop() closing the socket under the reader is no news
                    log.warning("freeswitch: session ended: %s", exc)
                message = None
            if message is None:
                break
            self.dispatch(message)
        self._run = False
        self._gone()
        for pending in self._commands_sent:  # commands waiting for a reply get one: the session is gone
            pending.set_exception(OutboundSessionHasGoneAway())
        self._commands_sent.clear()

    def dispatch(self, message: esl.Message) -> None:
        kind = message.content_type
        if kind in ("command/reply", "api/response"):
            if not self._commands_sent:
                log.warning("freeswitch: a %s nobody asked for; ignored", kind)
                return
            event = _event(message)
            event.data = message.headers.get("Reply-Text", "") if kind == "command/reply" else message.body
            self._commands_sent.pop(0).set(event)
        elif kind == "auth/request":
            self._auth_request_event.set()
        elif kind == "text/disconnect-notice":
            if message.headers.get("Content-Disposition") == "linger":
                self._lingering = True
            else:
                self.connected = False
            self._esl_event_queue.put(_event(message))
        elif kind == "text/rude-rejection":
            self.connected = False
        elif kind:
            self._esl_event_queue.put(_event(message))
        else:
            log.warning("freeswitch: ignoring a block without Content-Type")

    def stop(self) -> None:
        """Close the session now. No `exit` round trip: closing the socket ends it for FreeSWITCH (which goes on
        with the dialplan after `resume`), and greenswitch's stop() waits up to a second more for its event
        greenlet's queue timeout; both lengthened every call's hold under load."""
        if self.stopping:
            return
        self.stopping = True
        self._run = False
        self._gone()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the reader returns at once, whatever the peer does
        except OSError:
            pass
        if self._receive_events_greenlet is not None:
            self._receive_events_greenlet.join(timeout=1.0)
        if self._process_events_greenlet is not None:
            self._process_events_greenlet.kill(block=False)
        self.sock.close()
        self.sock_file.close()

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
