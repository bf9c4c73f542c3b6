"""FreeSWITCH's event socket (ESL) wire format: messages, read with bounds. Standard library only.

A message is `Name: value` header lines ending in a blank line, then `Content-Length` bytes of body. Header
values are URL-encoded by FreeSWITCH (the reply to `connect` carries every channel variable that way; so do
the headers inside a `text/event-plain` body), so a line is split on LF first and its value decoded after:
decoding first would turn a caller's encoded newline into a header of their own (greenswitch does that).
Limits keep one bad peer from costing more than its own session: a header block or a body over its limit,
or a body cut short by EOF, ends the session with `ESLError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

MAX_HEADER_BYTES = 256 * 1024  # a `connect` reply holds all channel variables: a few KB, more with many SIP headers
MAX_BODY_BYTES = 1024 * 1024
EVENT_PLAIN = "text/event-plain"


class ESLError(Exception):
    """The peer broke the protocol or went away mid-message: the session is over."""


class Stream(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class Message:
    headers: dict[str, str]
    body: str = ""
    event: dict[str, str] = field(default_factory=dict)  # a text/event-plain body's own headers

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def parse_headers(block: bytes) -> dict[str, str]:
    """`Name: value` lines, split on LF only, each value URL-decoded after the split; other lines are ignored."""
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.removesuffix("\r").partition(": ")
        if sep and name.strip():
            headers[name.strip()] = unquote(value)
    return headers


class MessageReader:
    """Messages from a blocking binary stream (a socket's makefile("rb")); `read()` is None at a clean EOF."""

    def __init__(self, stream: Stream, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.stream = stream
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    def read(self) -> Message | None:
        lines: list[bytes] = []
        size = 0
        while True:
            line = self.stream.readline(self.max_header_bytes - size + 1)
            if not line:
                if lines:
                    raise ESLError(f"connection closed inside a header block ({size} bytes)")
                return None
            size += len(line)
            if size > self.max_header_bytes:
                raise ESLError(f"header block over {self.max_header_bytes} bytes")
            if line in (b"\n", b"\r\n"):
                if lines:
                    break
                continue  # blank lines between messages
            lines.append(line)
        headers = parse_headers(b"".join(lines))
        body = self._body(headers.get("Content-Length"))
        if headers.get("Content-Type") == EVENT_PLAIN:
            return Message(headers, body, parse_headers(body.encode().split(b"\n\n", 1)[0]))
        return Message(headers, body)

    def _body(self, length_text: str | None) -> str:
        if length_text is None:
            return ""
        if not length_text.strip().isdecimal():
            raise ESLError(f"Content-Length {length_text[:40]!r} is not a number")
        length = int(length_text)
        if length > self.max_body_bytes:
            raise ESLError(f"Content-Length {length} over the limit of {self.max_body_bytes}")
        data = self.stream.read(length) if length else b""
        if len(data) < length:
            raise ESLError(f"connection closed after {len(data)} of {length} body bytes")
        return data.decode("utf-8", "replace")


def command(text: str) -> bytes:
    """One command on the wire. A command is ours, never a caller's: a blank line inside would end it early."""
    if "\n\n" in text.strip("\n"):
        raise ValueError("an ESL command cannot contain a blank line")
    return (text.strip("\n") + "\n\n").encode()
