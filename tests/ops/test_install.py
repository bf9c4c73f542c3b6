"""The production install, for real, as root on this host: README's install lines as written (a venv from
Debian's python3 in /opt/pbxguard, `pbxguard install`, the unit started, `pbxguard doctor`), then the
installed daemon screening calls from outside the repository, README's caller-ID and retraining examples
against it, and `pbxguard doctor` on a broken install. Everything it made is removed afterwards."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pbxguard.audio.files import read_audio
from pbxguard.doctor import Unit
from pbxguard.install import BIN, CONFIG_PATH, ETC, STATE, UNIT_PATH, USER, WEB_UNIT_PATH, user_exists
from pbxguard.shipped import CONF, DIALPLAN, UNIT_FILE, WEB_UNIT_FILE
from pbxguard.testing.asterisk import FakeAsterisk
from pbxguard.testing.pbx import stop_process
from tests.conftest import SMALL_PER_CLASS
from tests.readme import DEBIAN_ROOT_ENV, ROOT, block_with, run_line

VENV = Path("/opt/pbxguard")
MADE = [ETC, VENV, BIN / "pbxguard", BIN / "pbxguard-eagi", UNIT_PATH, WEB_UNIT_PATH, STATE, Path("/run/pbxguard")]
EXAMPLES = ROOT / "tests" / "examples"
INSTALL_BLOCK = "/usr/bin/python3 -m venv /opt/pbxguard"
START_LINE = "systemctl enable --now pbxguard"


class UnitRun:
    """What systemd does with the installed unit, on a host where it is not PID 1 (this one): the
    RuntimeDirectory, ExecStartPre and then ExecStart as the unit's User with its Environment; SIGTERM to stop."""

    def __init__(self, unit_path: Path, log: Path) -> None:
        unit = Unit.read(unit_path)
        settings, self.user = unit.settings, unit.user
        runtime = Path("/run") / settings["RuntimeDirectory"][0]
        runtime.mkdir(exist_ok=True)
        shutil.chown(runtime, self.user, self.user)
        runtime.chmod(int(settings["RuntimeDirectoryMode"][0], 8))
        as_user = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups", "--", "env", "-i",
                   "PATH=/usr/sbin:/usr/bin:/sbin:/bin", *settings.get("Environment", [])]
        pre = subprocess.run([*as_user, *settings["ExecStartPre"]], capture_output=True, text=True, timeout=120)
        assert pre.returncode == 0, pre.stderr
        self.log = open(log, "w")
        self.process = subprocess.Popen([*as_user, *settings["ExecStart"]], stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd="/")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", 4573), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the installed daemon did not listen: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.process, lambda: self.process.send_signal(signal.SIGTERM))
        self.log.close()


def _remove_install() -> None:
    for path in MADE:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    if user_exists(USER):
        subprocess.run(["userdel", USER], check=True)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    ci = bool(os.environ.get("CI"))
    if os.geteuid() != 0:
        (pytest.fail if ci else pytest.skip)("the install test installs pbxguard on this host for real: it needs root (CI runs as root)")
    there = [str(p) for p in MADE if p.exists() or p.is_symlink()] + ([f"user {USER}"] if user_exists(USER) else [])
    if there:
        (pytest.fail if ci else pytest.skip)(f"this host has a pbxguard install ({', '.join(there)}): the test would change it")
    said, daemon = {}, None
    try:
        for line in block_with(INSTALL_BLOCK):
            if line.startswith(START_LINE):
                # README: "Turn captures.enabled on" to label and retrain (the retraining example below needs it).
                text = CONFIG_PATH.read_text()
                CONFIG_PATH.write_text(text.replace("captures:                    # save each screened window as WAV, to label and "
                                                    "retrain on\n  enabled: false", "captures:\n  enabled: true", 1))
                assert yaml.safe_load(CONFIG_PATH.read_text())["captures"]["enabled"] is True
                daemon = UnitRun(UNIT_PATH, tmp_path_factory.mktemp("unit") / "daemon.log")
            else:
                said[line.split()[0]] = run_line(line)
        yield said
    finally:
        if daemon:
            daemon.stop()
        _remove_install()


def pbxguard(*args: str, cwd: Path | str = "/") -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pbxguard"), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=DEBIAN_ROOT_ENV)


def call(path: Path, **kwargs):
    return asyncio.run(FakeAsterisk("127.0.0.1", 4573).call(read_audio(path), **kwargs)).variables


def owner_and_mode(path: Path) -> tuple[str, str, int]:
    info = path.stat()
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)


def test_install_makes_the_user_folders_config_links_and_unit_and_a_second_run_changes_nothing(host):
    account = pwd.getpwnam(USER)
    assert account.pw_uid < 1000 and account.pw_shell == "/usr/sbin/nologin" and account.pw_dir == str(STATE)
    assert owner_and_mode(ETC) == ("root", USER, 0o750)
    assert owner_and_mode(CONFIG_PATH) == ("root", USER, 0o640)
    assert owner_and_mode(STATE) == (USER, USER, 0o750)
    assert (BIN / "pbxguard").resolve() == VENV / "bin" / "pbxguard"
    assert (BIN / "pbxguard-eagi").resolve() == VENV / "bin" / "pbxguard-eagi"
    assert UNIT_PATH.read_bytes() == UNIT_FILE.read_bytes() and WEB_UNIT_PATH.read_bytes() == WEB_UNIT_FILE.read_bytes()
    installed = host["/opt/pbxguard/bin/pbxguard"].stdout
    assert "Gosub(pbxguard-screen,s,1(inbound,,${EXTEN}))" in installed and "#include extensions_pbxguard.conf" in installed
    before = {p: (p.lstat().st_mtime_ns, owner_and_mode(p)) for p in (ETC, CONFIG_PATH, STATE, UNIT_PATH)}
    again = pbxguard("install")
    assert again.returncode == 0 and again.stdout.startswith("everything is in place"), again.stdout
    assert {p: (p.lstat().st_mtime_ns, owner_and_mode(p)) for p in before} == before


def test_the_installed_wheel_carries_models_configuration_unit_dashboard_and_dialplans(host):
    where = subprocess.run([str(VENV / "bin/python"), "-c", "import pbxguard.shipped as s;"
                            "print(s.SHARE); print(s.MODELS_DIR)"], capture_output=True, text=True, cwd="/")
    share, models = map(Path, where.stdout.split())
    assert share.is_relative_to(VENV) and models.is_relative_to(VENV)
    for shipped in [*CONF.iterdir(), *(p for p in DIALPLAN.rglob("*") if p.is_file())]:
        assert (share / shipped.relative_to(CONF.parent)).read_bytes() == shipped.read_bytes(), shipped.name
    assert {p.name for p in models.iterdir()} >= {"manifest.json", "screener.joblib", "screener.npz"}
    assert pbxguard("--version").stdout.startswith("pbxguard 0.1.0 (model pbxguard-")


def test_the_installed_daemon_screens_calls_and_doctor_finds_nothing_wrong(host, tmp_path):
    assert call(EXAMPLES / "live_answer.wav")["PBXGUARD_ACTION"] == "BRIDGE"
    assert call(EXAMPLES / "fax_cng.wav")["PBXGUARD_ACTION"] == "HANGUP"
    outside = tmp_path / "calls"
    outside.mkdir()
    shutil.copy(EXAMPLES / "busy_na.wav", outside / "busy.wav")
    classified = pbxguard("classify", "busy.wav", cwd=outside)
    assert classified.returncode == 0 and " tone " in classified.stdout and "HANGUP" in classified.stdout, classified.stdout
    doctor = host["pbxguard"].stdout
    assert "ok    blas: OpenBLAS kernel Haswell, the one the shipped model was trained with" in doctor
    assert "pbxguard can run /usr/local/bin/pbxguard" in doctor and "fastagi 127.0.0.1:4573: pbxguard listens" in doctor
    assert doctor.rstrip().endswith("no problems found") and "FAIL" not in doctor, doctor


def test_readmes_caller_id_and_retraining_examples_run_as_written_against_the_install(host):
    for line in block_with("pbxguard deny "):
        run_line(line)
    listed = run_line("pbxguard lists").stdout
    assert "allow  +1202*" in listed and "+12025550143" not in listed  # denied, then unlisted
    call_id = call(EXAMPLES / "silence.wav", callerid="+12025550199")["PBXGUARD_CALL_ID"]
    placeholders = {"<call id>": call_id, "--per-class 2000": f"--per-class {SMALL_PER_CLASS}"}  # the full size: test_shipped_model
    for line in block_with("pbxguard calls list"):
        done = run_line(line, placeholders)
        if line.startswith("pbxguard train"):
            placeholders["<pin>"] = json.loads(done.stdout)["manifest_sha256"]
        if line.startswith("pbxguard calls export"):
            assert done.stdout.startswith("exported 1 labelled calls"), done.stdout
        if line.startswith("pbxguard eval"):
            assert "silence" in done.stdout and "macro-F1" in done.stdout
    # Root's commands left the daemon a call log it can still write: doctor says so, and calls still log.
    assert "FAIL" not in pbxguard("doctor").stdout
    assert call(EXAMPLES / "live_answer.wav")["PBXGUARD_ACTION"] == "BRIDGE"


def test_doctor_names_each_problem_of_a_broken_install_with_its_fix(host, tmp_path):
    config = yaml.safe_load(CONFIG_PATH.read_text())
    shutil.copytree(VENV / "lib/python3.11/site-packages/pbxguard/models", tmp_path / "models")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # bound by another program, not listening
    locked = STATE / "locked"
    locked.mkdir(mode=0o700)  # root's, inside the daemon's state folder
    config.update(engine={"models": str(tmp_path / "models"), "manifest_sha256": "0" * 64},
                  database={"path": "/srv/pbxguard/calls.db"},
                  captures={"enabled": True, "directory": str(locked / "captures")},
                  fastagi={"port": taken.getsockname()[1]},
                  audiosocket={"host": "192.0.2.1", "advertise": "192.0.2.1:9092"}, metrics={"enabled": False})
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    try:
        doctor = pbxguard("doctor", "--config", str(broken))
    finally:
        taken.close()
        locked.rmdir()
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert doctor.returncode == 1 and doctor.stdout.rstrip().endswith(f"{len(failed)} problems")
    expected = [("models", "manifest"), ("call log", "ReadWritePaths=/srv/pbxguard"), ("spool", "ReadWritePaths=/srv/pbxguard"),
                ("captures", f"chown pbxguard: {locked}"), ("listener", "Address already in use"), ("listener", "192.0.2.1")]
    for topic, words in expected:
        assert any(line.startswith(f"FAIL  {topic}:") and words in line and "; fix: " in line for line in failed), (topic, doctor.stdout)
    assert len(failed) == len(expected), doctor.stdout
