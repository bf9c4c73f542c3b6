import shutil
import subprocess
import sysconfig

import pytest

from pbxguard.shipped import UNIT_FILE, WEB_UNIT_FILE

UNIT = UNIT_FILE


@pytest.mark.parametrize("shipped", [UNIT_FILE, WEB_UNIT_FILE], ids=["daemon", "web"])
def test_unit_verifies(tmp_path, shipped):
    # systemd-analyze checks that ExecStart's binary exists: point it at where pip put pbxguard here.
    scripts = sysconfig.get_path("scripts")
    unit = tmp_path / shipped.name
    unit.write_text(shipped.read_text().replace("/usr/local/bin/pbxguard", f"{scripts}/pbxguard"))
    result = subprocess.run([shutil.which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_unit_has_the_operational_contract():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "StateDirectory=pbxguard", "RuntimeDirectory=pbxguard", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert line in text
