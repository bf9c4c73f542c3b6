"""Daemon configuration: a YAML file over typed, immutable defaults.

The dataclasses below are the one table of settings: each field's type and default is the schema, and
`conf/pbxguard.yaml` shows every one of them (a test checks it). Unknown keys and wrong types are errors
naming the file, line and key, never silently ignored: a typo in a security setting must not fall back to
a default without anyone noticing. A `Config` never changes; `with_()` makes a changed copy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pbxguard.policy.callers import CallerRules
from pbxguard.policy.identity import ATTESTATION_ACTIONS
from pbxguard.policy.rules import ACTIONS, DEFAULT_RULES, Rule
from pbxguard.shipped import MODELS_DIR


@dataclass(frozen=True)
class Engine:
    models: str = str(MODELS_DIR)
    manifest_sha256: str = ""  # the pin of a site's models (pbxguard train prints it); the shipped ones are pinned
    window_ms: int = 2000

    def screener_args(self) -> dict[str, Any]:
        return {"models_dir": self.models, "window_ms": self.window_ms, "manifest_sha256": self.manifest_sha256}


@dataclass(frozen=True)
class FastAGI:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4573
    header_timeout_s: float = 5.0
    header_limit_bytes: int = 65536
    command_timeout_s: float = 5.0
    max_connections: int = 2000


@dataclass(frozen=True)
class AudioSocket:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9092
    advertise: str = "127.0.0.1:9092"
    first_frame_timeout_s: float = 3.0
    idle_timeout_s: float = 2.0
    max_call_s: float = 60.0
    max_connections: int = 2000


@dataclass(frozen=True)
class EAGI:
    enabled: bool = False
    directory: str = "/run/pbxguard"


@dataclass(frozen=True)
class FreeSWITCH:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8084
    recordings: str = "/run/pbxguard/recordings"
    command_timeout_s: float = 5.0


@dataclass(frozen=True)
class PolicySettings:
    low_confidence_action: str = "CHALLENGE"
    rules: Mapping[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))


@dataclass(frozen=True)
class Database:
    path: str = "/var/lib/pbxguard/calls.db"
    url: str = ""
    spool: str = ""  # rows waiting for the database; "" is `path` + ".spool"
    retry_s: float = 1.0  # how often to reconnect while the database is away

    @property
    def spool_path(self) -> str:
        return self.spool or self.path + ".spool"


@dataclass(frozen=True)
class Captures:
    enabled: bool = False
    directory: str = "/var/lib/pbxguard/captures"
    max_days: float = 30.0
    max_megabytes: float = 2048.0


@dataclass(frozen=True)
class Metrics:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class CallerID(CallerRules):
    """The caller-ID rules (anonymous, call rate, STIR/SHAKEN attestation: `policy.callers`) and the region
    national-format numbers are read in."""

    region: str = "US"


@dataclass(frozen=True)
class Transcript:
    enabled: bool = False
    engine: str = "pocketsphinx"  # or vosk
    vosk_model: str = ""  # a vosk model folder (engine: vosk)
    workers: int = 1  # threads; at most this many transcripts at once
    budget_ms: float = 1500.0  # wall time a verdict waits for its transcript
    unsure_below: float = 0.85  # human verdicts below this confidence are transcribed (and dead air)
    store_words: bool = False  # the words in the call log: personal data


@dataclass(frozen=True)
class Watchdog:
    enabled: bool = True
    stall_s: float = 0.75


@dataclass(frozen=True)
class Log:
    level: str = "info"
    json: bool = False
    full_numbers: bool = False


@dataclass(frozen=True)
class Web:
    host: str = "127.0.0.1"
    port: int = 8440
    password_hash: str = ""
    secret_file: str = "/var/lib/pbxguard/web-secret"
    session_hours: float = 12.0
    secure_cookie: bool = False
    login_failures_per_minute: int = 5
    full_numbers: bool = False


@dataclass(frozen=True)
class Config:
    engine: Engine = Engine()
    fastagi: FastAGI = FastAGI()
    audiosocket: AudioSocket = AudioSocket()
    eagi: EAGI = EAGI()
    freeswitch: FreeSWITCH = FreeSWITCH()
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1")
    policy: PolicySettings = PolicySettings()
    database: Database = Database()
    captures: Captures = Captures()
    metrics: Metrics = Metrics()
    callerid: CallerID = CallerID()
    transcript: Transcript = Transcript()
    watchdog: Watchdog = Watchdog()
    log: Log = Log()
    web: Web = Web()
    workers: int = 0  # daemon processes under `pbxguard serve`, each owning whole calls; 0: one per CPU core
    path: str | None = field(default=None, compare=False)  # the file it came from
    worker: int = field(default=0, compare=False)  # which of the workers this process is (`for_worker`)

    def allowed(self, address: str) -> bool:
        """Whether a peer address may talk to the daemon's listeners."""
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.allow)

    def with_(self, **sections: Any) -> Config:
        """A copy with some settings changed: `with_(fastagi={"port": 0}, allow=("10.0.0.0/8",))`."""
        changes = {name: dataclasses.replace(getattr(self, name), **values) if isinstance(values, dict) else values
                   for name, values in sections.items()}
        return dataclasses.replace(self, **changes)

    def worker_count(self) -> int:
        """How many daemon processes `pbxguard serve` runs: one without the supervisor."""
        if not self.watchdog.enabled:
            return 1
        return self.workers or len(os.sched_getaffinity(0))

    def for_worker(self, index: int) -> Config:
        """Worker `index`'s view: all share the FastAGI port (SO_REUSEPORT); each has its own AudioSocket
        port, the configured one plus its index, which it advertises in its own `EXEC AudioSocket`, and its
        own spool (the spool is one writer's append-only file)."""
        if index == 0:
            return dataclasses.replace(self, worker=0)
        host, _, port = self.audiosocket.advertise.rpartition(":")
        database = self.database
        return dataclasses.replace(
            self.with_(audiosocket={"port": self.audiosocket.port + index, "advertise": f"{host}:{int(port) + index}"},
                       database={"spool": f"{database.spool_path}.{index}"}), worker=index)

    def changed_sections(self, other: Config) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if f.compare and getattr(self, f.name) != getattr(other, f.name)]


SECTIONS = {f.name: f for f in dataclasses.fields(Config) if f.compare}


class ConfigError(ValueError):
    """A configuration problem; str() names the file, line and key."""


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _leaf(node: yaml.Node, kind: Any, where: str, line: str) -> Any:
    value = yaml.safe_load(yaml.serialize(node))
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{line}: '{where}' must be a list")
        return tuple(str(v) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{line}: '{where}' must be {_type_name(kind)}, got {value!r}")
    return value


def _mapping(node: yaml.Node, where: str, source: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: {where or 'top level'} must be a mapping")
    return node.value


def _unknown(key_node: yaml.Node, path: str, expected: typing.Iterable[str], source: str) -> ConfigError:
    return ConfigError(f"{source}:{key_node.start_mark.line + 1}: unknown key '{path}'"
                       f" (expected one of: {', '.join(sorted(expected))})")


def _settings(node: yaml.Node, cls: type, default: Any, where: str, source: str) -> Any:
    """`default` (a settings dataclass) with the values in `node` over it."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key_node, value_node in _mapping(node, where, source):
        key, path = key_node.value, f"{where}.{key_node.value}"
        if key not in hints:
            raise _unknown(key_node, path, hints, source)
        if cls is PolicySettings and key == "rules":
            values[key] = _rules(value_node, default.rules, path, source)
        else:
            values[key] = _leaf(value_node, hints[key], path, f"{source}:{value_node.start_mark.line + 1}")
    return dataclasses.replace(default, **values)


def _rules(node: yaml.Node, defaults: Mapping[str, Rule], where: str, source: str) -> dict[str, Rule]:
    rules = dict(defaults)
    for key_node, value_node in _mapping(node, where, source):
        if key_node.value not in rules:
            raise _unknown(key_node, f"{where}.{key_node.value}", rules, source)
        rules[key_node.value] = _settings(value_node, Rule, rules[key_node.value], f"{where}.{key_node.value}", source)
    return rules


def _validate(cfg: Config, source: str) -> None:
    for net in cfg.allow:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"{source}: 'allow' entry {net!r} is not an IP address or network") from None
    actions = [cfg.policy.low_confidence_action, *(r.action for r in cfg.policy.rules.values())]
    actions += [a for a in (cfg.callerid.anonymous_action, cfg.callerid.rate_action) if a]
    for action in actions:
        if action not in ACTIONS:
            raise ConfigError(f"{source}: policy action {action!r} must be one of {', '.join(ACTIONS)}")
    c = cfg.callerid
    for name in ("attestation_failed_action", "attestation_missing_action", "attestation_c_action"):
        if getattr(c, name) not in ATTESTATION_ACTIONS:
            raise ConfigError(f"{source}: 'callerid.{name}' must be \"\" or CHALLENGE: attestation alone never hangs up a call")
    t = cfg.transcript
    if t.engine not in ("pocketsphinx", "vosk") or (t.engine == "vosk" and t.enabled and not t.vosk_model):
        raise ConfigError(f"{source}: 'transcript.engine' must be pocketsphinx, or vosk with 'transcript.vosk_model'")
    if not (1 <= t.workers <= 64 and 10 <= t.budget_ms <= 10000 and 0 <= t.unsure_below <= 1.01):
        raise ConfigError(f"{source}: 'transcript': workers 1-64, budget_ms 10-10000, unsure_below 0-1.01")
    if cfg.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{source}: 'log.level' must be debug, info, warning or error")
    import phonenumbers

    if cfg.callerid.region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{source}: 'callerid.region' {cfg.callerid.region!r} is not a region code (US, GB, DE, ...)")
    for section in ("fastagi", "audiosocket", "metrics", "freeswitch", "web"):
        if not 0 < getattr(cfg, section).port < 65536:
            raise ConfigError(f"{source}: '{section}.port' must be 1-65535")
    if not 0.2 <= cfg.watchdog.stall_s <= 30.0:
        raise ConfigError(f"{source}: 'watchdog.stall_s' must be 0.2-30 seconds")
    if not 1 <= cfg.web.login_failures_per_minute <= 1000:
        raise ConfigError(f"{source}: 'web.login_failures_per_minute' must be 1-1000")
    if not 0.1 <= cfg.web.session_hours <= 24 * 30:
        raise ConfigError(f"{source}: 'web.session_hours' must be 0.1-720")
    if not 0 <= cfg.workers <= 64:
        raise ConfigError(f"{source}: 'workers' must be 0 (one per CPU core) to 64")
    host, _, port = cfg.audiosocket.advertise.rpartition(":")
    if not (host and port.isdecimal() and cfg.audiosocket.port + cfg.worker_count() - 1 < 65536):
        raise ConfigError(f"{source}: 'audiosocket.advertise' must be host:port, and each worker's port "
                          "(audiosocket.port plus its index) below 65536")
    if not 200 <= cfg.engine.window_ms <= 10000:
        raise ConfigError(f"{source}: 'engine.window_ms' must be 200-10000")


def load(path: str | Path | None = None) -> Config:
    """The configuration in `path` over the defaults (the defaults alone when `path` is None)."""
    if path is None:
        return Config()
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from None
    values: dict[str, Any] = {}
    for key_node, value_node in _mapping(node, "", source) if node is not None else []:
        section = SECTIONS.get(key_node.value)
        if section is None:
            raise _unknown(key_node, key_node.value, SECTIONS, source)
        default = getattr(Config(), section.name)
        if dataclasses.is_dataclass(default):
            values[section.name] = _settings(value_node, type(default), default, section.name, source)
        else:
            values[section.name] = _leaf(value_node, typing.get_type_hints(Config)[section.name], section.name,
                                         f"{source}:{value_node.start_mark.line + 1}")
    cfg = dataclasses.replace(Config(), path=source, **values)
    _validate(cfg, source)
    return cfg
