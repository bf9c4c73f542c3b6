"""Prometheus metrics, served on 127.0.0.1:9464 by default. Beside the hot path: counters only.

With several workers (`pbxguard serve` sets PROMETHEUS_MULTIPROC_DIR) every worker writes its metrics to
prometheus_client's multiprocess files and worker 0 serves their sum; the gauges are "live" ones, which the
supervisor drops when a worker ends. Hence no callback gauges and no Info metric (neither works across
processes): the server sets the gauges now and then, and the model is a gauge with its version as a label.

The endpoint is prometheus_client's WSGI app and threading server, with what its `start_http_server` lacks
for a listener on a phone system: the `allow` list checked before a request is read, a socket timeout per
connection (a client that stops sending is dropped), and a cap on requests served at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app, multiprocess
from prometheus_client.exposition import ThreadingWSGIServer

from pbxguard.store.record import CallRecord
from pbxguard.supervisor import METRICS_DIR_ENV


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("pbxguard_calls", "Calls handled, by verdict, action and status",
                             ["verdict", "action", "status"], registry=self.registry)
        self.decided = Histogram("pbxguard_decided_seconds", "Audio time until the verdict was certain",
                                 buckets=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 5.0), registry=self.registry)
        self.latency = Histogram("pbxguard_verdict_latency_seconds", "From the end of the audio to the variables set",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=self.registry)
        self.active = Gauge("pbxguard_active_calls", "Calls being screened now", registry=self.registry,
                            multiprocess_mode="livesum")
        self.errors = Counter("pbxguard_errors", "Errors by kind", ["kind"], registry=self.registry)
        self.challenges = Counter("pbxguard_challenges", "Turing test outcomes", ["outcome"], registry=self.registry)
        self.pending = Gauge("pbxguard_call_log_pending", "Rows spooled or held, not yet in the database",
                             registry=self.registry, multiprocess_mode="livesum")
        self.model = Gauge("pbxguard_model_info", "The loaded model (1) by version", ["version"],
                           registry=self.registry, multiprocess_mode="livemax")
        self.model_version = ""

        self.latency_samples: list[float] | None = None  # a benchmark sets a list to keep every latency

    def verdict_sent(self, seconds: float) -> None:
        """From the end of the window's audio to the last variable set."""
        self.latency.observe(seconds)
        if self.latency_samples is not None:
            self.latency_samples.append(seconds)

    def loaded(self, version: str) -> None:
        if self.model_version:
            self.model.labels(self.model_version).set(0)
        self.model.labels(version).set(1)
        self.model_version = version

    def serve(self, host: str, port: int, allowed: Callable[[str], bool]) -> tuple[MetricsServer, threading.Thread]:
        """Start the HTTP endpoint in a background thread; returns (server, thread). In multiprocess mode it
        serves every worker's metrics."""
        registry = self.registry
        if os.environ.get(METRICS_DIR_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        kind = MetricsServer6 if ":" in host else MetricsServer
        server = make_server(host, port, make_wsgi_app(registry), kind, handler_class=_QuietHandler)
        server.allowed = allowed
        thread = threading.Thread(target=server.serve_forever, name="pbxguard-metrics", daemon=True)
        thread.start()
        return server, thread

    def call(self, record: CallRecord) -> None:
        self.calls.labels(record.verdict or "none", record.action or "none", record.status).inc()
        if record.decided_ms is not None:
            self.decided.observe(record.decided_ms / 1000.0)
        if record.error:
            self.errors.labels("agi").inc()


log = logging.getLogger("pbxguard.metrics")
MAX_REQUESTS = 8  # scrapes served at once; a scrape takes about a millisecond
REQUEST_TIMEOUT_S = 5.0


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        """One line per scrape would drown the call log lines."""


class MetricsServer(ThreadingWSGIServer):
    def server_activate(self) -> None:
        super().server_activate()
        self.allowed: Callable[[str], bool] = lambda address: False
        self.slots = threading.BoundedSemaphore(MAX_REQUESTS)

    def verify_request(self, request, client_address) -> bool:
        if not self.allowed(str(client_address[0])):
            log.warning("metrics: refused connection from %s (not in 'allow')", client_address[0])
            return False
        if not self.slots.acquire(blocking=False):
            log.warning("metrics: %d requests in progress; refusing one from %s", MAX_REQUESTS, client_address[0])
            return False
        return True

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class MetricsServer6(MetricsServer):
    address_family = socket.AF_INET6
