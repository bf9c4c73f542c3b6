import numpy as np

from pbxguard.audio.files import read_audio
from pbxguard.features.analysis import analyse
from pbxguard.screener.compiled import CompiledForest, CompiledModel
from pbxguard.screener.estimators import ScreenerModel
from pbxguard.screener.persist import COMPILED_FILE, manifest_pin, sha256_of
from pbxguard.shipped import MODELS_DIR
from pbxguard.train.dataset import extract, read_labelled


def test_compiled_forests_equal_scikit_learn(small_models, small_corpus):
    model = ScreenerModel.load(small_models, manifest_pin(small_models))
    X, _ = extract(read_labelled(small_corpus / "test")[:60], workers=2, progress=False)
    deadair, opening = model.classifier.blocks(X)
    stages = ((model.classifier.deadair_, deadair), (model.classifier.opening_, opening), (model.synthetic, opening))
    for forest, block in stages:
        compiled = CompiledForest.from_sklearn(forest)
        expected = forest.predict_proba(block)
        actual = np.stack([compiled.predict_proba(row) for row in block])
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
        assert compiled.classes == tuple(str(c) for c in forest.classes_)


def test_compiled_forest_on_values_at_split_thresholds(small_models):
    # Rows exactly at thresholds exercise the float32 cast and `<=`: where naive float64 code goes wrong.
    model = ScreenerModel.load(small_models, manifest_pin(small_models))
    forest = model.classifier.opening_
    tree = forest.estimators_[0].tree_
    row = np.zeros(forest.n_features_in_)
    internal = np.flatnonzero(tree.children_left >= 0)[:20]
    row[tree.feature[internal]] = tree.threshold[internal]
    np.testing.assert_allclose(CompiledForest.from_sklearn(forest).predict_proba(row), forest.predict_proba(row[None, :])[0], atol=1e-12)


def test_the_compiled_file_is_the_pickles_twin(small_models, small_corpus, tmp_path):
    """What the engine loads scores every clip as the trained model does, and the file written from the pickle
    is the file shipped beside it, byte for byte."""
    model = ScreenerModel.load(small_models, manifest_pin(small_models))
    CompiledModel.from_model(model).save(tmp_path / COMPILED_FILE)
    assert (tmp_path / COMPILED_FILE).read_bytes() == (small_models / COMPILED_FILE).read_bytes()
    loaded = CompiledModel.load(small_models / COMPILED_FILE)
    assert (loaded.rule, loaded.synthetic_threshold, loaded.early, dict(loaded.layout)) == \
        (model.rule, model.synthetic_threshold, model.early, dict(model.layout))
    for clip in read_labelled(small_corpus / "test")[:40]:
        analysis = analyse(read_audio(clip.path)[:16000])
        expected = model.scores(np.concatenate([analysis.deadair_vector, analysis.opening_vector])[None, :])[0]
        actual = loaded.classifier.scores(analysis)
        assert set(actual) >= set(expected) and all(v == 0.0 for c, v in actual.items() if c not in expected)
        np.testing.assert_allclose([actual[c] for c in expected], list(expected.values()), rtol=0, atol=1e-12)


def test_the_shipped_compiled_file_is_the_shipped_pickles_twin(tmp_path):
    # (training wrote both; this is what a site can check after an upgrade)
    CompiledModel.from_model(ScreenerModel.load(MODELS_DIR)).save(tmp_path / COMPILED_FILE)
    assert sha256_of(tmp_path / COMPILED_FILE) == sha256_of(MODELS_DIR / COMPILED_FILE)
