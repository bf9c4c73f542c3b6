"""`pbxguard doctor`: is this host's pbxguard able to screen calls? Each check is one line, and a problem's
line says how to fix it: the models, the extras a setting needs, the unit, the folders the daemon writes
(as its user and inside the unit's ProtectSystem=strict), the call log, the listeners and the EAGI relay's
sockets, and, given the Asterisk CLI, the modules and the dialplan context pbxguard needs there.

`check-config` runs the first part (what would stop `serve`); `doctor` also looks at the running host.
"""

from __future__ import annotations

import errno
import grp
import importlib.util
import os
import pwd
import shlex
import socket
import sqlite3
import stat
import subprocess
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pbxguard import BLAS_CORETYPE
from pbxguard.config import Config
from pbxguard.install import STATE, UNIT_PATH, UNREADABLE_FIX, USER, runs_as, user_exists

RUNTIME = Path("/run/pbxguard")
# Folders the unit (ProtectSystem=strict) lets the daemon write without ReadWritePaths=: its
# StateDirectory and RuntimeDirectory, which systemd creates for the unit's user, and its private /tmp.
UNIT_WRITABLE = (STATE, RUNTIME, Path("/tmp"), Path("/var/tmp"))
ASTERISK_MODULES = {"res_agi": "FastAGI", "app_audiosocket": "the AudioSocket() application",
                    "res_audiosocket": "AudioSocket's transport"}
ASTERISK_CONTEXT = "pbxguard-screen"


@dataclass(frozen=True)
class Finding:
    topic: str
    said: str
    fix: str = ""  # empty when the check passed

    @property
    def ok(self) -> bool:
        return not self.fix

    def line(self) -> str:
        return f"ok    {self.topic}: {self.said}" if self.ok else f"FAIL  {self.topic}: {self.said}; fix: {self.fix}"


def startup_checks(cfg: Config) -> list[Finding]:
    """What would stop `serve` with this configuration: models that do not load, a missing extra."""
    from pbxguard.screener.screener import Screener

    found = []
    try:
        screener = Screener(**cfg.engine.screener_args())
    except Exception as exc:  # whatever the loader refuses, said in one line
        found.append(Finding("models", f"{cfg.engine.models}: {exc}",
                             "reinstall pbxguard for the shipped models, or set engine.models and engine.manifest_sha256 "
                             "to a folder and the pin `pbxguard train` printed for it"))
    else:
        found.append(Finding("models", f"{screener.version} loaded from {cfg.engine.models}, every file's sha256 checked"))
    found.append(check_blas())
    if cfg.freeswitch.enabled and importlib.util.find_spec("greenswitch") is None:
        found.append(Finding("extras", "freeswitch.enabled needs greenswitch", "pip install 'pbxguard[freeswitch]'"))
    if cfg.database.url.startswith("postgres") and importlib.util.find_spec("psycopg") is None:
        found.append(Finding("extras", "a PostgreSQL database.url needs psycopg", "pip install 'pbxguard[postgres]'"))
    return found


def check_blas() -> Finding:
    """Whether OpenBLAS runs the kernel pbxguard pins on import (BLAS_CORETYPE), the one the model was trained with."""
    import numpy  # noqa: F401  (loads OpenBLAS, for threadpoolctl to see)
    from threadpoolctl import threadpool_info

    kernels = sorted({str(i.get("architecture")) for i in threadpool_info() if i["internal_api"] == "openblas"})
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    if pinned != BLAS_CORETYPE:
        return Finding("blas", f"OpenBLAS kernel {', '.join(kernels)}: not pinned on this CPU (x86-64 with AVX2 only); "
                               "features may differ from training's in the last bits")
    if kernels != [BLAS_CORETYPE]:
        return Finding("blas", f"OpenBLAS runs {', '.join(kernels)}, not {BLAS_CORETYPE}",
                       "import pbxguard before numpy (the pin must be set before OpenBLAS loads)")
    return Finding("blas", f"OpenBLAS kernel {BLAS_CORETYPE}, the one the shipped model was trained with")


@dataclass
class Unit:
    """The installed unit and its drop-ins, as far as doctor needs them."""

    path: Path
    settings: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Unit:
        unit = cls(path)
        for part in [path, *sorted(Path(f"{path}.d").glob("*.conf"))]:
            if part.exists():
                for line in part.read_text().splitlines():
                    key, sep, value = line.strip().partition("=")
                    if sep and not key.startswith(("#", ";")):
                        unit.settings.setdefault(key.strip(), []).extend(value.split())
        return unit

    @property
    def user(self) -> str:
        return (self.settings.get("User") or [USER])[-1]

    @property
    def writable(self) -> list[Path]:
        return [*UNIT_WRITABLE, *(Path(p.lstrip("-")) for p in self.settings.get("ReadWritePaths", []))]


def check_unit(unit: Unit) -> list[Finding]:
    if not unit.path.exists():
        return [Finding("unit", f"no {unit.path}", "pbxguard install")]
    found = [Finding("unit", f"{unit.path}, runs as {unit.user}")]
    if not user_exists(unit.user):
        found.append(Finding("user", f"the unit's user {unit.user} does not exist", "pbxguard install"))
    start = (unit.settings.get("ExecStart") or ["(none)"])[0]
    if not os.access(start, os.X_OK):
        found.append(Finding("unit", f"ExecStart runs {start}, which is not there", "pbxguard install (it links /usr/local/bin/pbxguard)"))
    elif os.geteuid() == 0 and user_exists(unit.user):
        unreadable = runs_as(unit.user, Path(start))
        found.append(Finding("unit", f"{unit.user} cannot run {start} ({unreadable})", UNREADABLE_FIX) if unreadable
                     else Finding("unit", f"{unit.user} can run {start}"))
    return found


def _may_write(path: Path, user: str) -> bool:
    """Whether `user` may create or change entries in the existing folder `path` (its mode bits and groups)."""
    if user == "root":
        return True
    info, who = path.stat(), pwd.getpwnam(user)
    groups = {who.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}
    if info.st_uid == who.pw_uid:
        return bool(info.st_mode & stat.S_IWUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IWGRP)
    return bool(info.st_mode & stat.S_IWOTH)


def _nearest(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def check_folder(topic: str, folder: Path, unit: Unit) -> list[Finding]:
    """A folder the daemon writes: inside the unit's writable folders, and writable by the unit's user."""
    if not any(folder.is_relative_to(w) for w in unit.writable):
        return [Finding(topic, f"{folder} is outside the folders the unit may write ({', '.join(map(str, unit.writable))})",
                        f"move it under {STATE}, or `systemctl edit pbxguard` and add ReadWritePaths={folder}")]
    if not user_exists(unit.user):
        return []  # said once by check_unit
    if any(folder.is_relative_to(d) and not d.exists() for d in (STATE, RUNTIME)):
        return [Finding(topic, f"{folder} will be made for {unit.user} at start (systemd makes the unit's own folders)")]
    if not _may_write(_nearest(folder), unit.user):
        return [Finding(topic, f"{unit.user} may not write {_nearest(folder)}", f"chown {unit.user}: {_nearest(folder)}")]
    return [Finding(topic, f"{folder} writable by {unit.user}")]


def check_call_log(cfg: Config, unit: Unit) -> list[Finding]:
    if cfg.database.url:
        return [_check_postgres(cfg.database.url)]
    db = Path(cfg.database.path)
    found = check_folder("call log", db.parent, unit) + check_folder("spool", Path(cfg.database.spool_path).parent, unit)
    if not db.exists():
        return found + [Finding("call log", f"{db} not there yet (the daemon creates it at start)")]
    for part in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if part.exists() and user_exists(unit.user) and part.stat().st_uid != pwd.getpwnam(unit.user).pw_uid and unit.user != "root":
            found.append(Finding("call log", f"{part} belongs to {pwd.getpwuid(part.stat().st_uid).pw_name}, not {unit.user} "
                                 "(made by a command run as another user?)", f"chown {unit.user}: {part}"))
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            calls = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    except sqlite3.Error as exc:
        return found + [Finding("call log", f"{db} is not a pbxguard call log ({exc})",
                                "move it away (the daemon makes a new one), or point database.path at the right file")]
    return found + [Finding("call log", f"SQLite {db}: schema {version}, {calls} calls")]


def _check_postgres(url: str) -> Finding:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except Exception as exc:  # a driver's many failures, one line
        return Finding("call log", f"PostgreSQL at {_without_password(url)}: {str(exc).strip().splitlines()[0]}",
                       "is PostgreSQL running, and do database.url's role and database exist? (psql \"<url>\" tells)")
    return Finding("call log", f"PostgreSQL at {_without_password(url)}: schema {version[0] if version else 'not made yet'}")


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


def _listeners(cfg: Config) -> Iterable[tuple[str, str, int]]:
    for name in ("fastagi", "audiosocket", "freeswitch", "metrics"):
        section = getattr(cfg, name)
        if section.enabled:
            yield name, section.host, section.port


def _pbxguard_answers(cfg: Config) -> bool:
    if not cfg.metrics.enabled:
        return False
    host = f"[{cfg.metrics.host}]" if ":" in cfg.metrics.host else cfg.metrics.host
    try:
        with urllib.request.urlopen(f"http://{host}:{cfg.metrics.port}/metrics", timeout=2) as reply:
            return b"pbxguard_model_info" in reply.read()
    except OSError:
        return False


def check_listeners(cfg: Config) -> list[Finding]:
    found, silent = [], []
    running = _pbxguard_answers(cfg)
    for name, host, port in _listeners(cfg):
        where = f"{name} {host}:{port}"
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            pass
        else:
            found.append(Finding("listener", f"{where}: {'pbxguard listens' if running else 'something listens'}"))
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                fix = {errno.EADDRNOTAVAIL: f"set {name}.host to an address of this host",
                       errno.EACCES: f"use a {name}.port of 1024 or more (the unit has no capabilities)"}
                found.append(Finding("listener", f"{where}: cannot listen there ({exc.strerror})",
                                     fix.get(exc.errno or 0, f"free the port (ss -ltnp 'sport = :{port}') or change {name}.port")))
                continue
        silent.append(where)
    if silent:
        found.append(Finding("listener", f"nothing listens on {', '.join(silent)}: the daemon is not running",
                             "systemctl start pbxguard, then journalctl -u pbxguard -n 50 if it stops"))
    return found


def check_eagi(cfg: Config, unit: Unit) -> list[Finding]:
    if not cfg.eagi.enabled:
        return []
    found = []
    for name in ("agi.sock", "audio.sock"):
        path = Path(cfg.eagi.directory) / name
        if not path.exists():
            found.append(Finding("eagi", f"no {path}", "start the daemon (it makes the relay's sockets)"))
    if user_exists("asterisk") and "asterisk" not in grp.getgrnam(unit.user).gr_mem and user_exists(unit.user):
        found.append(Finding("eagi", f"the user asterisk is not in the group {unit.user}, so the relay cannot open the sockets",
                             f"usermod -aG {unit.user} asterisk, then restart Asterisk"))
    return found or [Finding("eagi", f"relay sockets in {cfg.eagi.directory}")]


def check_asterisk(cli: str) -> list[Finding]:
    """Through the Asterisk CLI (`asterisk -rx`, or `asterisk -C <conf> -rx`): pbxguard's modules and dialplan context."""

    def ask(command: str) -> str:
        done = subprocess.run([*shlex.split(cli), command], capture_output=True, text=True, timeout=20)
        said = done.stdout + done.stderr
        if done.returncode != 0 or "Unable to connect" in said:
            raise OSError(said.strip().splitlines()[-1] if said.strip() else f"exit status {done.returncode}")
        return said

    found = []
    try:
        for module, role in ASTERISK_MODULES.items():
            listed = [line for line in ask(f"module show like {module}").splitlines() if line.startswith(f"{module}.so")]
            if listed and "Running" in listed[0]:
                found.append(Finding("asterisk", f"{module} running"))
            else:
                found.append(Finding("asterisk", f"{module} ({role}) is not loaded",
                                     f"asterisk -rx 'module load {module}.so', and load => {module}.so in modules.conf"))
        shown = ask(f"dialplan show {ASTERISK_CONTEXT}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return found + [Finding("asterisk", f"{cli} did not answer: {exc}",
                                "is Asterisk running, and may this user use its CLI (root, or the asterisk group)?")]
    if f"'{ASTERISK_CONTEXT}'" in shown and "There is no existence" in shown:
        found.append(Finding("asterisk", f"no [{ASTERISK_CONTEXT}] context in the dialplan",
                             "#include extensions_pbxguard.conf in extensions.conf, then asterisk -rx 'dialplan reload' "
                             "(README, \"Asterisk\")"))
    else:
        found.append(Finding("asterisk", f"[{ASTERISK_CONTEXT}] in the dialplan"))
    return found


def examine(cfg: Config, unit_path: Path = UNIT_PATH, asterisk_cli: str = "") -> list[Finding]:
    unit = Unit.read(unit_path)
    found = startup_checks(cfg) + check_unit(unit) + check_call_log(cfg, unit)
    if cfg.captures.enabled:
        found += check_folder("captures", Path(cfg.captures.directory), unit)
    if cfg.freeswitch.enabled:
        found += check_folder("freeswitch", Path(cfg.freeswitch.recordings), unit)
    found += check_listeners(cfg) + check_eagi(cfg, unit)
    if asterisk_cli:
        found += check_asterisk(asterisk_cli)
    return found
