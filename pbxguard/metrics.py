"""Prometheus metrics, served on 127.0.0.1:9464 by default. Beside the hot path: counters only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from pbxguard.store.record import CallRecord


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("pbxguard_calls", "Calls handled, by verdict, action and status",
                             ["verdict", "action", "status"], registry=self.registry)
        self.decided = Histogram("pbxguard_decided_seconds", "Audio time until the verdict was certain",
                                 buckets=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 5.0), registry=self.registry)
        self.latency = Histogram("pbxguard_verdict_latency_seconds", "From the end of the audio to the variables set",
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=self.registry)
        self.active = Gauge("pbxguard_active_calls", "Calls being screened now", registry=self.registry)
        self.errors = Counter("pbxguard_errors", "Errors by kind", ["kind"], registry=self.registry)
        self.challenges = Counter("pbxguard_challenges", "Turing test outcomes", ["outcome"], registry=self.registry)
        self.pending = Gauge("pbxguard_call_log_pending", "Rows spooled or held, not yet in the database",
                             registry=self.registry)
        self.model = Info("pbxguard_model", "The loaded model", registry=self.registry)

        self.latency_samples: list[float] | None = None  # a benchmark sets a list to keep every latency

    def verdict_sent(self, seconds: float) -> None:
        """From the end of the window's audio to the last variable set."""
        self.latency.observe(seconds)
        if self.latency_samples is not None:
            self.latency_samples.append(seconds)

    def serve(self, host: str, port: int):
        """Start the HTTP endpoint in a background thread; returns (server, thread)."""
        return start_http_server(port, addr=host, registry=self.registry)

    def call(self, record: CallRecord) -> None:
        self.calls.labels(record.verdict or "none", record.action or "none", record.status).inc()
        if record.decided_ms is not None:
            self.decided.observe(record.decided_ms / 1000.0)
        if record.error:
            self.errors.labels("agi").inc()
