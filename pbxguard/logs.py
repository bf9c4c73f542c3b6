"""The daemon's log lines: one line per event whatever a caller sends, and no flood from one bad peer.

A caller ID, a display name or a garbage AGI line can carry newlines, NUL, escape sequences or Unicode line
separators; in a log they would forge lines or drive a terminal. Messages are escaped (`\\x0a`, `\\u2028`) in
plain lines; JSON lines escape them by themselves. Warnings and errors of one kind (one message template) are
limited to BURST per PERIOD_S, and the next one that gets through says how many were not logged; the
one-line-per-call info lines are never limited.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pbxguard.config import Config

BURST = 20
PERIOD_S = 60.0
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       text)


class PlainFormatter(logging.Formatter):
    """`time level logger[worker]: message`, the message escaped (a traceback after it keeps its lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(worker)s: %(message)s", defaults={"worker": ""})

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per log line, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record), "level": record.levelname.lower(), "logger": record.name,
                "message": record.getMessage()}
        if hasattr(record, "worker"):
            line["worker"] = record.worker.strip("[]")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class RateLimit(logging.Filter):
    def __init__(self, burst: int = BURST, period_s: float = PERIOD_S) -> None:
        super().__init__()
        self.burst, self.period_s = burst, period_s
        self.kinds: dict[tuple[str, str], list] = {}  # (logger, template) -> [window start, count, not logged]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        kind = self.kinds.get(key)
        if kind is None or now - kind[0] > self.period_s:
            dropped = kind[2] if kind else 0
            self.kinds[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} [{dropped} more like this in the last {self.period_s:.0f} s not logged]"
            return True
        kind[1] += 1
        if kind[1] <= self.burst:
            return True
        kind[2] += 1
        return False


def configure(cfg: Config) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if cfg.log.json else PlainFormatter())
    handler.addFilter(RateLimit())
    if cfg.worker_count() > 1:  # name the worker a line comes from: `pbxguard.server[1]:`
        def mark(record: logging.LogRecord, worker: str = f"[{cfg.worker}]") -> bool:
            record.worker = worker
            return True

        handler.addFilter(mark)
    logging.basicConfig(level=cfg.log.level.upper(), handlers=[handler], force=True)
