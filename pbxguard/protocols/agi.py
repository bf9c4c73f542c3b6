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


MSET_MAX = 24  # app MSet takes at most 24 name=value pairs
# What passes MSet unchanged: it splits its argument on commas, then each pair at its first '=', and strips
# quotes and backslashes on the way.
_PLAIN = re.compile(r"[A-Za-z0-9_.:+-]*")


def set_variables(variables: dict[str, str]) -> list[str]:
    """The commands that set `variables`, in order: one `EXEC MSet` (one round trip instead of one per variable)
    when every name and value is plain, else one SET VARIABLE each."""
    if 1 < len(variables) <= MSET_MAX and all(_PLAIN.fullmatch(n) and n and _PLAIN.fullmatch(v) for n, v in variables.items()):
        return ['EXEC MSet "' + ",".join(f"{n}={v}" for n, v in variables.items()) + '"']
    return [set_variable(name, value) for name, value in variables.items()]


def parse_variables(command: str) -> list[tuple[str, str]] | None:
    """The (name, value) pairs a `SET VARIABLE name "value"` or `EXEC MSet "n1=v1,n2=v2"` command sets, in
    order; None for any other command."""
    words = command.split(" ", 3)
    if len(words) == 4 and words[0].upper() == "SET" and words[1].upper() == "VARIABLE":
        return [(words[2], unquote(words[3]))]
    words = command.split(" ", 2)
    if len(words) == 3 and words[0].upper() == "EXEC" and words[1].upper() == "MSET":
        pairs = (pair.partition("=") for pair in unquote(words[2]).split(","))
        return [(name, value) for name, sep, value in pairs if sep and name]
    return None
