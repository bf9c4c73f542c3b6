"""The daemon: loads the engine once, starts the listeners the configuration enables, stops cleanly.

It knows which protocol runs on which socket and nothing of what they say: FastAGI routes come from the
adapter, AudioSocket connections are handed to the call registry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from pbxguard.adapters.asterisk import AsteriskAdapter
from pbxguard.calls import CallRegistry
from pbxguard.config import Config
from pbxguard.policy import Policy
from pbxguard.protocols import eagi
from pbxguard.protocols.audiosocket import AudioSocketConnection
from pbxguard.protocols.fastagi import FastAGIApplication
from pbxguard.screener import Screener

log = logging.getLogger("pbxguard.server")

DRAIN_TIMEOUT_S = 10.0  # SIGTERM: how long calls in progress may take to finish


def build_policy(config: Config) -> Policy:
    return Policy(config["policy"]["rules"], config["policy"]["low_confidence_action"])


class Server:
    def __init__(self, config: Config, screener: Screener | None = None) -> None:
        self.config = config
        self.screener = screener or Screener(config["engine"]["models"], window_ms=config["engine"]["window_ms"])
        self.registry = CallRegistry(self.screener)
        self.asterisk = AsteriskAdapter(self.registry, build_policy(config), config["audiosocket"]["advertise"])
        self.servers: list[asyncio.AbstractServer] = []
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        """Bind every enabled listener; raises OSError with the address when one cannot be bound."""
        cfg = self.config
        if cfg["fastagi"]["enabled"]:
            app = FastAGIApplication(cfg["fastagi"]["header_timeout_s"], cfg["fastagi"]["command_timeout_s"], cfg.allowed)
            for path, route in self.asterisk.routes().items():
                app.add_route(path, route)
            self.servers.append(await self._bind("fastagi", asyncio.start_server, app.handler,
                                                 limit=cfg["fastagi"]["header_limit_bytes"]))
        timeout = cfg["audiosocket"]["first_frame_timeout_s"]
        if cfg["audiosocket"]["enabled"]:
            self.servers.append(await self._bind("audiosocket", asyncio.get_running_loop().create_server,
                                                 lambda: AudioSocketConnection(self.registry.attach, cfg.allowed, timeout)))
        if cfg["eagi"]["enabled"]:
            await self._start_eagi(cfg["eagi"]["directory"], timeout)

    async def _start_eagi(self, directory: str, timeout: float) -> None:
        """Unix sockets for the pbxguard-eagi relay: the same FastAGI and AudioSocket handlers, local peers
        only (the socket files' permissions are the access control)."""
        os.makedirs(directory, exist_ok=True)
        app = FastAGIApplication(self.config["fastagi"]["header_timeout_s"], self.config["fastagi"]["command_timeout_s"])
        for path, route in self.asterisk.routes().items():
            app.add_route(path, route)
        loop = asyncio.get_running_loop()
        for name, start in ((eagi.AGI_SOCKET, lambda p: asyncio.start_unix_server(app.handler, p)),
                            (eagi.AUDIO_SOCKET, lambda p: loop.create_unix_server(
                                lambda: AudioSocketConnection(lambda cid: self.registry.attach(cid, early=True),
                                                              lambda peer: True, timeout), p))):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                os.unlink(path)  # a stale socket from a previous run
            self.servers.append(await start(path))
            os.chmod(path, 0o660)
            log.info("eagi relay socket %s", path)

    async def _bind(self, name: str, create, factory, **kwargs) -> asyncio.AbstractServer:
        host, port = self.config[name]["host"], self.config[name]["port"]
        try:
            server = await create(factory, host, port, **kwargs)
        except OSError as exc:
            raise OSError(exc.errno, f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from None
        log.info("%s listening on %s:%d", name, host, server.sockets[0].getsockname()[1])
        return server

    def port(self, index: int) -> int:
        """The bound port of the index-th listener (tests bind port 0)."""
        return self.servers[index].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, give calls in progress a bounded time to finish."""
        for server in self.servers:
            server.close()
        deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
        while self.registry.active and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for server in self.servers:
            await server.wait_closed()

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.stopping.wait()
        log.info("stopping: %d calls in progress", self.registry.active)
        await self.stop()
