"""Daemon configuration: a YAML file, validated against a schema with defaults.

Unknown keys and wrong types are errors naming the key and the line, never silently ignored: a typo in a
security setting must not fall back to a default without anyone noticing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pbxguard.policy import ACTIONS, DEFAULT_RULES
from pbxguard.screener.models import DEFAULT_MODELS_DIR
from pbxguard.verdict import CLASSES

RULE_SCHEMA = {"action": str, "min_confidence": float, "require_proof": bool}

# key -> type for leaves, nested dicts for sections; defaults live in DEFAULTS.
SCHEMA: dict[str, Any] = {
    "engine": {"models": str, "window_ms": int},
    "fastagi": {"enabled": bool, "host": str, "port": int, "header_timeout_s": float, "header_limit_bytes": int,
                "command_timeout_s": float},
    "audiosocket": {"enabled": bool, "host": str, "port": int, "advertise": str, "first_frame_timeout_s": float},
    "eagi": {"enabled": bool, "directory": str},
    "freeswitch": {"enabled": bool, "host": str, "port": int, "recordings": str, "command_timeout_s": float},
    "allow": list,
    "policy": {"low_confidence_action": str, "rules": {label: RULE_SCHEMA for label in CLASSES}},
    "database": {"path": str, "url": str},
    "captures": {"enabled": bool, "directory": str, "max_days": float, "max_megabytes": float},
    "metrics": {"enabled": bool, "host": str, "port": int},
    "callerid": {"region": str, "anonymous_action": str, "max_calls_per_minute": int, "rate_action": str},
    "log": {"level": str, "json": bool, "full_numbers": bool},
}

DEFAULTS: dict[str, Any] = {
    "engine": {"models": str(DEFAULT_MODELS_DIR), "window_ms": 2000},
    "fastagi": {"enabled": True, "host": "127.0.0.1", "port": 4573, "header_timeout_s": 5.0,
                "header_limit_bytes": 65536, "command_timeout_s": 5.0},
    "audiosocket": {"enabled": True, "host": "127.0.0.1", "port": 9092, "advertise": "127.0.0.1:9092",
                    "first_frame_timeout_s": 3.0},
    "eagi": {"enabled": False, "directory": "/run/pbxguard"},
    "freeswitch": {"enabled": False, "host": "127.0.0.1", "port": 8084, "recordings": "/run/pbxguard/recordings",
                   "command_timeout_s": 5.0},
    "allow": ["127.0.0.0/8", "::1"],
    "policy": {"low_confidence_action": "CHALLENGE", "rules": {k: dict(v) for k, v in DEFAULT_RULES.items()}},
    "database": {"path": "/var/lib/pbxguard/calls.db", "url": ""},
    "captures": {"enabled": False, "directory": "/var/lib/pbxguard/captures", "max_days": 30.0, "max_megabytes": 2048.0},
    "metrics": {"enabled": True, "host": "127.0.0.1", "port": 9464},
    "callerid": {"region": "US", "anonymous_action": "", "max_calls_per_minute": 0, "rate_action": "CHALLENGE"},
    "log": {"level": "info", "json": False, "full_numbers": False},
}


class ConfigError(ValueError):
    """A configuration problem; str() names the file, line and key."""


@dataclass(frozen=True)
class Config:
    data: dict[str, Any]
    path: str | None = None

    def __getitem__(self, section: str) -> Any:
        return self.data[section]

    def allowed(self, address: str) -> bool:
        """Whether a peer address may talk to the daemon's listeners."""
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.data["allow"])


def _merge(defaults: dict, override: dict) -> dict:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _check(node: yaml.Node, schema: Any, where: str, source: str) -> Any:
    """Python value of `node`, checked against `schema`."""
    line = f"{source}:{node.start_mark.line + 1}"
    if isinstance(schema, dict):
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(f"{line}: {where or 'top level'} must be a mapping")
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            path = f"{where}.{key}" if where else key
            if key not in schema:
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: unknown key '{path}'"
                                  f" (expected one of: {', '.join(sorted(schema))})")
            out[key] = _check(value_node, schema[key], path, source)
        return out
    value = yaml.safe_load(yaml.serialize(node))
    if schema is list:
        if not isinstance(value, list):
            raise ConfigError(f"{line}: '{where}' must be a list")
        return value
    if schema is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, schema) or (schema is int and isinstance(value, bool)):
        raise ConfigError(f"{line}: '{where}' must be {schema.__name__}, got {value!r}")
    return value


def _validate_values(data: dict, source: str) -> None:
    for net in data["allow"]:
        try:
            ipaddress.ip_network(str(net), strict=False)
        except ValueError:
            raise ConfigError(f"{source}: 'allow' entry {net!r} is not an IP address or network") from None
    actions = [data["policy"]["low_confidence_action"]] + [r["action"] for r in data["policy"]["rules"].values()]
    actions += [a for a in (data["callerid"]["anonymous_action"], data["callerid"]["rate_action"]) if a]
    for action in actions:
        if action not in ACTIONS:
            raise ConfigError(f"{source}: policy action {action!r} must be one of {', '.join(ACTIONS)}")
    if data["log"]["level"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{source}: 'log.level' must be debug, info, warning or error")
    import phonenumbers

    if data["callerid"]["region"] not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{source}: 'callerid.region' {data['callerid']['region']!r} is not a region code (US, GB, DE, ...)")
    for section in ("fastagi", "audiosocket", "metrics", "freeswitch"):
        if not 0 < data[section]["port"] < 65536:
            raise ConfigError(f"{source}: '{section}.port' must be 1-65535")
    if not 200 <= data["engine"]["window_ms"] <= 10000:
        raise ConfigError(f"{source}: 'engine.window_ms' must be 200-10000")


def load(path: str | Path | None = None) -> Config:
    """The configuration in `path` over the defaults (the defaults alone when `path` is None)."""
    if path is None:
        return Config(_merge(DEFAULTS, {}))
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from None
    data = _check(node, SCHEMA, "", source) if node is not None else {}
    merged = _merge(DEFAULTS, data)
    _validate_values(merged, source)
    return Config(merged, source)
