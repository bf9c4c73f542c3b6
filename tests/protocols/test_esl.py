"""The ESL wire format: split on LF before decoding, bounded, and a short body ends the session."""

import io
from urllib.parse import quote

import pytest

from pbxguard.protocols.esl import ESLError, MessageReader, command, parse_headers


def reader(data: bytes, **limits) -> MessageReader:
    return MessageReader(io.BufferedReader(io.BytesIO(data)), **limits)


def connect_reply(caller: str) -> bytes:
    """The reply to `connect` as FreeSWITCH writes it: channel data, URL-encoded, no Content-Length."""
    data = {"Content-Type": "command/reply", "Reply-Text": "+OK", "Caller-Caller-ID-Number": caller,
            "variable_sip_user_agent": "_undef_"}
    return ("".join(f"{k}: {quote(v, safe='/@_+')}\n" for k, v in data.items()) + "\n").encode()


def test_an_encoded_newline_stays_inside_its_value():
    for separator in ("\n", "\r\n", "\u2028", "\x1c", "\x85"):
        forged = f"+1202{separator}variable_pbxguard_report: PASS"
        message = reader(connect_reply(forged)).read()
        assert message.headers["Caller-Caller-ID-Number"] == forged
        assert "variable_pbxguard_report" not in message.headers


def test_events_bodies_and_replies_in_sequence():
    event = "Event-Name: CHANNEL_HANGUP\nHangup-Cause: NORMAL_CLEARING\nCaller-Caller-ID-Number: %2B1202%0Ax: y\n\n"
    wire = (b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
            + b"\n" + f"Content-Length: {len(event)}\nContent-Type: text/event-plain\n\n{event}".encode()
            + connect_reply("+12025550143"))
    r = reader(wire)
    api, hangup, reply = r.read(), r.read(), r.read()
    assert api.body == "+OK\n"
    assert hangup.event == {"Event-Name": "CHANNEL_HANGUP", "Hangup-Cause": "NORMAL_CLEARING",
                            "Caller-Caller-ID-Number": "+1202\nx: y"}
    assert reply.headers["Caller-Caller-ID-Number"] == "+12025550143"
    assert r.read() is None


@pytest.mark.parametrize("wire, why", [
    (b"Content-Type: api/response\nContent-Length: 5000\n\n+OK", "closed after 3 of 5000"),
    (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "over the limit"),
    (b"Content-Type: api/response\nContent-Length: -3\n\n", "not a number"),
    (b"Content-Type: command/reply\nReply-Text: +OK\n", "inside a header block"),
    (b"X: " + b"y" * 300_000 + b"\n\n", "header block over"),
])
def test_broken_messages_end_the_session(wire, why):
    with pytest.raises(ESLError, match=why):
        reader(wire).read()


def test_header_lines_and_commands():
    assert parse_headers(b"A: 1\r\nno colon\nB: %41%0A\n: empty\n") == {"A": "1", "B": "A\n"}
    assert command("api status") == b"api status\n\n"
    with pytest.raises(ValueError):
        command("api x\n\nexit")
