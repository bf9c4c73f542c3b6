"""The shipped model is what README's commands make from the named sources: `pbxguard corpus build` and
`pbxguard train`, each a fresh process as an admin runs them."""

import json
import subprocess
import sys

from pbxguard.screener.persist import DEFAULT_MODELS_DIR, MANIFEST, MODEL_FILE, SHIPPED_MANIFEST_SHA256, sha256_of


def pbxguard(*args):
    done = subprocess.run([sys.executable, "-m", "pbxguard", *map(str, args)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_shipped_model_byte_reproduces_from_its_recipe(tmp_path):
    shipped = json.loads((DEFAULT_MODELS_DIR / MANIFEST).read_text())
    recipe = shipped["corpus"]
    pbxguard("corpus", "build", "--out", tmp_path / "corpus", "--seed", recipe["seed"], "--per-class", recipe["per_class"],
             "--quiet")
    pbxguard("train", "--corpus", tmp_path / "corpus", "--out", tmp_path / "models", "--seed", shipped["seed"], "--quiet")
    rebuilt = json.loads((tmp_path / "models" / MANIFEST).read_text())
    assert rebuilt["corpus_sha256"] == shipped["corpus_sha256"]  # the same corpus, byte for byte, first
    assert sha256_of(tmp_path / "models" / MODEL_FILE) == shipped["files"][MODEL_FILE]["sha256"]
    assert json.loads((tmp_path / "models" / MANIFEST).read_text())["thresholds"] == shipped["thresholds"]
    # The manifest too, byte for byte: its hash is the pin in the package code.
    assert sha256_of(tmp_path / "models" / MANIFEST) == sha256_of(DEFAULT_MODELS_DIR / MANIFEST) == SHIPPED_MANIFEST_SHA256
