"""`pbxguard install`: the production install on a Debian host, as the shipped unit expects it.

It creates the system user, the configuration and state folders with their modes, copies the shipped
configuration (never over an admin's own), links the commands into /usr/local/bin (where the unit runs them
from) and installs the unit; then it prints what is left to do by hand: start the unit and add the dialplan
lines. It installs no packages. Running it again changes only what is missing or different.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pbxguard.shipped import CONFIG_FILE, DIALPLAN, UNIT_FILE, WEB_UNIT_FILE

USER = "pbxguard"
ETC = Path("/etc/pbxguard")
CONFIG_PATH = ETC / "pbxguard.yaml"
STATE = Path("/var/lib/pbxguard")
UNIT_PATH = Path("/etc/systemd/system/pbxguard.service")
WEB_UNIT_PATH = Path("/etc/systemd/system/pbxguard-web.service")
BIN = Path("/usr/local/bin")
COMMANDS = ("pbxguard", "pbxguard-eagi")
# The unit's ProtectHome=yes hides these from the daemon: a venv under them cannot be run by it.
HIDDEN_BY_UNIT = (Path("/home"), Path("/root"), Path("/run/user"))
PBX_USERS = ("asterisk", "freeswitch")  # the PBX's user joins the group for the relay's sockets in /run/pbxguard


class InstallError(RuntimeError):
    """What stops the install, said in one line with what to do."""


@dataclass(frozen=True)
class Step:
    says: str
    run: Callable[[], None]


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def installed_commands() -> dict[str, Path]:
    """The commands of the environment this pbxguard runs in (a venv's bin/)."""
    bin_dir = Path(sys.executable).parent
    found = {name: bin_dir / name for name in COMMANDS if (bin_dir / name).exists()}
    if "pbxguard" not in found:
        raise InstallError(f"no pbxguard command beside {sys.executable}: install the package into a venv first "
                           "(python3 -m venv /opt/pbxguard && /opt/pbxguard/bin/pip install pbxguard)")
    return found


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")


def _folder(path: Path, mode: int, owner: str, group: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
    path.chmod(mode)


def _differs(path: Path, mode: int, owner: str, group: str) -> bool:
    if not path.is_dir() or not user_exists(owner) or not user_exists(group):
        return True
    info = path.stat()
    return (info.st_mode & 0o7777, info.st_uid, info.st_gid) != (mode, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)


def _strangers(path: Path, owner: str) -> bool:
    """Files in the state folder that the daemon's user does not own (left by commands run as root)."""
    uid = pwd.getpwnam(owner).pw_uid if user_exists(owner) else -1
    return path.is_dir() and any(item.lstat().st_uid != uid for item in path.rglob("*"))


def _own_tree(path: Path, owner: str) -> None:
    """As systemd's StateDirectory= does: files left there by another user (root's test runs) become the daemon's."""
    uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(owner).gr_gid
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, gid, follow_symlinks=False)


def _link(name: str, target: Path) -> Step | None:
    link = BIN / name
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return None
    if link.exists() and not link.is_symlink():
        raise InstallError(f"{link} exists and is not a link (another pbxguard install?): remove it, then run again")

    def make() -> None:
        link.unlink(missing_ok=True)
        link.symlink_to(target)

    return Step(f"link {link} -> {target}", make)


def _copy(source: Path, target: Path, mode: int, group: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chown(target, 0, grp.getgrnam(group).gr_gid)
    target.chmod(mode)


def plan() -> list[Step]:
    """What `install` would do on this host, in order; empty when everything is in place."""
    user = USER  # the unit's User=
    commands = installed_commands()
    for hidden in HIDDEN_BY_UNIT:
        if commands["pbxguard"].is_relative_to(hidden):
            raise InstallError(f"pbxguard is installed under {hidden}, which the unit (ProtectHome=yes) hides from the "
                               "daemon: install it into a venv elsewhere, e.g. /opt/pbxguard")
    steps = []
    if not user_exists(user):
        steps.append(Step(f"create the system user {user} (home {STATE}, no login shell)",
                          lambda: _run("useradd", "--system", "--user-group", "--home-dir", str(STATE), "--no-create-home",
                                       "--shell", "/usr/sbin/nologin", user)))
    if _differs(ETC, 0o750, "root", user) or _differs(STATE, 0o750, user, user) or _strangers(STATE, user):
        def folders() -> None:
            _folder(ETC, 0o750, "root", user)
            _folder(STATE, 0o750, user, user)
            _own_tree(STATE, user)

        steps.append(Step(f"make the folders {ETC} (root:{user} 0750) and {STATE} ({user}:{user} 0750)", folders))
    if not CONFIG_PATH.exists():
        steps.append(Step(f"copy the shipped configuration to {CONFIG_PATH} (root:{user} 0640)",
                          lambda: _copy(CONFIG_FILE, CONFIG_PATH, 0o640, user)))
    for name, target in commands.items():
        link = _link(name, target)
        if link:
            steps.append(link)
    for unit, path in ((UNIT_FILE, UNIT_PATH), (WEB_UNIT_FILE, WEB_UNIT_PATH)):
        if not path.exists() or path.read_bytes() != unit.read_bytes():
            steps.append(Step(f"install the unit {path}", functools.partial(_copy, unit, path, 0o644, "root")))
    for pbx in PBX_USERS:
        if user_exists(pbx) and user not in {g.gr_name for g in grp.getgrall() if pbx in g.gr_mem}:
            steps.append(Step(f"add the user {pbx} to the group {user} (the EAGI relay's and recordings' folders)",
                              functools.partial(_run, "usermod", "--append", "--groups", user, pbx)))
    return steps


def runs_as(user: str, command: Path) -> str:
    """Empty when `user` can run `command --version` (the venv, its Python and the package readable by it), else why not."""
    try:
        done = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", str(command), "--version"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    said = (done.stderr or done.stdout).strip()
    return "" if done.returncode == 0 else (said.splitlines()[-1] if said else f"exit status {done.returncode}")


UNREADABLE_FIX = ("install pbxguard into a venv that every user can read, made from a Python every user can read: "
                  "/usr/bin/python3 -m venv /opt/pbxguard")


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def next_steps() -> list[str]:
    started = ("systemctl daemon-reload && systemctl enable --now pbxguard" if systemd_running() else
               "systemd is not running on this host: start `pbxguard serve` (it reads /etc/pbxguard/pbxguard.yaml) "
               "as the user pbxguard your own way")
    return [
        f"start it:  {started}",
        "check it:  pbxguard doctor      (add --asterisk-cli 'asterisk -rx' to check Asterisk's modules and dialplan)",
        f"Asterisk:  cp {DIALPLAN}/asterisk/extensions_pbxguard.conf /etc/asterisk/ && "
        "echo '#include extensions_pbxguard.conf' >> /etc/asterisk/extensions.conf && asterisk -rx 'dialplan reload'",
        "           then in the inbound route, before Queue() or Dial():  same => n,Gosub(pbxguard-screen,s,1(inbound,,${EXTEN}))",
        f"FreeSWITCH: cp {DIALPLAN}/freeswitch/public/00_pbxguard.xml <conf>/dialplan/public/ && "
        f"cp {DIALPLAN}/freeswitch/pbxguard.xml <conf>/dialplan/, set freeswitch.enabled: true in {CONFIG_PATH}, "
        "then fs_cli -x reloadxml (README, \"FreeSWITCH\")",
    ]


def install(dry_run: bool = False, say: Callable[[str], None] = print) -> int:
    if os.geteuid() != 0 and not dry_run:
        raise InstallError("pbxguard install must run as root (it creates a user and writes /etc): sudo pbxguard install "
                           "(or --dry-run to see what it would do)")
    steps = plan()
    for step in steps:
        say(f"{'would ' if dry_run else ''}{step.says}")
        if not dry_run:
            step.run()
    if not steps:
        say("everything is in place")
    unreadable = "" if dry_run else runs_as(USER, BIN / "pbxguard")
    if unreadable:
        say(f"problem: the user {USER} cannot run {BIN / 'pbxguard'} ({unreadable}); fix: {UNREADABLE_FIX}")
    if CONFIG_PATH.exists() and CONFIG_PATH.read_bytes() != CONFIG_FILE.read_bytes():
        say(f"kept your {CONFIG_PATH} (the shipped one, with every default: {CONFIG_FILE})")
    for line in next_steps():
        say(line)
    return 1 if unreadable else 0
