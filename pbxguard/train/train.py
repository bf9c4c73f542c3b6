"""`pbxguard train`: fit the learned stages on the corpus (plus site recordings), tune on val, pin the files.

The test split is never looked at here except to publish its numbers at the end. Thresholds come from
the validation split. The same corpus and seed give byte-identical model files.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, precision_score, recall_score
from sklearn.model_selection import StratifiedShuffleSplit

from pbxguard.features.layout import DEADAIR_FEATURES, layout
from pbxguard.screener.estimators import CallOpeningClassifier, DecisionRule, ScreenerModel
from pbxguard.screener.persist import MANIFEST, MODEL_FILE, sha256_of
from pbxguard.screener.verdict import LEARNED_CLASSES
from pbxguard.train.dataset import Clip, extract, read_labelled

# Hang-up-capable classes get a score threshold that reaches this precision on the validation split.
MIN_PRECISION = {"silence": 0.99, "fax": 0.995, "tone": 0.995}
MAX_FALSE_BLOCK = 0.0025  # half the 0.5 % target, for the margin between validation and unseen calls
CV_SPLITS = 5
SYNTHETIC_TREES = 60


def _learned(clips: list[Clip]) -> list[Clip]:
    return [c for c in clips if c.label in LEARNED_CLASSES]


def classifier(seed: int, workers: int) -> CallOpeningClassifier:
    return CallOpeningClassifier(deadair_columns=len(DEADAIR_FEATURES), random_state=seed, n_jobs=workers)


def cross_validate_deadair(X: np.ndarray, y: np.ndarray, seed: int, workers: int) -> dict:
    """The paper's protocol for the dead-air forest: stratified shuffle-split CV on the training split."""
    model = classifier(seed, workers)
    deadair, _ = model.blocks(X)
    target = y == model.deadair_class
    scores: dict[str, list[float]] = {"accuracy": [], "precision": [], "recall": []}
    for fit_idx, test_idx in StratifiedShuffleSplit(CV_SPLITS, test_size=0.2, random_state=seed).split(deadair, target):
        forest = model.make_forest(model.deadair_trees, 0).fit(deadair[fit_idx], target[fit_idx])
        predicted = forest.predict(deadair[test_idx])
        scores["accuracy"].append(accuracy_score(target[test_idx], predicted))
        scores["precision"].append(precision_score(target[test_idx], predicted, zero_division=0))
        scores["recall"].append(recall_score(target[test_idx], predicted, zero_division=0))
    return {k: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)} for k, v in scores.items()}


def train(corpus: str | Path, out: str | Path, seed: int = 1, site: list[str | Path] | None = None, workers: int = 2,
          progress: bool = True) -> dict:
    corpus, out = Path(corpus), Path(out)
    clips = read_labelled(corpus)
    train_clips = _learned([c for c in clips if c.split == "train"])
    val_clips = _learned([c for c in clips if c.split == "val"])
    site = list(site or [])
    site_clips = [c for folder in site for c in _learned(read_labelled(folder))]
    if not train_clips or not val_clips:
        raise ValueError(f"{corpus}: needs train and val clips of the learned classes ({', '.join(LEARNED_CLASSES)})")
    X, ok = extract(train_clips + site_clips, workers, progress, "train features")
    kept = [c for c, k in zip(train_clips + site_clips, ok) if k]
    y = np.array([c.label for c in kept])
    synthetic = np.array([c.subclass == "robocall" for c in kept])
    Xv, okv = extract(val_clips, workers, progress, "val features")
    yv = np.array([c.label for c, k in zip(val_clips, okv) if k])

    cv = cross_validate_deadair(X, y, seed, workers)
    learned = classifier(seed, workers).fit(X, y)
    synthetic_forest = _synthetic_stage(learned, X, y, synthetic)
    rule = DecisionRule.tune(ScreenerModel(learned, None, DecisionRule()).scores(Xv), yv, MIN_PRECISION, MAX_FALSE_BLOCK)
    for forest in (learned, learned.deadair_, learned.opening_, synthetic_forest):
        if forest is not None:  # the worker count is not part of the model: keep files identical
            forest.set_params(n_jobs=None)
    model = ScreenerModel(learned, synthetic_forest, rule, layout())
    thresholds = {**rule.thresholds, "human_cost": rule.human_cost}
    val_accuracy = float(np.mean(model.predict(Xv) == yv))

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / MODEL_FILE, compress=3)
    digest = sha256_of(out / MODEL_FILE)
    recipe_path = corpus / "recipe.json"
    manifest = {
        "format": 2,
        "layout": layout(),
        "model_version": f"pbxguard-{digest[:12]}",
        "files": {MODEL_FILE: {"sha256": digest}},
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "seed": seed,
        "corpus": json.loads(recipe_path.read_text()) if recipe_path.exists() else {"path": str(corpus)},
        "site_folders": [str(s) for s in site],
        "training_clips": int(len(y)),
        "class_counts": {c: int(np.sum(y == c)) for c in LEARNED_CLASSES},
        "thresholds": thresholds,
        "metrics": {"deadair_cv": cv, "val_accuracy": round(val_accuracy, 4)},
    }
    write_manifest(out, manifest)
    return manifest


def _synthetic_stage(learned: CallOpeningClassifier, X: np.ndarray, y: np.ndarray,
                     synthetic: np.ndarray) -> RandomForestClassifier | None:
    """Among machine openings, synthetic voice or not (people are not synthetic: only machines are asked);
    None when the machines are all of one kind."""
    machine = y == "machine"
    if len(set(synthetic[machine])) < 2:
        return None
    return learned.make_forest(SYNTHETIC_TREES, 2).fit(learned.blocks(X)[1][machine], synthetic[machine])


def write_manifest(out: Path, manifest: dict) -> None:
    (Path(out) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
