"""Evaluate a fitted scikit-learn Random Forest on one row in numpy, without sklearn's per-call overhead.

`RandomForestClassifier.predict_proba` costs ~10 ms per call whatever the batch size; a call needs one row.
All trees' nodes go into flat arrays and every tree steps down one level per numpy operation, so a
100-tree forest costs one small loop over the depth. The result equals `predict_proba`: sklearn compares
float32 features against float64 thresholds with `<=`, and so does this.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier


class CompiledForest:
    def __init__(self, forest: RandomForestClassifier) -> None:
        features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            n = tree.node_count
            leaf = tree.children_left < 0
            nodes = np.arange(n) + offset
            features.append(np.where(leaf, 0, tree.feature))
            thresholds.append(np.where(leaf, np.inf, tree.threshold))  # a leaf always "goes left" to itself
            lefts.append(np.where(leaf, nodes, tree.children_left + offset))
            rights.append(np.where(leaf, nodes, tree.children_right + offset))
            value = tree.value[:, 0, :]
            values.append(value / value.sum(axis=1, keepdims=True))
            roots.append(offset)
            offset += n
            depth = max(depth, tree.max_depth)
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.value = np.concatenate(values)
        self.roots = np.array(roots, dtype=np.intp)
        self.depth = depth
        self.n_trees = len(roots)
        self.classes_ = forest.classes_

    def predict_proba(self, row: np.ndarray) -> np.ndarray:
        """Class probabilities for one feature row (1-D), in `classes_` order."""
        x = np.asarray(row, dtype=np.float32).astype(np.float64)
        node = self.roots
        for _ in range(self.depth):
            node = np.where(x[self.feature[node]] <= self.threshold[node], self.left[node], self.right[node])
        return self.value[node].sum(axis=0) / self.n_trees
