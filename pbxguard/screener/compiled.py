"""The model the engine runs: the trained `ScreenerModel`'s forests as flat arrays and its rules as data, saved
as one `.npz` of plain arrays (no pickle, so opening it runs no code) and loaded without scikit-learn.

A forest is evaluated on one row in numpy without sklearn's per-call overhead (`predict_proba` costs ~10 ms
per call whatever the batch size; a call needs one row): all trees' nodes go into flat arrays and every tree
steps down one level per numpy operation, so a 100-tree forest costs one small loop over the depth. The result
equals `predict_proba`: sklearn compares float32 features against float64 thresholds with `<=`, and so does this.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pbxguard.features.analysis import Analysis
from pbxguard.screener.decision import DEADAIR_CLASS, DecisionRule, EarlyDecisions, combine_scores
from pbxguard.screener.persist import ModelError
from pbxguard.screener.verdict import CLASSES

if TYPE_CHECKING:  # the trained model's types; importing them would import scikit-learn
    from sklearn.ensemble import RandomForestClassifier

    from pbxguard.screener.estimators import CallOpeningClassifier, ScreenerModel

FORMAT = 1
_NODE_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed entry time: the same model gives the same file


@dataclass(frozen=True, eq=False)
class CompiledForest:
    feature: np.ndarray  # per node: the feature compared (0 at a leaf)
    threshold: np.ndarray  # per node: go left when feature <= threshold (+inf at a leaf, which stays put)
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray  # per node: class fractions
    roots: np.ndarray  # each tree's first node
    depth: int
    classes: tuple[str, ...]

    @classmethod
    def from_sklearn(cls, forest: RandomForestClassifier) -> CompiledForest:
        features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            n = tree.node_count
            leaf = tree.children_left < 0
            nodes = np.arange(n) + offset
            features.append(np.where(leaf, 0, tree.feature))
            thresholds.append(np.where(leaf, np.inf, tree.threshold))
            lefts.append(np.where(leaf, nodes, tree.children_left + offset))
            rights.append(np.where(leaf, nodes, tree.children_right + offset))
            value = tree.value[:, 0, :]
            values.append(value / value.sum(axis=1, keepdims=True))
            roots.append(offset)
            offset += n
            depth = max(depth, tree.max_depth)
        return cls(np.concatenate(features).astype(np.intp), np.concatenate(thresholds), np.concatenate(lefts).astype(np.intp),
                   np.concatenate(rights).astype(np.intp), np.concatenate(values), np.array(roots, dtype=np.intp), int(depth),
                   tuple(str(c) for c in forest.classes_))

    def predict_proba(self, row: np.ndarray) -> np.ndarray:
        """Class probabilities for one feature row (1-D), in `classes` order."""
        x = np.asarray(row, dtype=np.float32).astype(np.float64)
        node = self.roots
        for _ in range(self.depth):
            node = np.where(x[self.feature[node]] <= self.threshold[node], self.left[node], self.right[node])
        return self.value[node].sum(axis=0) / len(self.roots)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{name}": getattr(self, name) for name in _NODE_ARRAYS}

    def meta(self) -> dict:
        return {"depth": self.depth, "classes": list(self.classes)}

    @classmethod
    def read(cls, arrays: Mapping[str, np.ndarray], prefix: str, meta: dict) -> CompiledForest:
        nodes = {name: arrays[f"{prefix}.{name}"] for name in _NODE_ARRAYS}
        return cls(**nodes, depth=int(meta["depth"]), classes=tuple(meta["classes"]))


@dataclass(frozen=True, eq=False)
class CompiledClassifier:
    """A CallOpeningClassifier: its dead-air forest (P(dead air)) and opening forest (the other classes)."""

    classes: tuple[str, ...]
    deadair: CompiledForest | None
    opening: CompiledForest | None
    deadair_class: str = DEADAIR_CLASS

    @classmethod
    def from_sklearn(cls, classifier: CallOpeningClassifier) -> CompiledClassifier:
        def compiled(forest: RandomForestClassifier | None) -> CompiledForest | None:
            return CompiledForest.from_sklearn(forest) if forest is not None else None

        return cls(tuple(str(c) for c in classifier.classes_), compiled(classifier.deadair_), compiled(classifier.opening_),
                   classifier.deadair_class)

    def scores(self, analysis: Analysis) -> dict[str, float]:
        """One score per class in CLASSES (0 for those it does not learn)."""
        p_deadair = self.deadair.predict_proba(analysis.deadair_vector)[1:2] if self.deadair is not None else None
        p_opening = self.opening.predict_proba(analysis.opening_vector)[None, :] if self.opening is not None else None
        learned = combine_scores(self.classes, self.deadair_class, p_deadair,
                                 self.opening.classes if self.opening is not None else None, p_opening)[0]
        return {c: 0.0 for c in CLASSES} | {c: float(v) for c, v in zip(self.classes, learned)}

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {k: v for stage in ("deadair", "opening") if (forest := getattr(self, stage)) is not None
                for k, v in forest.arrays(f"{prefix}.{stage}").items()}

    def meta(self) -> dict:
        return {"classes": list(self.classes), "deadair_class": self.deadair_class,
                **{stage: forest.meta() if (forest := getattr(self, stage)) is not None else None for stage in ("deadair", "opening")}}

    @classmethod
    def read(cls, arrays: Mapping[str, np.ndarray], prefix: str, meta: dict) -> CompiledClassifier:
        def stage(name: str) -> CompiledForest | None:
            return CompiledForest.read(arrays, f"{prefix}.{name}", meta[name]) if meta[name] is not None else None

        return cls(tuple(meta["classes"]), stage("deadair"), stage("opening"), meta["deadair_class"])


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """A ScreenerModel as the engine runs it (same fields, compiled classifiers)."""

    classifier: CompiledClassifier
    synthetic: CompiledForest | None
    rule: DecisionRule
    layout: Mapping = field(default_factory=dict)
    synthetic_threshold: float = 1.0
    early: EarlyDecisions | None = None
    early_classifiers: tuple[CompiledClassifier, ...] = ()

    @classmethod
    def from_model(cls, model: ScreenerModel) -> CompiledModel:
        return cls(CompiledClassifier.from_sklearn(model.classifier),
                   CompiledForest.from_sklearn(model.synthetic) if model.synthetic is not None else None,
                   model.rule, dict(model.layout), model.synthetic_threshold, model.early,
                   tuple(CompiledClassifier.from_sklearn(c) for c in model.early_classifiers))

    def save(self, path: Path) -> None:
        arrays = self.classifier.arrays("classifier")
        if self.synthetic is not None:
            arrays |= self.synthetic.arrays("synthetic")
        for k, classifier in enumerate(self.early_classifiers):
            arrays |= classifier.arrays(f"early{k}")
        meta = {"format": FORMAT, "layout": dict(self.layout), "rule": _rule_data(self.rule),
                "synthetic_threshold": self.synthetic_threshold, "classifier": self.classifier.meta(),
                "synthetic": self.synthetic.meta() if self.synthetic is not None else None,
                "early": None if self.early is None else {"horizons_ms": list(self.early.horizons_ms),
                                                          "thresholds": [dict(t) for t in self.early.thresholds],
                                                          "rule": _rule_data(self.early.rule)},
                "early_classifiers": [c.meta() for c in self.early_classifiers]}
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        with zipfile.ZipFile(path, "w") as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> CompiledModel:
        """Read a file `save` wrote; the caller has checked its sha256 against the pinned manifest."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            meta = json.loads(arrays.pop("meta").tobytes())
            if meta.get("format") != FORMAT:
                raise ModelError(f"{path}: compiled model format {meta.get('format')}, this pbxguard reads {FORMAT}; retrain")
            early = meta["early"]
            if early is not None:
                early = EarlyDecisions(tuple(early["horizons_ms"]), tuple(early["thresholds"]), _rule(early["rule"]))
            return cls(CompiledClassifier.read(arrays, "classifier", meta["classifier"]),
                       CompiledForest.read(arrays, "synthetic", meta["synthetic"]) if meta["synthetic"] is not None else None,
                       _rule(meta["rule"]), meta["layout"], float(meta["synthetic_threshold"]), early,
                       tuple(CompiledClassifier.read(arrays, f"early{k}", m) for k, m in enumerate(meta["early_classifiers"])))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{path}: not a compiled pbxguard model ({exc}); retrain with 'pbxguard train'") from None


def _rule_data(rule: DecisionRule) -> dict[str, Any]:
    return {"order": list(rule.order), "human_costs": dict(rule.human_costs), "thresholds": dict(rule.thresholds)}


def _rule(data: Mapping[str, Any]) -> DecisionRule:
    return DecisionRule(tuple(data["order"]), dict(data["human_costs"]), dict(data["thresholds"]))

