"""The learned stages as scikit-learn sees them, the decision rule, and the persisted model."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from pbxguard.features.layout import DEADAIR_FEATURES, FEATURES, OPENING_FEATURES, layout
from pbxguard.screener.estimators import TIE_ORDER, CallOpeningClassifier, DecisionRule
from pbxguard.screener.persist import load_pinned, manifest_pin
from pbxguard.screener.verdict import LEARNED_CLASSES


def test_the_classifier_passes_scikit_learns_estimator_checks():
    check_estimator(CallOpeningClassifier(deadair_trees=5, opening_trees=5))


def test_classes_come_from_y_and_dead_air_is_its_own_stage():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = np.array(["silence", "human", "machine"] * 30)
    X[y == "silence", :2] += 5.0  # dead air is told apart by the dead-air block alone
    model = CallOpeningClassifier(deadair_columns=2, deadair_trees=10, opening_trees=10).fit(X, y)
    assert list(model.classes_) == ["human", "machine", "silence"]
    assert model.deadair_.n_features_in_ == 2 and model.opening_.n_features_in_ == 2
    assert set(model.opening_.classes_) == {"human", "machine"}
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(model.predict(X[y == "silence"]) == "silence")


def test_the_rule_weighs_live_callers_and_abstains_below_a_threshold():
    rule = DecisionRule(human_costs={"machine": 3.0, "silence": 1.0}, thresholds={"silence": 0.9})
    assert rule.decide({"human": 0.3, "machine": 0.7}) == "human"  # 0.9 weighted beats 0.7
    assert rule.decide({"human": 0.2, "machine": 0.8}) == "machine"
    assert rule.decide({"human": 0.1, "silence": 0.85, "machine": 0.05}) == "unknown"
    assert DecisionRule().decide({"noise": 0.5, "fax": 0.5}) == "noise"  # a tie goes to the earlier class


def test_tune_picks_the_smallest_cost_that_blocks_no_caller_and_a_precise_threshold():
    scores = [{"human": 0.4, "machine": 0.6, "silence": 0.0}] * 3 + [{"human": 0.1, "machine": 0.9, "silence": 0.0}] * 3
    scores += [{"human": 0.0, "machine": 0.3, "silence": 0.7}, {"human": 0.0, "machine": 0.1, "silence": 0.9}]
    y = np.array(["human"] * 3 + ["machine"] * 3 + ["machine", "silence"])
    rule = DecisionRule.tune(scores, y, {"silence": 0.99}, max_false_block=0.0)
    assert rule.human_costs == {"machine": 1.5}  # 0.6 / 1.5 = 0.4 ties human and human wins by the tie order
    assert rule.thresholds == {"silence": 0.9}


def test_tune_raises_the_cost_only_of_the_class_that_takes_callers():
    # callers are taken for machines, never for dead air: dead air keeps cost 1 and its weak cases stay dead air
    scores = [{"human": 0.3, "machine": 0.7, "silence": 0.0}] * 4 + [{"human": 0.45, "machine": 0.0, "silence": 0.55}] * 4
    y = np.array(["human"] * 4 + ["silence"] * 4)
    rule = DecisionRule.tune(scores, y, {}, max_false_block=0.0)
    assert rule.human_costs == {"machine": 3.0}
    assert [rule.decide(s) for s in scores] == ["human"] * 4 + ["silence"] * 4


def test_tie_order_covers_the_learned_classes():
    assert sorted(TIE_ORDER) == sorted(LEARNED_CLASSES)


def test_the_shipped_model_is_for_this_layout_and_sees_the_features_by_name(small_models):
    model, manifest = load_pinned(small_models, manifest_pin(small_models))
    assert manifest["layout"] == layout() == dict(model.layout)
    assert model.classifier.n_features_in_ == len(FEATURES) == len(DEADAIR_FEATURES) + len(OPENING_FEATURES)
    assert model.classifier.deadair_columns == len(DEADAIR_FEATURES)


def test_a_model_for_another_layout_is_refused_before_unpickling(small_models, tmp_path):
    import json
    import shutil

    from pbxguard.screener import ModelError, Screener

    target = tmp_path / "models"
    shutil.copytree(small_models, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["layout"]["sha256"] = "0" * 64
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="feature layout"):
        Screener(target, manifest_sha256=manifest_pin(target))
