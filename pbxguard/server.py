"""The daemon: loads the engine once, starts the listeners the configuration enables, stops cleanly.

It knows which protocol runs on which socket and nothing of what they say: the screening service gives the
FastAGI routes, AudioSocket connections are handed to the call registry. Lifecycle: READY=1 to systemd once
listeners are bound and models loaded, watchdog pings from the event loop, SIGTERM drains calls in
progress within a bound, SIGHUP reloads configuration and models without dropping a call.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import multiprocessing
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from multiprocessing.process import BaseProcess
from typing import Any, cast

from pbxguard import config as config_module
from pbxguard import logs, systemd
from pbxguard.asr.engines import EngineError, make_engine
from pbxguard.asr.stage import TranscriptStage
from pbxguard.config import Config
from pbxguard.metrics import Metrics
from pbxguard.protocols.audiosocket import AudioSocketConnection, Timeouts
from pbxguard.protocols.fastagi import FastAGIApplication
from pbxguard.relays.contract import socket_paths
from pbxguard.screener.screener import Screener
from pbxguard.service.calls import CallRegistry
from pbxguard.service.recorder import Recorder
from pbxguard.service.screening import ScreeningService
from pbxguard.store.calllog import open_call_log
from pbxguard.store.captures import Captures
from pbxguard.store.writer import CallLogWriter
from pbxguard.supervisor import BEAT, HEARTBEAT_S, READY, die_with_parent, heartbeat_fd, ran_s, starved

log = logging.getLogger("pbxguard.server")

DRAIN_TIMEOUT_S = 10.0  # SIGTERM: how long calls in progress may take to finish
PRUNE_EVERY_S = 600.0
# What a reload applies; the other sections (listeners, database, captures, metrics) need a restart.
RELOADABLE = ("engine", "policy", "callerid", "log", "allow", "web")  # web: `pbxguard web`'s, not the daemon's
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Gate:
    """A cap on one listener's open connections: past it, a new one is closed at once, with a log line."""

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit, self.open = name, limit, 0

    def enter(self) -> bool:
        if self.open >= self.limit:
            log.warning("%s: %d connections open (max_connections); refusing a new one", self.name, self.open)
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1

    def streams(self, handle: StreamHandler) -> StreamHandler:
        async def gated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not self.enter():
                writer.close()
                return
            try:
                await handle(reader, writer)
            finally:
                self.leave()

        return gated

    def protocols(self, factory: Callable[[], AudioSocketConnection]) -> Callable[[], asyncio.BaseProtocol]:
        """`factory`'s connections (which call `leave` when lost), or a closed one past the cap."""
        def gated() -> asyncio.BaseProtocol:
            if not self.enter():
                return _Refused()
            return cast(asyncio.BaseProtocol, factory())  # an asyncio protocol by its methods

        return gated


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def transcript_stage(settings: config_module.Transcript) -> TranscriptStage | None:
    """The configured transcript stage, its engine loaded now (an EngineError at startup, not per call)."""
    if not settings.enabled:
        return None
    return TranscriptStage(make_engine(settings.engine, settings.vosk_model), settings.workers, settings.budget_ms,
                           settings.unsure_below, settings.store_words)


def raise_fd_limit(wanted: int) -> None:
    """Open files up to the hard limit: every connection is one, and running out stalls accept() for all."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and wanted + 256 > soft:
        log.warning("open-files limit %d is below the connections allowed (%d) and a margin: raise LimitNOFILE "
                    "or lower max_connections", soft, wanted)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Out of file descriptors, asyncio logs a traceback per failed accept(): one line says it."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
        log.error("out of file descriptors (%s): new connections wait; calls in progress go on", exc.strerror)
        return
    loop.default_exception_handler(context)


def local_peer(peer: str) -> bool:
    """The relay sockets' filter: a Unix socket's file permissions are its access control."""
    return True


class Server:
    def __init__(self, config: Config, screener: Screener | None = None) -> None:
        self.config = config
        self.screener = screener or Screener(**config.engine.screener_args())
        self.metrics = Metrics()
        self.registry = CallRegistry(self.screener, self.metrics.active.set)
        self.metrics.loaded(self.screener.version)
        c = config.captures
        self.captures = Captures(c.directory, c.max_days, c.max_megabytes) if c.enabled else None
        db = config.database
        writer = CallLogWriter(lambda: open_call_log(db.path, db.url), db.spool_path, db.retry_s)
        self.recorder = Recorder(writer, self.captures, self.metrics, config.log.json, config.log.full_numbers)
        self.transcripts = transcript_stage(config.transcript)
        self.service = ScreeningService(self.registry, self.recorder, config, self.transcripts)
        self.servers: list[asyncio.Server] = []
        self.stopping = asyncio.Event()
        self.metrics_server: Any = None
        self.freeswitch: BaseProcess | None = None
        self.freeswitch_port = 0
        self.freeswitch_beat = 0.0
        self.freeswitch_ran: float | None = None  # the ESL process's CPU time at its last beat
        self.tasks: list[asyncio.Future] = []
        self.ready_to_report = False

    def allowed(self, address: str) -> bool:
        return self.config.allowed(address)  # the running config's list: a reload applies a changed one

    async def start(self) -> None:
        """Bind every enabled listener; raises OSError with the address when one cannot be bound."""
        cfg = self.config
        app = FastAGIApplication(cfg.fastagi.header_timeout_s, cfg.fastagi.command_timeout_s)
        for path, route in self.service.routes().items():
            app.add_route(path, route)
        raise_fd_limit(cfg.fastagi.max_connections + cfg.audiosocket.max_connections)
        asyncio.get_running_loop().set_exception_handler(_loop_exception)
        if cfg.fastagi.enabled:
            gate = Gate("fastagi", cfg.fastagi.max_connections)
            # Workers share the port: the kernel spreads connections across them.
            self.servers.append(await self._bind("fastagi", cfg.fastagi.host, cfg.fastagi.port, asyncio.start_server,
                                                 gate.streams(app.handler(self.allowed)),
                                                 limit=cfg.fastagi.header_limit_bytes,
                                                 reuse_port=cfg.worker_count() > 1))
        a = cfg.audiosocket
        timeouts = Timeouts(a.first_frame_timeout_s, a.idle_timeout_s, a.max_call_s)
        if cfg.audiosocket.enabled:
            gate = Gate("audiosocket", a.max_connections)
            audio = await self._bind("audiosocket", cfg.audiosocket.host, cfg.audiosocket.port,
                                     asyncio.get_running_loop().create_server,
                                     gate.protocols(lambda: AudioSocketConnection(self.registry.attach, self.allowed,
                                                                                  timeouts, gate.leave)))
            self.servers.append(audio)
            if cfg.audiosocket.port == 0:  # a port the system chose (tests, benchmarks): advertise that one
                self.service.audiosocket_address = f"{cfg.audiosocket.host}:{audio.sockets[0].getsockname()[1]}"
        if cfg.eagi.enabled or cfg.freeswitch.enabled:
            await self._start_relay_sockets(app, cfg.eagi.directory, timeouts)
        # The ESL server relays each call to a worker's relay sockets, so one serves them all; so do the
        # metrics endpoint (multiprocess mode) and the captures' pruning.
        if cfg.freeswitch.enabled and cfg.worker == 0:
            await self._start_freeswitch()
            if cfg.watchdog.enabled:
                self.tasks.append(asyncio.ensure_future(self._watch_freeswitch()))
        if cfg.metrics.enabled and cfg.worker == 0:
            try:
                self.metrics_server = self.metrics.serve(cfg.metrics.host, cfg.metrics.port, self.allowed)
            except OSError as exc:
                raise OSError(exc.errno, f"metrics: cannot listen on {cfg.metrics.host}:{cfg.metrics.port}: "
                                         f"{exc.strerror}") from None
        if self.captures is not None and cfg.worker == 0:
            self.tasks.append(asyncio.ensure_future(self._prune_captures(self.captures)))
        self.tasks.append(asyncio.ensure_future(self._flush_call_log()))

    async def _bind(self, name: str, host: str, port: int, create: Callable[..., Any], factory: Callable[..., Any],
                    **kwargs: Any) -> asyncio.Server:
        try:
            server = await create(factory, host, port, **kwargs)
        except OSError as exc:
            raise OSError(exc.errno, f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from None
        log.info("%s listening on %s:%d", name, host, server.sockets[0].getsockname()[1])
        return server

    async def _start_relay_sockets(self, app: FastAGIApplication, directory: str, timeouts: Timeouts) -> None:
        """Unix sockets for the EAGI and FreeSWITCH relays: the same FastAGI and AudioSocket handlers."""
        os.makedirs(directory, exist_ok=True)
        agi_path, audio_path = socket_paths(directory, self.config.worker)
        loop = asyncio.get_running_loop()
        agi_gate = Gate("relay agi", self.config.fastagi.max_connections)
        audio_gate = Gate("relay audio", self.config.audiosocket.max_connections)

        def audio_connection() -> AudioSocketConnection:
            return AudioSocketConnection(lambda call_id: self.registry.attach(call_id, early=True), local_peer, timeouts,
                                         audio_gate.leave)

        for path, start in ((agi_path, lambda p: asyncio.start_unix_server(agi_gate.streams(app.handler(local_peer)), p)),
                            (audio_path, lambda p: loop.create_unix_server(audio_gate.protocols(audio_connection), p))):
            if os.path.exists(path):
                os.unlink(path)  # a stale socket from a previous run
            self.servers.append(await start(path))
            os.chmod(path, 0o660)
            log.info("relay socket %s", path)

    async def _start_freeswitch(self) -> None:
        """The ESL server in its own process (gevent, monkey-patched there only); it relays each call to
        this daemon through the relay sockets, so classification stays here. It beats through its status
        pipe; `_watch_freeswitch` replaces it when it stops beating."""
        from pbxguard.relays import freeswitch

        fs = self.config.freeswitch
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        port = self.freeswitch_port or fs.port  # a replacement takes the port its predecessor had
        self.freeswitch = process = ctx.Process(
            target=freeswitch.serve, name="pbxguard-esl", daemon=True,
            args=(fs.host, port, self.config.eagi.directory, fs.recordings, fs.command_timeout_s, send))
        process.start()
        send.close()
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, lambda: receive.recv() if receive.poll(60) else "no answer in 60 s")
        if not ready.startswith("ok"):
            process.terminate()
            raise OSError(0, ready)
        self.freeswitch_port = int(ready.split()[1])
        self.freeswitch_beat, self.freeswitch_ran = loop.time(), ran_s(process.pid) if process.pid else None
        loop.add_reader(receive.fileno(), self._freeswitch_beats, receive)
        log.info("freeswitch ESL listening on %s:%d (pid %d)", fs.host, self.freeswitch_port, process.pid)

    def _freeswitch_beats(self, beats: Any) -> None:
        try:
            while beats.poll():
                beats.recv_bytes()
                self.freeswitch_beat = asyncio.get_running_loop().time()
            if self.freeswitch is not None and self.freeswitch.pid is not None:
                self.freeswitch_ran = ran_s(self.freeswitch.pid)
        except (EOFError, OSError):  # it exited: the watch sees it stop beating
            asyncio.get_running_loop().remove_reader(beats.fileno())

    async def _watch_freeswitch(self) -> None:
        """Kill and replace an ESL process that stopped beating: its calls' sockets close, and FreeSWITCH's
        dialplan goes on to the fail-open route. One that is late only for want of a CPU (`starved`) gets up to
        STARVED_GRACE_S: killing it would drop every call it carries, as happened at 150 concurrent calls; a
        stopped, blocked or spinning one is killed after `watchdog.stall_s`."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            process = self.freeswitch
            late = loop.time() - self.freeswitch_beat
            if process is None or late <= self.config.watchdog.stall_s:
                continue
            if process.pid is not None and starved(process.pid, late, self.freeswitch_ran):
                continue  # only late: a saturated machine, not a frozen process
            log.error("freeswitch ESL process (pid %s) stopped beating for %.1f s: killing it so that its calls "
                      "go through", process.pid, late)
            process.kill()
            process.join(5)
            try:
                await self._start_freeswitch()
            except OSError as exc:
                log.error("freeswitch ESL process could not be restarted: %s; retrying", exc)
                self.freeswitch_beat = loop.time()

    async def _flush_call_log(self) -> None:
        """Rows spooled while the database was away are replayed as soon as it is back, calls or not; and the
        caller-ID lists are read, so that every worker, busy or not, has fresh ones to use in an outage."""
        while True:
            await asyncio.sleep(self.config.database.retry_s)
            await self.recorder.lists()  # replays what is pending first

    async def _prune_captures(self, captures: Captures) -> None:
        while True:
            await asyncio.get_running_loop().run_in_executor(self.recorder.executor, captures.prune)
            await asyncio.sleep(PRUNE_EVERY_S)

    def port(self, index: int) -> int:
        """The bound port of the index-th listener (tests bind port 0)."""
        return self.servers[index].sockets[0].getsockname()[1]

    async def reload(self) -> None:
        """SIGHUP: the RELOADABLE sections (models, policy, caller-ID rules, log level, allow list); calls in
        progress keep the screener they started with. The caller-ID lists live in the call log and are read
        at every call. A changed setting that needs a restart is named in the log and left as it runs."""
        systemd.notify("RELOADING=1")
        try:
            cfg = config_module.load(self.config.path).for_worker(self.config.worker) if self.config.path else self.config
            # Loading models takes a while: off the event loop, which keeps serving calls (and beating).
            screener = await asyncio.get_running_loop().run_in_executor(
                None, lambda: Screener(**cfg.engine.screener_args()))
        except Exception as exc:  # a bad new config or model must not take down a working daemon
            log.error("reload failed, keeping the running configuration and models: %s", exc)
        else:
            changed = self.config.changed_sections(cfg)
            needs_restart = [name for name in changed if name not in RELOADABLE]
            if needs_restart:
                log.warning("reload: changed %s take effect only after a restart; running with the old values",
                            ", ".join(needs_restart))
                cfg = cfg.with_(**{name: getattr(self.config, name) for name in needs_restart})
            self.config, self.screener = cfg, screener
            self.registry.screener = screener
            self.service.reconfigure(cfg)
            self.metrics.loaded(screener.version)
            logging.getLogger().setLevel(cfg.log.level.upper())
            log.info("reloaded: model %s", screener.version)
        self._ready()

    async def stop(self) -> None:
        """Stop accepting, give calls in progress a bounded time to finish, flush the call log."""
        for server in self.servers:
            server.close()
        deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
        while self.registry.active and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for task in self.tasks:
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        if self.freeswitch is not None:
            self.freeswitch.terminate()
            self.freeswitch.join(10)
        if self.metrics_server is not None:
            self.metrics_server[0].shutdown()
        self.recorder.close()
        if self.transcripts is not None:
            self.transcripts.close()

    def _ready(self) -> None:
        """Ready (started, or reloaded): to systemd, or under the supervisor in the next heartbeat (the
        supervisor tells systemd once every worker is)."""
        systemd.notify(f"READY=1\nSTATUS=screening with model {self.screener.version}")
        self.ready_to_report = True

    async def _beat(self, fd: int) -> None:
        """The supervisor's heartbeat: a byte from the event loop itself, so a stuck loop stops beating."""
        os.set_blocking(fd, False)
        while True:
            try:
                os.write(fd, READY if self.ready_to_report else BEAT)
                self.ready_to_report = False
            except BlockingIOError:  # the supervisor is behind: it has beats enough
                pass
            await asyncio.sleep(HEARTBEAT_S)

    async def run(self, heartbeat: int | None = None) -> None:
        """Serve until SIGTERM or SIGINT. With `heartbeat` (a pipe to the supervisor) the event loop writes a
        byte to it every HEARTBEAT_S; alone, it pings systemd's watchdog itself."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.tasks.append(asyncio.ensure_future(self.reload())))
        self.tasks.append(asyncio.ensure_future(systemd.watchdog() if heartbeat is None else self._beat(heartbeat)))
        self._ready()
        log.info("ready: model %s", self.screener.version)
        await self.stopping.wait()
        systemd.notify("STOPPING=1")
        log.info("stopping: %d calls in progress", self.registry.active)
        await self.stop()




def main(argv: list[str] | None = None) -> int:
    """The daemon itself (`python -m pbxguard.server`), as the supervisor runs it; exit 2 for a bad
    configuration, 1 when it cannot start (a port in use, broken models)."""
    import argparse

    from pbxguard.screener.persist import ModelError

    parser = argparse.ArgumentParser(prog="pbxguard-daemon")
    parser.add_argument("--config")
    parser.add_argument("--worker", type=int, default=0, help="which of `workers` this process is (the supervisor's)")
    args = parser.parse_args(argv)
    try:
        cfg = config_module.load(args.config).for_worker(args.worker)
    except config_module.ConfigError as exc:
        print(f"pbxguard: {exc}", file=sys.stderr)
        return 2
    logs.configure(cfg)
    heartbeat = heartbeat_fd()
    if heartbeat is not None:
        die_with_parent()
    try:
        asyncio.run(Server(cfg).run(heartbeat))
    except (OSError, ModelError, EngineError) as exc:
        print(f"pbxguard: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
