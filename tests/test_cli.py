import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "examples"


def pbxguard(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pbxguard", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_classify_json_lines():
    files = sorted(EXAMPLES.glob("*.wav"))
    result = pbxguard("classify", "--json", *files)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(files)
    for line in lines:
        assert {"file", "verdict", "confidence", "decided_ms", "scores", "evidence", "action"} <= set(line)
    actions = {Path(line["file"]).name: line["action"] for line in lines}
    assert (actions["fax_cng.wav"], actions["live_answer.wav"], actions["silence.wav"]) == ("HANGUP", "BRIDGE", "CHALLENGE")


def test_classify_says_each_calls_action_in_plain_words():
    table = pbxguard("classify", EXAMPLES / "fax_cng.wav", EXAMPLES / "live_answer.wav").stdout
    assert "HANGUP: hang up" in next(line for line in table.splitlines() if line.startswith("fax_cng.wav"))
    assert "BRIDGE: put through to the agents" in next(line for line in table.splitlines() if line.startswith("live_answer.wav"))


def test_bad_files_are_reported_and_the_rest_classified(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "cut.wav").write_bytes((EXAMPLES / "live_answer.wav").read_bytes()[:3000])
    good = tmp_path / "good.wav"
    shutil.copy(EXAMPLES / "live_answer.wav", good)
    result = pbxguard("classify", tmp_path / "empty.wav", tmp_path / "notes.txt", good, tmp_path / "cut.wav", tmp_path / "gone.wav")
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4
    assert all(line.startswith("pbxguard: ") and str(tmp_path) in line for line in errors)
    assert "good.wav" in result.stdout and "human" in result.stdout


def test_classify_with_broken_models_fails_cleanly(tmp_path):
    result = pbxguard("classify", "--models", tmp_path, EXAMPLES / "live_answer.wav")
    assert result.returncode == 2
    assert "cannot load models" in result.stderr and "Traceback" not in result.stderr


def test_calls_reads_the_configured_log_and_never_creates_one(tmp_path):
    from pbxguard.store.calllog import SQLiteCallLog
    from pbxguard.store.record import CallRecord

    log = SQLiteCallLog(tmp_path / "site.db")
    log.record_call(CallRecord("4f1c2a52-9d3e-4d8a-9a37-5f0c1e2b3a4d", "screened", verdict="silence", action="CHALLENGE"))
    log.close()
    cfg = tmp_path / "pbxguard.yaml"
    cfg.write_text(f"database:\n  path: {tmp_path / 'site.db'}\n")
    listed = pbxguard("calls", "--config", cfg, "list")
    assert listed.returncode == 0 and "4f1c2a52-9d3e-4d8a-9a37-5f0c1e2b3a4d" in listed.stdout
    assert "4f1c2a52" in pbxguard("calls", "list", "--config", cfg).stdout
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"database:\n  path: {tmp_path / 'nothing' / 'calls.db'}\n")
    refused = pbxguard("calls", "--config", missing, "list")
    assert refused.returncode != 0 and "no call log at" in refused.stderr
    assert not (tmp_path / "nothing").exists()


def test_training_commands_say_what_is_missing_in_one_line(tmp_path):
    empty = tmp_path / "unlabelled"
    empty.mkdir()
    for args in (("eval", empty), ("train", "--corpus", empty, "--out", tmp_path / "models"),
                 ("corpus", "build", "--out", tmp_path / "corpus", "--sources", empty, "--per-class", "1", "--quiet")):
        done = pbxguard(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, args
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("pbxguard: "), args
    assert "Jakobovski/free-spoken-digit-dataset missing" in done.stderr and "26eb9aaf76e8" in done.stderr
