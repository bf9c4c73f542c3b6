"""The web page's routes. Every handler reads or writes through `CallLog`, the store the daemon writes and reads.

The call log is opened once per server thread and reopened after an error, so a database that went away
gives a 503 page for as long as it is away, and the next request after it is back works.
"""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, redirect, render_template, request, send_file, session, url_for

from pbxguard.config import Config
from pbxguard.policy.callerid import ALLOW, DENY, CallerIDError, list_pattern, listing, mask_number, normalise
from pbxguard.screener.verdict import CLASSES, LABELLED_CLASSES
from pbxguard.store.calllog import CallLog
from pbxguard.store.export import labelled_captures, site_files
from pbxguard.store.record import CallRecord
from pbxguard.web import auth, charts

log = logging.getLogger("pbxguard.web")

PAGE_SIZE = 100
ACTIONS = ("BRIDGE", "CHALLENGE", "HANGUP")
CHALLENGE_OUTCOMES = ("PASS", "FAIL")
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}  # the overview's choices
BUCKETS = 24
PUBLIC = {"login", "static"}  # endpoints that need no session
TIME_INPUT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends


class CallLogUnavailable(RuntimeError):
    pass


def create_app(cfg: Config, open_log: Callable[[], CallLog], secret: bytes) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret, SESSION_COOKIE_NAME="pbxguard_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=cfg.web.secure_cookie,
                      PERMANENT_SESSION_LIFETIME=int(cfg.web.session_hours * 3600), MAX_CONTENT_LENGTH=64 * 1024)
    limiter = auth.LoginLimiter(cfg.web.login_failures_per_minute)
    local = threading.local()
    captures_root = Path(cfg.captures.directory).resolve()

    def call_log() -> CallLog:
        if getattr(local, "log", None) is None:
            try:
                local.log = open_log()
            except database_errors() as exc:
                raise CallLogUnavailable(str(exc)) from exc
        return local.log

    def number(raw: str) -> str:
        return raw if cfg.web.full_numbers else mask_number(raw)

    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    app.jinja_env.globals["csrf_token"] = lambda: session.get("csrf", "")

    def unavailable(exc: Exception):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("web: call log unavailable: %s", reason)
        return render_template("error.html", title="Call log unavailable",
                               message=f"The call log cannot be read right now ({reason}). Calls are still screened; "
                                       "try again when the database is back."), 503

    @app.before_request
    def guard():
        forged = request.method == "POST" and not (
            _same_origin() and auth.csrf_matches(session.get("csrf"), request.form.get("csrf")))
        if forged:
            log.warning("web: refused a %s to %s from %s without a valid CSRF token or with another Origin",
                        request.method, request.path, request.remote_addr)
            abort(400, "The form had expired or came from another site; reload the page and try again.")
        if request.endpoint not in PUBLIC and not session.get("user"):
            return redirect(url_for("login", next=request.full_path if request.method == "GET" else None))
        if "csrf" not in session:
            session["csrf"] = auth.new_csrf_token()
        return None

    def forget_log() -> None:
        """After a database error: this thread's connection may be dead; the next request makes a new one."""
        if getattr(local, "log", None) is not None:
            try:
                local.log.close()
            except database_errors() as exc:  # already gone: nothing to close
                log.debug("web: closing a broken call log: %s", exc)
            local.log = None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                                       "media-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                                       "base-uri 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes a browser send Origin: null
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(Exception)
    def failed(exc: Exception):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return render_template("error.html", title=exc.name, message=exc.description), exc.code
        if isinstance(exc, (CallLogUnavailable, *database_errors())):
            forget_log()
            return unavailable(exc)
        log.exception("web: %s %s failed", request.method, request.path)
        return render_template("error.html", title="Error", message=f"{type(exc).__name__}: the log has the details."), 500

    @app.route("/login", methods=["GET", "POST"])
    def login():
        next_page = _local_path(request.args.get("next"))
        if request.method == "GET":
            return render_template("login.html", next=next_page)
        address = request.remote_addr or "?"
        wait = limiter.retry_after(address)
        if wait:
            log.warning("web: login refused for %s: too many failures (%d a minute)", address, limiter.limit)
            response = Response(render_template("login.html", next=next_page,
                                                error=f"Too many failed logins; try again in {wait:.0f} s."), 429)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not auth.password_matches(cfg.web.password_hash, request.form.get("password", "")):
            limiter.failed(address)
            log.warning("web: failed login from %s", address)
            return render_template("login.html", next=next_page, error="Wrong password."), 401
        limiter.succeeded(address)
        session.clear()
        session.permanent = True
        session["user"] = "admin"
        session["csrf"] = auth.new_csrf_token()  # a new token with the new session
        log.info("web: login from %s", address)
        return redirect(next_page or url_for("calls"))

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def overview():
        chosen, span, since, until = _period()
        db = call_log()
        actions = _totals(db.counts("action", since, until, span))
        challenges = _totals(db.counts("challenge", since, until, span))
        statuses = _totals(db.counts("status", since, until, span))
        times = _quantiles(db.decision_times(since, until))
        tried = challenges.get("PASS", 0) + challenges.get("FAIL", 0)
        return render_template("overview.html", ranges=RANGES, chosen=chosen, actions=actions, statuses=statuses,
                               challenges=challenges, tried=tried, times=times, total=sum(statuses.values()))

    @app.get("/overview/<column>.svg")
    def mix_chart(column: str):
        if column not in ("verdict", "action"):
            abort(404)
        _, span, since, until = _period()
        step = span / BUCKETS
        series: dict[str, list[int]] = {}
        for bucket, value, n in call_log().counts(column, since, until, step):
            series.setdefault(value or "none", [0] * BUCKETS)[min(bucket, BUCKETS - 1)] += n
        labels = [time.strftime("%H:%M" if span <= 86400 else "%m-%d", time.localtime(since + i * step)) for i in range(BUCKETS)]
        svg = charts.mix_svg(labels, dict(sorted(series.items())), f"calls by {column}")
        return Response(svg, mimetype="image/svg+xml")

    @app.get("/calls")
    def calls():
        filters = _filters(request.args, cfg.callerid.region)
        before = _cursor(request.args.get("before", ""))
        rows = call_log().calls(since=filters["since"], until=filters["until"], before=before, limit=PAGE_SIZE,
                                **{k: filters[k] for k in ("verdict", "action", "challenge", "caller")})
        query = {k: v for k, v in request.args.items() if k != "before" and v}
        older = {**query, "before": f"{rows[-1].started!r}_{rows[-1].call_id}"} if len(rows) == PAGE_SIZE else None
        return render_template("calls.html", rows=rows, args=request.args, classes=CLASSES, actions=ACTIONS,
                               outcomes=CHALLENGE_OUTCOMES, older=older, paged=before is not None, newest=query)

    def _record(call_id: str) -> CallRecord:
        record = call_log().call(call_id)
        if record is None:
            abort(404, f"No call {call_id} in the call log.")
        return record

    def _capture(record: CallRecord) -> Path | None:
        """The capture's file, only if it lies in the configured captures folder (a row names any path)."""
        if not record.capture:
            return None
        path = Path(record.capture).resolve()
        return path if path.is_relative_to(captures_root) and path.is_file() else None

    @app.get("/calls/<call_id>")
    def call(call_id: str):
        record = _record(call_id)
        listed = _listed(call_log(), record.caller, cfg.callerid.region)
        scores = sorted((record.scores or {}).items(), key=lambda kv: -kv[1])
        return render_template("call.html", call=record, scores=scores, evidence=record.evidence or {},
                               capture=_capture(record) is not None, labels=LABELLED_CLASSES, listed=listed,
                               listable=normalise(record.caller, cfg.callerid.region) is not None)

    @app.get("/calls/<call_id>/capture.wav")
    def capture(call_id: str):
        path = _capture(_record(call_id))
        if path is None:
            abort(404, "This call has no capture (captures off, or removed by retention).")
        response = send_file(path, mimetype="audio/wav", conditional=True, max_age=0)
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @app.get("/calls/<call_id>/spectrogram.png")
    def spectrogram(call_id: str):
        record = _record(call_id)
        path = _capture(record)
        if path is None:
            abort(404, "This call has no capture.")
        return Response(charts.spectrogram_png(path, record.evidence), mimetype="image/png")

    @app.post("/calls/<call_id>/label")
    def label(call_id: str):
        chosen = request.form.get("label", "")
        if chosen not in LABELLED_CLASSES:
            abort(400, f"{chosen[:32]!r} is not a class: {', '.join(LABELLED_CLASSES)}.")
        if not call_log().label(call_id, chosen):
            abort(404, f"No call {call_id} in the call log.")
        log.info("web: call %s labelled %s", call_id, chosen)
        return redirect(url_for("call", call_id=call_id))

    @app.post("/calls/<call_id>/list")
    def list_number(call_id: str):
        record = _record(call_id)
        kind = request.form.get("kind", "")
        if kind not in (ALLOW, DENY):
            abort(400, "A number goes on the allow or the deny list.")
        try:
            pattern = list_pattern(record.caller, cfg.callerid.region)
        except CallerIDError:
            abort(400, "This caller ID is not a valid number (anonymous or malformed): it cannot be listed.")
        db = call_log()
        db.remove_from_list(ALLOW if kind == DENY else DENY, pattern)  # one list per number, the newest choice
        db.add_to_list(kind, pattern, f"from the web page, call {call_id}")
        log.info("web: %s put on the %s list (call %s)", mask_number(pattern), kind, call_id)
        return redirect(url_for("call", call_id=call_id))

    @app.get("/export.tar")
    def export():
        rows = labelled_captures(call_log())
        spool = tempfile.TemporaryFile()  # send_file closes it
        with tarfile.open(fileobj=spool, mode="w") as tar:
            for name, content in site_files(rows):
                if isinstance(content, Path):
                    tar.add(content, arcname=f"site/{name}")
                else:
                    info = tarfile.TarInfo(f"site/{name}")
                    info.size, info.mtime = len(content), int(time.time())
                    tar.addfile(info, fileobj=io.BytesIO(content))
        spool.seek(0)
        return send_file(spool, mimetype="application/x-tar", as_attachment=True,
                         download_name=time.strftime("pbxguard-site-%Y%m%d.tar"))

    return app


def database_errors() -> tuple[type[Exception], ...]:
    """What SQLite and psycopg raise for a database that is away, locked or broken."""
    import sqlite3

    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return sqlite3.Error, psycopg.Error


def _same_origin() -> bool:
    """A browser's Origin (or, without one, its Referer) must be this page's; a client that sends neither passes
    (curl, a script: CSRF is a browser attack)."""
    seen = request.headers.get("Origin") or request.headers.get("Referer")
    if not seen:
        return True
    parts = urlsplit(seen)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")


def _period() -> tuple[str, int, float, float]:
    """The overview's range from `?range=`: its name, length in seconds, and (since, until) ending now."""
    chosen = request.args.get("range", "24h")
    chosen = chosen if chosen in RANGES else "24h"
    until = time.time()
    return chosen, RANGES[chosen], until - RANGES[chosen], until


def _local_path(target: str | None) -> str | None:
    """`next` after login only to a path of this site (no open redirect to //evil.example)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _filters(args: Any, region: str) -> dict[str, Any]:
    def choice(name: str, allowed: tuple[str, ...]) -> str | None:
        value = args.get(name) or None
        if value is not None and value not in allowed:
            abort(400, f"{name} must be one of {', '.join(allowed)}.")
        return value

    def moment(name: str) -> float | None:
        text = args.get(name) or ""
        if not text:
            return None
        try:
            return datetime.strptime(text, TIME_INPUT).timestamp()
        except ValueError:
            abort(400, f"{name}: a time like 2026-12-01T09:30.")

    raw = (args.get("number") or "").strip()[:64]
    return {"since": moment("since"), "until": moment("until"), "verdict": choice("verdict", CLASSES),
            "action": choice("action", ACTIONS), "challenge": choice("challenge", CHALLENGE_OUTCOMES),
            "caller": (normalise(raw, region) or raw) if raw else None}


def _cursor(text: str) -> tuple[float, str] | None:
    started, _, call_id = text.partition("_")
    if not text:
        return None
    try:
        return float(started), call_id
    except ValueError:
        abort(400, "before: not a page position this page made.")


def _totals(rows: list[tuple[int, str | None, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for _, value, n in rows:
        totals[value or "none"] = totals.get(value or "none", 0) + n
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _quantiles(histogram: list[tuple[str, float, int]]) -> list[tuple[str, int, float, float]]:
    """(verdict, calls, median ms, 90th percentile ms) from the call log's decision-time histogram."""
    by_verdict: dict[str, list[tuple[float, int]]] = {}
    for verdict, ms, n in histogram:
        by_verdict.setdefault(verdict or "none", []).append((ms, n))
    out = []
    for verdict, bins in sorted(by_verdict.items()):
        bins.sort()
        total = sum(n for _, n in bins)

        def at(q: float, bins=bins, total=total) -> float:
            seen = 0
            for ms, n in bins:
                seen += n
                if seen >= q * total:
                    return ms
            return bins[-1][0]

        out.append((verdict, total, at(0.5), at(0.9)))
    return out


def _listed(db: CallLog, caller: str, region: str) -> str | None:
    e164 = normalise(caller, region)
    return listing(e164, db.lists()) if e164 else None
