"""A small interpreter for the part of Asterisk's dialplan language the shipped dialplan uses.

No Asterisk binary is available on the test machines (Debian 12 has none), so the tests run the shipped
`extensions_pbxguard.conf` here: contexts, `exten =>`/`same =>` with `n(label)` priorities, `${VAR}`,
`${ARGn}`, `LOCAL()`, `${IF(c?a:b)}`, `$[...]` expressions (= != < > <= >= + - & |), and the applications
Answer, NoOp, Set, AGI, EAGI, GotoIf, Goto, Gosub, Return, Hangup, Playback, SayDigits, Read and Queue.
AGI() and EAGI() are handed to a callback that talks to the real daemon over real sockets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KNOWN_APPS = {"Answer", "NoOp", "Set", "AGI", "EAGI", "GotoIf", "Goto", "Gosub", "Return", "Hangup", "Playback",
              "SayDigits", "Read", "Queue"}


@dataclass
class Step:
    app: str
    args: str
    label: str | None


def parse(path: Path) -> dict[str, dict[str, list[Step]]]:
    """context -> extension pattern -> steps in priority order."""
    contexts: dict[str, dict[str, list[Step]]] = {}
    context = exten = ""
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            context = line.strip("[]")
            contexts[context] = {}
            continue
        m = re.match(r"(exten|same)\s*=>\s*(?:([^,]+),)?(\d+|n)(?:\((\w+)\))?,(\w+)\((.*)\)$", line)
        if not m:
            raise SyntaxError(f"{path}: cannot parse: {raw}")
        kind, pattern, _priority, label, app, args = m.groups()
        if not context:
            raise SyntaxError(f"{path}: an extension before any [context]: {raw}")
        if kind == "exten":
            exten = pattern
            contexts[context][exten] = []
        contexts[context][exten].append(Step(app, args, label))
    return contexts


def split_args(text: str) -> list[str]:
    out, depth, current = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return out + [current]


@dataclass
class Channel:
    caller: str = "+15551230000"
    variables: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)  # applications that touch the caller, in order
    hangup_cause: str | None = None
    queued: str | None = None
    dtmf: list[str] = field(default_factory=list)  # what the caller will press at each Read()


class Hangup(Exception):
    pass


class UnmodelledApplication(Exception):
    """The dialplan uses an application this interpreter does not model: the test must fail, not guess."""


class Interpreter:
    def __init__(self, contexts, agi: Callable[[str, list[str], Channel], tuple[str, dict[str, str]]]) -> None:
        self.contexts = contexts
        self.agi = agi

    def run(self, channel: Channel, context: str, exten: str) -> Channel:
        try:
            self._run(channel, context, exten, 0, [])
        except Hangup:
            pass
        return channel

    def _run(self, channel: Channel, context: str, exten: str, index: int, args: list[str]) -> None:
        steps = self._steps(context, exten)
        frame = {"locals": {}, "args": args}
        while index < len(steps):
            step = steps[index]
            index += 1
            jump = self._execute(channel, step, frame, context, exten)
            if jump == "return":
                return
            if isinstance(jump, str):
                index = next(i for i, s in enumerate(steps) if s.label == jump)

    def _steps(self, context: str, exten: str) -> list[Step]:
        extens = self.contexts[context]
        if exten in extens:
            return extens[exten]
        for pattern, steps in extens.items():
            if pattern.startswith("_") and re.fullmatch(pattern[1:].replace("X", "[0-9]").replace(".", ".+"), exten):
                return steps
        raise KeyError(f"no extension {exten} in [{context}]")

    def substitute(self, text: str, channel: Channel, frame: dict) -> str:
        pattern = re.compile(r"\$\{([^${}\[\]]*)\}|\$\[([^$\[\]]*)\]")
        while True:
            m = pattern.search(text)
            if not m:
                return text
            value = self._variable(m.group(1), channel, frame) if m.group(1) is not None else evaluate(m.group(2))
            text = text[: m.start()] + value + text[m.end() :]

    def _variable(self, name: str, channel: Channel, frame: dict) -> str:
        if name.startswith("IF("):
            cond, _, rest = name[3:-1].partition("?")
            yes, _, no = rest.partition(":")
            return yes if cond.strip() not in ("", "0") else no
        if name == "CALLERID(num)":
            return channel.caller
        if re.fullmatch(r"ARG\d+", name):
            k = int(name[3:]) - 1
            return frame["args"][k] if k < len(frame["args"]) else ""
        return frame["locals"].get(name, channel.variables.get(name, ""))

    def _execute(self, channel: Channel, step: Step, frame: dict, context: str, exten: str):
        args = [self.substitute(a, channel, frame) for a in split_args(step.args)]
        app = step.app
        if app not in KNOWN_APPS:
            raise UnmodelledApplication(app)
        if app == "Set":
            name, _, value = step.args.partition("=")
            value = self.substitute(value, channel, frame)
            if name.startswith("LOCAL("):
                frame["locals"][name[6:-1]] = value
            else:
                channel.variables[self.substitute(name, channel, frame)] = value
        elif app in ("AGI", "EAGI"):
            status, variables = self.agi(args[0], args[1:], channel)
            channel.variables["AGISTATUS"] = status
            channel.variables.update(variables)
        elif app == "GotoIf":
            cond, _, targets = ",".join(args).partition("?")
            yes, _, no = targets.partition(":")
            target = yes if cond.strip() not in ("", "0") else no
            return target or None
        elif app == "Goto":
            return args[0]
        elif app == "Gosub":
            target = ",".join(args)
            m = re.match(r"([^,]+),([^,]+),1(?:\((.*)\))?$", target)
            if m is None:
                raise SyntaxError(f"Gosub({target}): expected context,extension,1(args)")
            self._run(channel, m.group(1), m.group(2), 0, split_args(m.group(3)) if m.group(3) else [])
        elif app == "Return":
            channel.variables["GOSUB_RETVAL"] = args[0] if args else ""
            return "return"
        elif app == "Hangup":
            channel.hangup_cause = args[0] or "16"
            raise Hangup
        elif app in ("Playback", "SayDigits"):
            channel.log.append(f"{app}({args[0]})")
        elif app == "Read":
            channel.variables[args[0]] = channel.dtmf.pop(0) if channel.dtmf else ""
            channel.log.append(f"Read -> {channel.variables[args[0]]!r}")
        elif app == "Queue":
            channel.queued = args[0]
            raise Hangup
        return None


def evaluate(expr: str) -> str:
    """An Asterisk `$[...]` expression over quoted strings and integers."""
    tokens = re.findall(r'"[^"]*"|!=|>=|<=|=|<|>|&|\||\+|-|\d+|\S+', expr)
    py = []
    for t in tokens:
        py.append({"=": "==", "&": " and ", "|": " or "}.get(t, t) if not t.startswith('"') else repr(t[1:-1]))
    value = eval(" ".join(py), {"__builtins__": {}}, {})  # noqa: S307 - tokens are quoted strings, ints, operators
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
