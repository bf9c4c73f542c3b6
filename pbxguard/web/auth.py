"""Login, sessions and CSRF for the web page.

Passwords are checked against a hash in the configuration (werkzeug's scrypt); sessions are Flask's signed
cookie, HttpOnly and SameSite=Strict, signed with a key kept in a 0600 file. Every POST carries the
session's CSRF token (a hidden form field) and, when the browser sends one, an Origin of this page.
Failed logins are counted per address: past the limit, that address is refused for a minute.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import OrderedDict, deque
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

FAILURE_WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 10_000  # a flood of addresses must not grow the table without bound


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def well_formed(stored_hash: str) -> bool:
    """Whether a configured hash is one `hash_password` makes: method:parameters$salt$hash."""
    method, _, rest = stored_hash.partition(":")
    return method in ("scrypt", "pbkdf2") and rest.count("$") == 2


def password_matches(stored_hash: str, password: str) -> bool:
    """False for an empty or malformed hash, never an exception."""
    if not stored_hash:
        return False
    try:
        return check_password_hash(stored_hash, password)
    except ValueError:
        return False


def session_secret(path: str | Path) -> bytes:
    """The key that signs session cookies: read from `path`, made there (0600) on first use."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise ValueError(f"{path}: the session key is too short; delete the file to make a new one") from None
        return secret
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, offered: str | None) -> bool:
    return bool(expected and offered) and hmac.compare_digest(str(expected), str(offered))


class LoginLimiter:
    """Failed logins per address over the last minute."""

    def __init__(self, failures_per_minute: int) -> None:
        self.limit = failures_per_minute
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self.failures.get(address, deque())
        while times and now - times[0] > FAILURE_WINDOW_S:
            times.popleft()
        return times

    def retry_after(self, address: str, now: float | None = None) -> float:
        """Seconds until `address` may try again; 0 if it may now."""
        now = time.monotonic() if now is None else now
        times = self._recent(address, now)
        return FAILURE_WINDOW_S - (now - times[0]) if len(times) >= self.limit else 0.0

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._recent(address, now)
        times.append(now)
        self.failures[address] = times
        self.failures.move_to_end(address)
        while len(self.failures) > MAX_TRACKED_ADDRESSES:
            self.failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)
