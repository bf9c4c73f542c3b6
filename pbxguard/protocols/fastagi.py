"""FastAGI: panoramisk's Application and Request, hardened for a daemon that must not stall.

panoramisk 1.4 breaks in ways one bad client or one odd reply turns into a frozen daemon (see
integration-facts.md). What this module changes, and why:
- header: `readuntil(b"\\n\\n")` under a size limit and a timeout; panoramisk's loop spins forever when a
  client closes mid-header, and reads without bound.
- replies: a stray `HANGUP` line (sent ~40 ms after a hangup) is skipped, not taken as the next reply;
  a multi-line `520-` usage block is read to its `520 ` end line; `511` (dead channel) is recognised;
  EOF raises `AGIClosed` instead of a ValueError.
- every command has a timeout, after which the request is marked broken and the connection dropped:
  the stream is out of sync by then.
- routes must be coroutines (panoramisk wraps others with `asyncio.coroutine`, gone in Python 3.11), and
  the query string of `agi_network_script` does not change the route.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from panoramisk.fast_agi import Application, Request
from panoramisk.utils import parse_agi_result

from pbxguard.protocols import agi

log = logging.getLogger("pbxguard.fastagi")

Route = Callable[["FastAGIRequest"], Awaitable[None]]


class AGIError(Exception):
    pass


class AGIClosed(AGIError):
    """Asterisk closed the connection (or it was dropped after a timeout)."""


class AGITimeout(AGIError):
    """No reply in time; the connection is out of sync and is dropped."""


class FastAGIRequest(Request):
    """One AGI session. `send_command` returns panoramisk's result dict, plus `status_code` 511/520."""

    def __init__(self, app: Application, headers: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 command_timeout: float, encoding: str = "utf-8", local: bool = False) -> None:
        super().__init__(app, headers, reader, writer, encoding)
        self.command_timeout = command_timeout
        self.local = local  # came over a Unix socket (a relay of ours), not over TCP
        self.hung_up = False  # Asterisk told us the channel hung up
        self.broken = False

    @property
    def args(self) -> list[str]:
        """agi_arg_1, agi_arg_2, ... in order."""
        out, k = [], 1
        while f"agi_arg_{k}" in self.headers:
            out.append(self.headers[f"agi_arg_{k}"])
            k += 1
        return out

    async def send_command(self, command: str, timeout: float | None = None) -> dict:
        if self.broken:
            raise AGIClosed("connection already dropped")
        try:
            self.writer.write((command + "\n").encode(self.encoding))
            await asyncio.wait_for(self.writer.drain(), self.command_timeout)
            return await asyncio.wait_for(self._read_reply(), timeout or self.command_timeout)
        except TimeoutError:
            self.broken = True
            self.writer.close()
            raise AGITimeout(f"no reply to {command.split(' ', 2)[:2]} within {timeout or self.command_timeout:.1f} s") from None
        except (ConnectionError, OSError) as exc:
            self.broken = True
            raise AGIClosed(str(exc)) from None

    async def _line(self) -> str:
        raw = await self.reader.readline()
        if not raw.endswith(b"\n"):
            self.broken = True
            raise AGIClosed("Asterisk closed the connection")
        return raw.decode(self.encoding, "replace").rstrip("\r\n")

    async def _read_reply(self) -> dict:
        while True:
            line = await self._line()
            if line == "HANGUP":
                self.hung_up = True
                continue
            if line.startswith("100"):
                continue
            if line.startswith("520-"):
                lines = [line]
                while not lines[-1].startswith("520 "):
                    lines.append(await self._line())
                return {"status_code": 520, "error": "AGIUsageError", "msg": "\n".join(lines)}
            if line.startswith("511"):
                self.hung_up = True
                return {"status_code": 511, "error": "AGIDeadChannel", "msg": line}
            code = line[:3]
            if not (code.isascii() and code.isdigit()):  # str.isdigit() is also true for '²' and other digits
                return {"status_code": 0, "error": "AGIGarbage", "msg": line}
            try:
                result = parse_agi_result(line)
            except (ValueError, IndexError):  # panoramisk's parser on a line that only starts like a reply
                return {"status_code": 0, "error": "AGIGarbage", "msg": line}
            result.setdefault("status_code", int(code))
            return result


class FastAGIApplication(Application):
    """panoramisk's Application with a bounded, timed header read and FastAGIRequest sessions.

    Create it inside a running event loop. One application serves any number of listeners: `handler(allowed)`
    is the connection callback for one, with `allowed(peer_ip)` filtering its clients before a byte is read.
    """

    def __init__(self, header_timeout: float = 5.0, command_timeout: float = 5.0) -> None:
        super().__init__(loop=asyncio.get_running_loop())
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout

    def handler(self, allowed: Callable[[str], bool]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.serve(reader, writer, allowed)

        return handle

    def add_route(self, path: str, endpoint: Route) -> None:
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"route {path!r}: endpoint must be an async function")
        super().add_route(path, endpoint)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    allowed: Callable[[str], bool]) -> None:
        """One AGI session, from its header to its route's end; the connection is closed after."""
        sock = writer.get_extra_info("socket")
        local = sock is not None and sock.family == socket.AF_UNIX
        # A Unix socket's file permissions are its access control.
        peer = ("local", 0) if local else writer.get_extra_info("peername") or ("?", 0)
        try:
            if not allowed(str(peer[0])):
                log.warning("fastagi: refused connection from %s (not in 'allow')", peer[0])
                return
            headers = await self._read_headers(reader, peer)
            if headers is None:
                return
            script = headers.get(agi.SCRIPT, "")
            route = self._route.get(script.split("?", 1)[0])
            if route is None:
                log.warning("fastagi: no route for %r from %s (channel %s)", script, peer[0], headers.get("agi_channel"))
                return
            request = FastAGIRequest(self, headers, reader, writer, self.command_timeout, self.default_encoding, local)
            try:
                await route(request)
            except AGIError as exc:
                log.warning("fastagi: %s on %s: %s", script, headers.get("agi_channel"), exc)
            except Exception:
                log.exception("fastagi: route %r failed on %s", script, headers.get("agi_channel"))
        finally:
            writer.close()

    async def _read_headers(self, reader: asyncio.StreamReader, peer) -> dict[str, str] | None:
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\n\n"), self.header_timeout)
        except TimeoutError:
            log.warning("fastagi: %s sent no complete AGI header within %.1f s; dropped", peer[0], self.header_timeout)
        except asyncio.IncompleteReadError as exc:
            log.warning("fastagi: %s closed after %d bytes, before the AGI header ended", peer[0], len(exc.partial))
        except asyncio.LimitOverrunError:
            log.warning("fastagi: %s sent an AGI header over the size limit; dropped", peer[0])
        except (ConnectionError, OSError) as exc:
            log.warning("fastagi: %s: %s while reading the AGI header", peer[0], exc)
        else:
            headers = agi.parse_environment(block, self.default_encoding)
            if agi.SCRIPT not in headers:
                log.warning("fastagi: %s sent a header without agi_network_script; dropped", peer[0])
                return None
            return headers
        return None
