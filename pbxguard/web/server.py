"""Serving the page: waitress (a production WSGI server, pure Python) on the configured loopback address."""

from __future__ import annotations

import logging

from pbxguard.config import Config
from pbxguard.store.calllog import open_call_log
from pbxguard.web import auth
from pbxguard.web.app import create_app

log = logging.getLogger("pbxguard.web")
THREADS = 4  # each holds its own call log connection


class WebError(RuntimeError):
    """Why the page cannot start, in one line for the admin."""


def make_server(cfg: Config, port: int | None = None):
    """A waitress server for the configured page (`port` 0 for any free one), not yet serving."""
    from waitress.server import create_server

    if not cfg.web.password_hash:
        raise WebError(f"web.password_hash is empty in {cfg.path or 'the built-in defaults'}: "
                       "make one with `pbxguard web --hash-password` and put it in the configuration")
    if not auth.well_formed(cfg.web.password_hash):
        raise WebError("web.password_hash is not a hash `pbxguard web --hash-password` makes (scrypt:... or pbkdf2:...)")
    try:
        secret = auth.session_secret(cfg.web.secret_file)
    except (OSError, ValueError) as exc:
        raise WebError(f"web.secret_file {cfg.web.secret_file}: {getattr(exc, 'strerror', None) or exc}") from None
    db = cfg.database

    def open_log():
        return open_call_log(db.path, db.url)

    app = create_app(cfg, open_log, secret)
    try:
        return create_server(app, host=cfg.web.host, port=cfg.web.port if port is None else port, threads=THREADS,
                             ident="pbxguard", clear_untrusted_proxy_headers=True)
    except OSError as exc:
        raise WebError(f"cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror or exc}") from None


def serve(cfg: Config) -> None:
    server = make_server(cfg)
    log.info("web page on http://%s:%s/ (call log: %s)", cfg.web.host, server.effective_port,
             "PostgreSQL" if cfg.database.url else cfg.database.path)
    server.run()
