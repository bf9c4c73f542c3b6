import numpy as np

from pbxguard.screener.forest import CompiledForest
from pbxguard.screener.persist import load_pinned, manifest_pin
from pbxguard.train.dataset import extract, read_labelled


def test_compiled_forests_equal_scikit_learn(small_models, small_corpus):
    model, _ = load_pinned(small_models, manifest_pin(small_models))
    X, _ = extract(read_labelled(small_corpus / "test")[:60], workers=2, progress=False)
    deadair, opening = model.classifier.blocks(X)
    stages = ((model.classifier.deadair_, deadair), (model.classifier.opening_, opening), (model.synthetic, opening))
    for forest, block in stages:
        compiled = CompiledForest(forest)
        expected = forest.predict_proba(block)
        actual = np.stack([compiled.predict_proba(row) for row in block])
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
        assert np.array_equal(compiled.classes_, forest.classes_)


def test_compiled_forest_on_values_at_split_thresholds(small_models):
    # Rows exactly at thresholds exercise the float32 cast and `<=`: where naive float64 code goes wrong.
    model, _ = load_pinned(small_models, manifest_pin(small_models))
    forest = model.classifier.opening_
    tree = forest.estimators_[0].tree_
    row = np.zeros(forest.n_features_in_)
    internal = np.flatnonzero(tree.children_left >= 0)[:20]
    row[tree.feature[internal]] = tree.threshold[internal]
    np.testing.assert_allclose(CompiledForest(forest).predict_proba(row), forest.predict_proba(row[None, :])[0], atol=1e-12)
