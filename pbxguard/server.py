"""The daemon: loads the engine once, starts the listeners the configuration enables, stops cleanly.

It knows which protocol runs on which socket and nothing of what they say: FastAGI routes come from the
adapter, AudioSocket connections are handed to the call registry.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from pbxguard.adapters.asterisk import AsteriskAdapter
from pbxguard.calls import CallRegistry
from pbxguard.config import Config
from pbxguard.policy import Policy
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
        if cfg["audiosocket"]["enabled"]:
            loop = asyncio.get_running_loop()
            timeout = cfg["audiosocket"]["first_frame_timeout_s"]
            self.servers.append(await self._bind("audiosocket", loop.create_server,
                                                 lambda: AudioSocketConnection(self.registry.attach, cfg.allowed, timeout)))

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
