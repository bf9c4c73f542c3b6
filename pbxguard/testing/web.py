"""`pbxguard web` in a thread on a free loopback port, and a client for it: one browser's worth of cookies,
the CSRF token read off the forms.

For the tests and the page's benchmark; a real browser is driven by the browser test.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from http.cookies import SimpleCookie

from pbxguard.config import Config
from pbxguard.web.server import make_server


class WebPage:
    """The configured page served by waitress in a thread, on a free port."""

    def __init__(self, cfg: Config) -> None:
        self.server = make_server(cfg, port=0)
        self.port = int(self.server.effective_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            # waitress has no shutdown from another thread: close() pulls the socket from under its select().
            if not self.stopping:
                raise

    def stop(self) -> None:
        self.stopping = True
        self.server.close()
        self.thread.join(5)


class Client:
    """One browser's worth of cookies; no redirects followed, so a test sees each answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.set_cookie_headers.append(header)
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        conn.close()
        return response.status, response.headers, data

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], **kwargs):
        return self.request("POST", path, form=form, **kwargs)

    def csrf(self, path: str = "/login") -> str:
        status, _, body = self.get(path)
        assert status == 200, (path, status)
        found = re.search(rb'name="csrf" value="([^"]+)"', body)
        assert found, f"no CSRF token on {path}"
        return found.group(1).decode()

    def login(self, password: str) -> int:
        status, _, _ = self.post("/login", {"csrf": self.csrf(), "password": password})
        return status
