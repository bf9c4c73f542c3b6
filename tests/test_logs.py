"""Log lines: a caller cannot write lines of their own, and one bad peer cannot flood the log."""

import io
import json
import logging

from pbxguard import config, logs


def logged(cfg, emit) -> list[str]:
    stream = io.StringIO()
    logs.configure(cfg)
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)
    try:
        emit(logging.getLogger("pbxguard.test"))
    finally:
        logging.basicConfig(force=True)
    return stream.getvalue().splitlines()


HOSTILE = "Bob\ncall_id=forged status=screened\u2028\x00\x1b[2J"


def test_a_hostile_caller_id_stays_on_its_line_escaped():
    plain = logged(config.load(None), lambda log: log.warning("caller %s", HOSTILE))
    assert len(plain) == 1 and plain[0].endswith("caller Bob\\x0acall_id=forged status=screened\\u2028\\x00\\x1b[2J")
    as_json = logged(config.load(None).with_(log={"json": True}), lambda log: log.warning("caller %s", HOSTILE))
    assert len(as_json) == 1 and json.loads(as_json[0])["message"] == f"caller {HOSTILE}"


def test_repeated_warnings_are_limited_and_counted_info_lines_are_not():
    def flood(log):
        for k in range(1000):
            log.warning("refused connection from %s", f"10.0.0.{k % 250}")
            log.info("call_id=%d status=screened", k)
        limiter = logging.getLogger().handlers[0].filters[0]
        limiter.kinds[("pbxguard.test", "refused connection from %s")][0] -= logs.PERIOD_S + 1  # a minute on
        log.warning("refused connection from %s", "10.0.0.1")

    lines = logged(config.load(None), flood)
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == logs.BURST + 1
    assert warnings[-1].endswith(f"[{1000 - logs.BURST} more like this in the last 60 s not logged]")
    assert sum("status=screened" in line for line in lines) == 1000
