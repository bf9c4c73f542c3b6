"""The learned stages: a scikit-learn classifier, and the model that holds it with the decision rules, and
is trained, saved and hash-pinned as one object.

- `CallOpeningClassifier` (a real scikit-learn estimator, `check_estimator` clean): the Marchex dead-air
  Random Forest (100 trees) on the leading dead-air columns gives P(dead air); a second forest over the
  opening columns gives P(class | not dead air) for the other classes; scores combine as
  P(dead air) = p_d and P(c) = (1 - p_d) * P(c | not dead air).
- `ScreenerModel`: the classifier, the synthetic-voice forest (among speech openings, P(robocall or TTS))
  with the score from which it names a machine, the decision rule, the early decisions with their prefix
  classifiers and the feature layout they were trained on. This pickle is the trained, reproducible
  artefact; the engine runs its compiled twin (`compiled.CompiledModel`), which needs no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from pbxguard.features.layout import layout
from pbxguard.screener.decision import DEADAIR_CLASS, DecisionRule, EarlyDecisions, combine_scores
from pbxguard.screener.persist import MODEL_FILE, ModelError, verified


class CallOpeningClassifier(ClassifierMixin, BaseEstimator):
    """Dead air first (its own forest on the first `deadair_columns` columns), then the opening forest on
    the remaining columns for every other class. With `deadair_columns=None` both forests see every
    column; when `y` has no `deadair_class` there is no dead-air stage."""

    def __init__(self, deadair_class: str = DEADAIR_CLASS, deadair_columns: int | None = None,
                 deadair_trees: int = 100, opening_trees: int = 100, max_depth: int | None = 14,
                 min_samples_leaf: int = 2, n_jobs: int | None = None, random_state: int | None = 0) -> None:
        self.deadair_class = deadair_class
        self.deadair_columns = deadair_columns
        self.deadair_trees = deadair_trees
        self.opening_trees = opening_trees
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.n_jobs = n_jobs
        self.random_state = random_state

    def make_forest(self, trees: int, salt: int) -> RandomForestClassifier:
        """A forest with this estimator's settings; `salt` keeps the stages' random streams apart."""
        seed = None if self.random_state is None else self.random_state + salt
        return RandomForestClassifier(n_estimators=trees, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                                      class_weight="balanced", n_jobs=self.n_jobs, random_state=seed)

    def blocks(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dead-air block, opening block) of X."""
        if self.deadair_columns is None:
            return X, X
        return X[:, : self.deadair_columns], X[:, self.deadair_columns :]

    def fit(self, X, y) -> CallOpeningClassifier:
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if self.deadair_columns is not None and not 0 < self.deadair_columns < X.shape[1]:
            raise ValueError(f"deadair_columns={self.deadair_columns} leaves no column for one of the stages "
                             f"(X has {X.shape[1]})")
        self.classes_ = unique_labels(y)
        deadair, opening = self.blocks(X)
        is_deadair = y == self.deadair_class
        self.deadair_ = self.make_forest(self.deadair_trees, 0).fit(deadair, is_deadair) if is_deadair.any() else None
        live = ~is_deadair
        self.opening_ = self.make_forest(self.opening_trees, 1).fit(opening[live], y[live]) if live.any() else None
        return self

    def combine(self, p_deadair: np.ndarray | None, p_opening: np.ndarray | None) -> np.ndarray:
        """Class scores in `classes_` order from P(dead air) per row and the opening forest's probabilities."""
        return combine_scores([str(c) for c in self.classes_], self.deadair_class,
                              p_deadair if self.deadair_ is not None else None,
                              [str(c) for c in self.opening_.classes_] if self.opening_ is not None else None, p_opening)

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "classes_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        deadair, opening = self.blocks(X)
        p_deadair = self.deadair_.predict_proba(deadair)[:, -1] if self.deadair_ is not None else None
        p_opening = self.opening_.predict_proba(opening) if self.opening_ is not None else None
        return self.combine(p_deadair, p_opening)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


@dataclass(frozen=True)
class ScreenerModel:
    """What `pbxguard train` writes and reproduces byte for byte, pinned by its sha256 (the engine runs its compiled twin)."""

    classifier: CallOpeningClassifier
    synthetic: RandomForestClassifier | None  # None when the training data had no synthetic voices
    rule: DecisionRule
    layout: Mapping = field(default_factory=dict)  # features.layout.layout() at training time
    synthetic_threshold: float = 1.0  # P(synthetic voice) from which a speech opening is a robocall's
    early: EarlyDecisions | None = None  # None: every verdict at the window's end (or its proof)
    early_classifiers: tuple[CallOpeningClassifier, ...] = ()  # one per early horizon, on that prefix

    def scores(self, X) -> list[dict[str, float]]:
        classes = [str(c) for c in self.classifier.classes_]
        return [dict(zip(classes, row.tolist())) for row in self.classifier.predict_proba(X)]

    def predict(self, X) -> np.ndarray:
        """Labels, `ABSTAIN` where the rule abstains."""
        return np.array([self.rule.decide(s) for s in self.scores(X)])

    def synthetic_proba(self, X) -> np.ndarray:
        """P(synthetic voice) per row; zeros without a synthetic-voice stage."""
        if self.synthetic is None:
            return np.zeros(len(X))
        return self.synthetic.predict_proba(self.classifier.blocks(np.asarray(X, dtype=np.float64))[1])[:, 1]

    @classmethod
    def load(cls, models_dir: Path, manifest_sha256: str = "") -> ScreenerModel:
        """Unpickle the trained model only once `persist.verified` has checked it and scikit-learn's version matches."""
        path, manifest = verified(models_dir, manifest_sha256, MODEL_FILE)
        wanted = manifest.get("sklearn_version")
        if wanted and wanted != sklearn.__version__:
            raise ModelError(f"{path}: trained with scikit-learn {wanted}, this is {sklearn.__version__}; retrain or install {wanted}")
        model = joblib.load(path)
        if not isinstance(model, cls) or dict(model.layout) != layout():
            raise ModelError(f"{path}: not a ScreenerModel for this feature layout; retrain with 'pbxguard train'")
        return model
