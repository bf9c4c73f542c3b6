"""The shipped model is what `pbxguard corpus build` and `pbxguard train` make from the named sources."""

import json

from pbxguard.screener.persist import DEFAULT_MODELS_DIR, MANIFEST, MODEL_FILE, sha256_of
from pbxguard.train import corpus, train


def test_the_shipped_model_byte_reproduces_from_its_recipe(tmp_path):
    shipped = json.loads((DEFAULT_MODELS_DIR / MANIFEST).read_text())
    recipe = shipped["corpus"]
    corpus.build(tmp_path / "corpus", seed=recipe["seed"], per_class=recipe["per_class"], progress=False)
    manifest = train.train(tmp_path / "corpus", tmp_path / "models", seed=shipped["seed"], progress=False)
    assert sha256_of(tmp_path / "models" / MODEL_FILE) == shipped["files"][MODEL_FILE]["sha256"]
    assert manifest["thresholds"] == shipped["thresholds"]
