"""A real `pbxguard web` server on a loopback port (waitress in a thread) and a small HTTP client with cookies."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pbxguard import config
from pbxguard.config import Config
from pbxguard.testing.web import Client as WebClient
from pbxguard.testing.web import WebPage
from pbxguard.web.auth import hash_password

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)  # scrypt is slow by design: once per test run


def web_config(folder: Path, **web) -> Config:
    return config.load(None).with_(database={"path": str(folder / "calls.db")},
                                   captures={"directory": str(folder / "captures")},
                                   web={"password_hash": PASSWORD_HASH, "secret_file": str(folder / "web-secret"), **web})


class Client(WebClient):
    def __init__(self, page: WebPage) -> None:
        super().__init__(page.port)

    def login(self, password: str = PASSWORD) -> int:
        return super().login(password)


@contextlib.contextmanager
def serving(folder: Path, **web):
    """A page over the call log in `folder` with these web settings, and a client not yet logged in."""
    page = WebPage(web_config(folder, **web))
    try:
        yield Client(page)
    finally:
        page.stop()
