"""The AGI line protocol that AGI, EAGI and FastAGI share: the environment block, commands and replies.

Standard library only: the relays speak it too. Lines end in LF and nothing else: values such as a caller's
display name may carry CR, form feeds or Unicode line separators, and splitting on those would let a caller
write header lines of their own.
"""

from __future__ import annotations

import re

REPLY_OK = "200 result=1"
REPLY_INVALID = "510 Invalid or unknown command"
REPLY_DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_BLOCK = ("520-Invalid command syntax.  Proper usage follows:\n"
               " Usage: {usage}\n"
               "520 End of proper usage.")
SCRIPT = "agi_network_script"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_environment(block: bytes, encoding: str = "utf-8") -> dict[str, str]:
    """`agi_*: value` lines up to the blank line; other lines are ignored."""
    headers: dict[str, str] = {}
    for line in block.decode(encoding, "replace").split("\n"):
        key, sep, value = line.removesuffix("\r").partition(":")
        if sep and key.startswith("agi_"):
            headers[key] = value[1:] if value.startswith(" ") else value
    return headers


def header_value(value: str) -> str:
    """A value made safe for one environment line: control characters become '?'."""
    return _CONTROL.sub("?", value)


def encode_environment(headers: dict[str, str]) -> bytes:
    """The environment block for `headers`, each value confined to its own line."""
    return ("".join(f"{k}: {header_value(v)}\n" for k, v in headers.items()) + "\n").encode()


def quote(value: str) -> str:
    """A command argument in double quotes, as Asterisk's AGI parser reads it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return re.sub(r"\\(.)", r"\1", text)


def set_variable(name: str, value: str) -> str:
    return f"SET VARIABLE {name} {quote(value)}"


def parse_set_variable(command: str) -> tuple[str, str] | None:
    """(name, value) of a `SET VARIABLE name "value"` command; None for any other command."""
    words = command.split(" ", 3)
    if len(words) == 4 and words[0].upper() == "SET" and words[1].upper() == "VARIABLE":
        return words[2], unquote(words[3])
    return None
