"""The package as an admin installs it: a wheel built from this tree, installed into a fresh venv with its
dependencies from the index, used from outside the repository (no repository file on any path)."""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from pbxguard.audio.files import read_audio
from pbxguard.shipped import CONF, DIALPLAN
from tests.ops.conftest import RunningDaemon
from tests.ops.test_daemon import ROOT, call


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(dist.glob("pbxguard-*.whl"))
    venv.create(base / "venv", with_pip=True)
    pip = subprocess.run([str(base / "venv/bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-2000:]
    outside = base / "site"
    outside.mkdir()
    return base / "venv" / "bin", outside


def run(installed, *args):
    bin_dir, outside = installed
    return subprocess.run([str(bin_dir / "pbxguard"), *map(str, args)], capture_output=True, text=True, cwd=outside,
                          timeout=300, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(outside)})


def test_the_wheel_carries_models_configuration_unit_dashboard_and_dialplans(installed):
    bin_dir, outside = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import pbxguard.shipped as s, pbxguard.screener.persist as p;"
                            "print(s.SHARE); print(p.DEFAULT_MODELS_DIR)"], capture_output=True, text=True, cwd=outside)
    share, models = where.stdout.split()
    assert "site-packages" in share and "site-packages" in models
    for shipped in [*CONF.iterdir(), *(p for p in DIALPLAN.rglob("*") if p.is_file())]:
        copy = Path(share) / shipped.relative_to(CONF.parent)
        assert copy.read_bytes() == shipped.read_bytes(), shipped.name
    assert {p.name for p in Path(models).iterdir()} >= {"manifest.json", "screener.joblib"}
    assert run(installed, "--version").stdout.startswith("pbxguard 0.1.0 (model pbxguard-")


def test_the_installed_command_classifies_and_checks_its_configuration(installed, tmp_path):
    _, outside = installed
    shutil.copy(ROOT / "tests" / "examples" / "fax_cng.wav", outside / "fax.wav")
    shutil.copy(ROOT / "tests" / "examples" / "live_answer.wav", outside / "live.wav")
    done = run(installed, "classify", "fax.wav", "live.wav")
    assert done.returncode == 0, done.stderr
    assert "fax.wav" in done.stdout and " fax " in done.stdout and " human " in done.stdout
    assert run(installed, "check-config").returncode == 0


def test_the_installed_daemon_screens_a_call(installed, tmp_path):
    bin_dir, outside = installed
    daemon = RunningDaemon(tmp_path, command=(str(bin_dir / "pbxguard"),), cwd=outside)
    try:
        assert call(daemon, read_audio(ROOT / "tests" / "examples" / "live_answer.wav")).variables["PBXGUARD_ACTION"] == "BRIDGE"
    finally:
        daemon.stop()
