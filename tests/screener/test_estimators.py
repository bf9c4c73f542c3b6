"""The learned stages as scikit-learn sees them, the decision rule, and the persisted model."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from pbxguard.features.layout import DEADAIR_FEATURES, FEATURES, OPENING_FEATURES, layout
from pbxguard.screener.decision import NEVER, TIE_ORDER, DecisionRule, EarlyDecisions
from pbxguard.screener.estimators import CallOpeningClassifier, ScreenerModel
from pbxguard.screener.persist import manifest_pin, verified
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


def _scores(human: float) -> dict[str, float]:
    return {"human": human, "noise": 1.0 - human}


def test_early_thresholds_keep_live_callers_and_each_class_within_budget():
    # 20 live callers, 20 noise; the window's answers are all right. At 500 ms one caller looks like
    # noise (0.8) and two noise clips like callers (0.7); the rest are clear.
    y = np.array(["human"] * 20 + ["noise"] * 20)
    scores = [_scores(0.95)] * 19 + [_scores(0.2)] + [_scores(0.1)] * 18 + [_scores(0.7)] * 2

    def tune(budget):
        return EarlyDecisions.tune((500,), [scores], [np.zeros(40, bool)], y.copy(), np.full(40, 2000.0), y, budget)

    (strict,) = tune(0.0)
    assert strict["human"] == 0.95  # the clear callers go early; the two noise clips at 0.7 would cost noise
    assert strict["noise"] == 0.9  # the clear noise goes early; the caller at 0.8 never does (live-caller rule)
    (loose,) = tune(0.1)  # two of twenty noise answers may be lost
    assert loose["human"] == 0.7 and loose["noise"] == 0.9  # a caller is never given noise, whatever the budget
    assert all(loose.get(c, NEVER) == NEVER for c in ("machine", "silence", "fax", "tone", "music"))


def test_early_thresholds_leave_proven_clips_fax_and_digital_silence_to_their_detectors():
    y = np.array(["silence", "noise", "digital_silence", "fax", "human", "fax"])
    scores = [[{"noise": 0.9, "silence": 0.1}] * 2 + [{"human": 0.6, "noise": 0.4}, {"fax": 0.99, "human": 0.01},
                                                    {"human": 0.9, "noise": 0.1}, {"noise": 0.8, "fax": 0.2}]]
    final_ms = np.array([300.0, 2000.0, 2000.0, 2000.0, 2000.0, 1900.0])  # the dead air was answered before 500 ms
    proven = np.array([False, False, False, False, False, True])  # the last fax's late CNG proves it at 1.9 s

    def tune(digital):
        return EarlyDecisions.tune((500,), scores, [np.array(digital)], y.copy(), final_ms, y, 0.5, proven=proven)[0]

    at_500 = tune([False, False, True, False, False, False])
    assert at_500["noise"] == 0.9  # the dead air with a noise prefix was not open to it; the proven fax never is
    assert at_500["digital_silence"] == 0.0 and at_500["human"] == 0.9
    assert at_500.get("fax", NEVER) == NEVER  # a fax waits for its proof, however sure its prefix
    unseen = tune([False] * 6)
    assert unseen["digital_silence"] == NEVER  # no validation clip showed it safe
    early = EarlyDecisions((500,), (at_500,))
    assert early.decide(0, {"human": 0.6, "noise": 0.4}, digital_silence=True) == "digital_silence"
    assert early.decide(0, {"human": 0.85, "noise": 0.15}, digital_silence=False) is None
    assert early.decide(0, {"fax": 0.99, "human": 0.01}, digital_silence=False) is None
    assert EarlyDecisions((500,), (unseen,)).decide(0, {"human": 0.95}, digital_silence=True) is None


def test_tie_order_covers_the_learned_classes():
    assert sorted(TIE_ORDER) == sorted(LEARNED_CLASSES)


def test_the_shipped_model_is_for_this_layout_and_sees_the_features_by_name(small_models):
    model = ScreenerModel.load(small_models, manifest_pin(small_models))
    _, manifest = verified(small_models, manifest_pin(small_models))
    assert manifest["layout"] == layout() == dict(model.layout)
    assert model.classifier.n_features_in_ == len(FEATURES) == len(DEADAIR_FEATURES) + len(OPENING_FEATURES)
    assert model.classifier.deadair_columns == len(DEADAIR_FEATURES)


def test_a_model_for_another_layout_is_refused_before_unpickling(small_models, tmp_path):
    import json
    import shutil

    from pbxguard.screener.persist import ModelError
    from pbxguard.screener.screener import Screener

    target = tmp_path / "models"
    shutil.copytree(small_models, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["layout"]["sha256"] = "0" * 64
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="feature layout"):
        Screener(target, manifest_sha256=manifest_pin(target))
