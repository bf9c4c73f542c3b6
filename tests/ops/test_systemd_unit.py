import shutil
import subprocess
import sysconfig

from pbxguard.shipped import UNIT_FILE

UNIT = UNIT_FILE


def test_unit_verifies(tmp_path):
    # systemd-analyze checks that ExecStart's binary exists: point it at where pip put pbxguard here.
    scripts = sysconfig.get_path("scripts")
    unit = tmp_path / "pbxguard.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/pbxguard", f"{scripts}/pbxguard"))
    result = subprocess.run([shutil.which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_unit_has_the_operational_contract():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "StateDirectory=pbxguard", "RuntimeDirectory=pbxguard", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert line in text
