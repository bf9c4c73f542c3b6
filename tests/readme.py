"""README's shell examples, as the tests run them: every line of every ```sh block, in order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# root's PATH on a stock Debian 12: the commands an admin types resolve as they would there.
DEBIAN_ROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}

# Each block by a command that begins one of its lines, and the test that runs it.
QUICKSTART = "bash .ci/setup && .venv/bin/pbxguard classify"
REPRODUCE = "pbxguard corpus build --out build/corpus"
ASTERISK = "sudo cp dialplan/asterisk/extensions_pbxguard.conf"
INSTALL = "/usr/bin/python3 -m venv /opt/pbxguard"
CALLER_ID = "pbxguard deny "
RETRAIN = "pbxguard calls list"
RUN_BY = {QUICKSTART: "tests/ops/test_readme.py", REPRODUCE: "tests/train/test_shipped_model.py",
          ASTERISK: "tests/pbx/test_asterisk.py", INSTALL: "tests/ops/test_install.py",
          CALLER_ID: "tests/ops/test_install.py", RETRAIN: "tests/ops/test_install.py"}
# The lines no test runs as written, and why.
NOT_RUN = {"bash .ci/setup && .venv/bin/python -m pytest -q": "it is the command that runs these tests (.ci/run)"}


def sh_blocks() -> list[list[str]]:
    blocks, current = [], None
    for line in README.read_text().splitlines():
        if current is None and line.strip() == "```sh":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None and line.strip():
            current.append(line)
    return blocks


def block_with(command: str) -> list[str]:
    """The one block that has a line starting with `command`."""
    found = [b for b in sh_blocks() if any(line.startswith(command) for line in b)]
    assert len(found) == 1, f"{len(found)} README blocks have {command!r}"
    return found[0]


def lines_to_run(anchor: str) -> list[str]:
    return [line for line in block_with(anchor) if line.split("  #")[0].strip() not in NOT_RUN]


def run_line(line: str, placeholders: dict[str, str] | None = None, timeout: float = 900,
             activated: bool = False) -> subprocess.CompletedProcess:
    """One README line through bash (comments and quoting as an admin's shell reads them), from the checkout,
    with root's PATH on Debian; `activated`: with the venv running these tests first on it (`. .venv/bin/activate`)."""
    for name, value in (placeholders or {}).items():
        line = line.replace(name, value)
    env = {**DEBIAN_ROOT_ENV, **{k: v for k, v in os.environ.items() if k in ("CI", "PBXGUARD_CORPUS_SOURCES")}}
    if activated:
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    assert done.returncode == 0, f"README line failed: {line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done
