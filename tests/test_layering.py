"""The package's import rules (README, "Architecture") and the one home of each wire format and constant."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pbxguard"
EXAMPLES = PACKAGE.parent / "tests" / "examples"

# What each part may import of pbxguard (besides itself). A name is a package or a module inside one.
ALLOWED: dict[str, set[str]] = {
    "audio": set(),
    "features": {"audio"},
    "screener": {"features", "audio", "shipped"},
    "policy": {"screener.verdict"},
    "asr": {"audio", "screener.verdict"},
    "protocols": set(),
    "relays": {"relays.contract", "protocols.agi", "protocols.audiosocket", "protocols.esl_outbound", "audio.format",
               "supervisor.HEARTBEAT_S", "supervisor.die_with_parent"},
    "store": {"store.record", "audio.files"},
    "metrics": {"store.record", "supervisor.METRICS_DIR_ENV"},
    "systemd": set(),
    "shipped": set(),
    "install": {"shipped"},
    "doctor": {"config", "install", "screener", "BLAS_CORETYPE"},
    "supervisor": {"systemd"},
    "config": {"policy.rules", "policy.identity", "policy.callers", "shipped"},
    "service": {"asr", "screener", "policy", "protocols", "relays.contract", "store", "metrics", "config", "audio"},
    "logs": {"config.Config"},
    "server": {"asr", "config", "logs", "service", "protocols", "relays.contract", "relays.freeswitch", "store", "systemd", "metrics",
               "screener", "supervisor"},
    "train": {"audio", "features", "screener", "policy", "asr"},
    "testing": {"audio", "protocols", "relays.contract", "config.Config", "web.server"},
    "bench": {"audio", "screener", "train", "features", "config", "logs", "server", "store", "testing", "shipped", "web"},
    "web": {"config", "store", "policy.callerid", "screener.verdict", "audio", "features.levels.dbfs"},
    "cli": {"*"},
}
# Training code stays beside the hot path: only these may import it.
TRAIN_USERS = {"cli", "bench", "train"}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def part(module: str) -> str:
    return module.split(".")[0]


def internal_imports(path: Path) -> set[str]:
    """pbxguard modules imported anywhere in the file (also inside functions), without the prefix."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pbxguard"):
            base = node.module.removeprefix("pbxguard").lstrip(".")
            found |= {f"{base}.{a.name}".lstrip(".") for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("pbxguard.") for a in node.names if a.name.startswith("pbxguard.")}
    return found


def permitted(importer: str, imported: str) -> bool:
    own = part(importer)
    if part(imported) == own:
        return True
    rules = ALLOWED[own]
    return "*" in rules or any(imported == r or imported.startswith(r + ".") for r in rules)


def test_every_import_follows_the_rules():
    wrong = []
    for module, path in modules().items():
        if module in ("__init__", "__main__"):
            continue
        for imported in internal_imports(path):
            if not permitted(module, imported):
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_only_the_cli_and_the_benchmarks_import_training_code():
    users = {part(m) for m, p in modules().items() if any(part(i) == "train" for i in internal_imports(p))}
    assert users <= TRAIN_USERS


HOT_PATH = """
import sys
import numpy as np
import pbxguard.relays.eagi, pbxguard.relays.freeswitch, pbxguard.server
from pbxguard.screener.screener import Screener
Screener().screen(np.zeros(16000, dtype=np.int16))
print(" ".join(m for m in sys.argv[1:] if m in sys.modules) or "-")
"""


def test_the_daemon_relays_and_classify_import_no_training_libraries():
    """The engine runs the compiled model: the daemon, the relays and `pbxguard classify` never import
    scikit-learn, joblib or scipy (a second of startup and ~60 MB in every process)."""
    from pbxguard import bench

    daemon = subprocess.run([sys.executable, "-c", HOT_PATH, *bench.HEAVY_MODULES], capture_output=True, text=True,
                            check=True, timeout=120)
    assert daemon.stdout.split() == ["-"]
    assert bench.run_startup(EXAMPLES / "fax_cng.wav", runs=1)["heavy_modules"] == []


SUPERVISOR = """
import sys
from pbxguard.cli import build_parser
import pbxguard.config, pbxguard.logs, pbxguard.supervisor
build_parser().parse_args(["serve"])
print("numpy" in sys.modules)
"""


def test_the_supervisor_loads_no_numpy():
    """`pbxguard serve` only watches the daemon: the screener package, the configuration (which names verdicts)
    and the command line must not pull the engine into it."""
    done = subprocess.run([sys.executable, "-c", SUPERVISOR], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"


def test_the_rules_catch_a_wrong_import(tmp_path):
    assert not permitted("features.tones", "service.calls")
    assert not permitted("protocols.fastagi", "screener")
    assert not permitted("relays.eagi", "service.calls")
    assert permitted("service.screening", "relays.contract") and not permitted("service.screening", "relays.eagi")


def source_files() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_the_sample_rate_is_written_once():
    literal = re.compile(r"(?<![\w.])8000(\.0)?(?![\w.])")
    homes = {"audio/format.py", "protocols/audiosocket.py"}  # the format; AudioSocket's table of kinds and rates
    assert [f for f, text in source_files().items() if literal.search(text) and f not in homes] == []


def test_audiosocket_frames_are_encoded_and_parsed_in_one_place():
    by_hand = re.compile(r"to_bytes\(2, \"big\"\)|from_bytes\([^)]*\+ ?3\]")
    assert [f for f, text in source_files().items() if by_hand.search(text) and f != "protocols/audiosocket.py"] == []


def test_agi_lines_are_split_and_written_in_one_place():
    assert [f for f, text in source_files().items() if ".splitlines()" in text and f.startswith(("protocols", "relays"))] == []
    written = re.compile(r"f\"\{k\}: \{v\}\\n\"")
    esl = {"protocols/esl.py", "testing/freeswitch.py"}  # ESL's headers look alike but are another format
    assert [f for f, text in source_files().items() if written.search(text) and f not in esl | {"protocols/agi.py"}] == []
