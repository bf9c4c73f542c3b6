"""The learned stages: one scikit-learn estimator, trained, saved and hash-pinned as one object.

X is the concatenation of `analyse()`'s two vectors: the Marchex dead-air block, then the opening block.
- `deadair_`: the paper's 100-tree Random Forest on the spectral bases (plus their energy shares and the
  level, which the bases lack): P(dead air).
- `opening_`: a Random Forest over the opening features for everything that is not dead air:
  P(class | not dead air) for human, machine, noise, music, tone, fax.
- `synthetic_`: among machine openings, P(synthetic voice): a robocall or TTS rather than a recording.
Scores combine as P(silence) = p_d and P(c) = (1 - p_d) * P(c | not dead air).

Blocking a live caller costs more than letting a machine through: `decide()` names a class other than
human only when it is `human_cost_` times likelier than human (a Bayes decision with that cost), and a
hang-up-capable class only above its precision threshold (`thresholds_`); both are tuned on validation
data by `calibrate()`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.utils.validation import check_is_fitted

from pbxguard.features.analysis import DEADAIR_FEATURES

LEARNED_CLASSES = ("human", "machine", "silence", "noise", "music", "tone", "fax")
SPEECH_CLASSES = ("human", "machine")
HUMAN_COSTS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)


class CallOpeningClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, deadair_trees: int = 100, opening_trees: int = 100, synthetic_trees: int = 60,
                 max_depth: int | None = 14, min_samples_leaf: int = 2, n_jobs: int | None = None,
                 random_state: int = 0) -> None:
        self.deadair_trees = deadair_trees
        self.opening_trees = opening_trees
        self.synthetic_trees = synthetic_trees
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _forest(self, trees: int, salt: int) -> RandomForestClassifier:
        return RandomForestClassifier(
            n_estimators=trees, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
            class_weight="balanced", n_jobs=self.n_jobs, random_state=self.random_state + salt)

    @staticmethod
    def split(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(DEADAIR_FEATURES)
        return X[:, :n], X[:, n:]

    def fit(self, X: np.ndarray, y: np.ndarray, synthetic: np.ndarray | None = None) -> CallOpeningClassifier:
        """y: class names from LEARNED_CLASSES; synthetic: True where the voice is synthetic."""
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        unknown = set(y) - set(LEARNED_CLASSES)
        if unknown:
            raise ValueError(f"labels the learned stages do not take: {sorted(unknown)}")
        deadair, opening = self.split(X)
        self.classes_ = np.array(LEARNED_CLASSES)
        self.deadair_ = self._forest(self.deadair_trees, 0).fit(deadair, y == "silence")
        live = y != "silence"
        self.opening_ = self._forest(self.opening_trees, 1).fit(opening[live], y[live])
        machine = y == "machine"  # people are not synthetic: the voice question is asked of machines
        flags = np.zeros(len(y), dtype=bool) if synthetic is None else np.asarray(synthetic, dtype=bool)
        both = len(set(flags[machine])) == 2
        self.synthetic_ = self._forest(self.synthetic_trees, 2).fit(opening[machine], flags[machine]) if both else None
        self.thresholds_: dict[str, float] = {}
        self.human_cost_ = 1.0
        return self

    def combine(self, p_deadair: np.ndarray, p_opening: np.ndarray) -> np.ndarray:
        """Class scores in `classes_` order from P(dead air) and the opening forest's probabilities."""
        scores = np.zeros((len(p_deadair), len(self.classes_)))
        scores[:, list(self.classes_).index("silence")] = p_deadair
        columns = [list(self.classes_).index(c) for c in self.opening_.classes_]
        scores[:, columns] = (1.0 - p_deadair)[:, None] * p_opening
        return scores

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "opening_")
        deadair, opening = self.split(np.asarray(X, dtype=np.float64))
        return self.combine(self.deadair_.predict_proba(deadair)[:, 1], self.opening_.predict_proba(opening))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.decide(row) for row in self.predict_proba(X)])

    def decide(self, scores: np.ndarray) -> str:
        """The label for one row of class scores: cost-weighted for live callers, then thresholded."""
        human = list(self.classes_).index("human")
        weighted = scores.copy()
        weighted[human] *= self.human_cost_
        best = int(np.argmax(weighted))
        label = str(self.classes_[best])
        return label if scores[best] >= self.thresholds_.get(label, 0.0) else "unknown"

    def synthetic_proba(self, X: np.ndarray) -> np.ndarray:
        """P(synthetic voice) per row; zeros when the training data had no synthetic voices."""
        check_is_fitted(self, "opening_")
        if self.synthetic_ is None:
            return np.zeros(len(X))
        return self.synthetic_.predict_proba(self.split(np.asarray(X, dtype=np.float64))[1])[:, 1]

    def calibrate(self, X: np.ndarray, y: np.ndarray, min_precision: dict[str, float],
                  max_false_block: float) -> dict[str, float]:
        """Tune the decision on held-out validation data (never the test split).

        First the smallest human cost whose live-caller false-block rate on (X, y) is at most
        `max_false_block`; then, per class, the lowest score threshold whose precision reaches the
        minimum. A class whose precision cannot be reached gets threshold 1.0 (never decided alone).
        """
        scores, y = self.predict_proba(X), np.asarray(y)
        self.thresholds_ = {}
        humans = y == "human"
        for cost in HUMAN_COSTS:
            self.human_cost_ = cost
            if not humans.any() or np.mean([self.decide(s) != "human" for s in scores[humans]]) <= max_false_block:
                break
        weighted = scores.copy()
        weighted[:, list(self.classes_).index("human")] *= self.human_cost_
        labels = self.classes_[np.argmax(weighted, axis=1)]
        for cls, floor in min_precision.items():
            k = list(self.classes_).index(cls)
            picked = labels == cls
            candidates = np.unique(scores[picked, k]) if picked.any() else np.array([])
            best = 1.0
            for t in candidates:  # ascending: the first that reaches the precision keeps most recall
                chosen = picked & (scores[:, k] >= t)
                if chosen.any() and np.mean(y[chosen] == cls) >= floor:
                    best = float(t)
                    break
            self.thresholds_[cls] = best
        return {**self.thresholds_, "human_cost": self.human_cost_}
