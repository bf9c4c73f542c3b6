"""`pbxguard train`: fit the learned stages on the corpus (plus site recordings), tune on val, pin the files.

The test split is never looked at here except to publish its numbers at the end. Thresholds come from
the validation split. The same corpus and seed give byte-identical model files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, precision_score, recall_score
from sklearn.model_selection import StratifiedShuffleSplit

from pbxguard.audio.files import read_audio
from pbxguard.features.layout import DEADAIR_FEATURES, WINDOW_MS, layout
from pbxguard.screener.compiled import CompiledModel
from pbxguard.screener.decision import DecisionRule, EarlyDecisions
from pbxguard.screener.estimators import CallOpeningClassifier, ScreenerModel
from pbxguard.screener.persist import COMPILED_FILE, MANIFEST, MODEL_FILE, sha256_of
from pbxguard.screener.screener import Screener
from pbxguard.screener.verdict import LEARNED_CLASSES
from pbxguard.train.dataset import Clip, extract, extract_prefixes, pool_map, read_labelled

# Hang-up-capable classes get a score threshold that reaches this precision on the validation split.
MIN_PRECISION = {"silence": 0.99, "fax": 0.995, "tone": 0.995}
MAX_FALSE_BLOCK = 0.0025  # half the 0.5 % target, for the margin between validation and unseen calls
CV_SPLITS = 5
SYNTHETIC_TREES = 60
SYNTHETIC_MAX_HUMANS = 0.001  # validation callers a synthetic-voice verdict may take: a fifth of the live-caller budget
# Early answers: prefix models at these horizons (every 100 ms check can reach one), smaller forests than the
# window's, and the right answers per class they may cost against the whole window's (the 0.5-point target).
# One horizon: five (400-1600 ms) cost 4x the CPU per call (10.5 ms) and 260 MB, and moved no median (README).
EARLY_HORIZONS_MS = (1000,)
EARLY_TREES = 60
EARLY_BUDGET = 0.005


def _learned(clips: list[Clip]) -> list[Clip]:
    return [c for c in clips if c.label in LEARNED_CLASSES]


def classifier(seed: int, workers: int) -> CallOpeningClassifier:
    return CallOpeningClassifier(deadair_columns=len(DEADAIR_FEATURES), random_state=seed, n_jobs=workers)


def sequential(*forests) -> None:
    """Predict in one thread from here on. A forest with n_jobs > 1 adds its trees' probabilities in the order
    its threads finish, so the last bit of a score, and a threshold tuned on it, changed with the machine's
    load (seen: the dead-air threshold 0.39903944773175537 against ...555). The worker count is not part of
    the model either: the files stay identical."""
    for forest in forests:
        if forest is not None:
            forest.set_params(n_jobs=None)


def cross_validate_deadair(X: np.ndarray, y: np.ndarray, seed: int, workers: int) -> dict:
    """The paper's protocol for the dead-air forest: stratified shuffle-split CV on the training split."""
    model = classifier(seed, workers)
    deadair, _ = model.blocks(X)
    target = y == model.deadair_class
    scores: dict[str, list[float]] = {"accuracy": [], "precision": [], "recall": []}
    for fit_idx, test_idx in StratifiedShuffleSplit(CV_SPLITS, test_size=0.2, random_state=seed).split(deadair, target):
        forest = model.make_forest(model.deadair_trees, 0).fit(deadair[fit_idx], target[fit_idx])
        sequential(forest)
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
    val_kept = [c for c, k in zip(val_clips, okv) if k]
    yv = np.array([c.label for c in val_kept])

    cv = cross_validate_deadair(X, y, seed, workers)
    learned = classifier(seed, workers).fit(X, y)
    synthetic_forest = _synthetic_stage(learned, X, y, synthetic)
    sequential(learned, learned.deadair_, learned.opening_, synthetic_forest)
    rule = DecisionRule.tune(ScreenerModel(learned, None, DecisionRule()).scores(Xv), yv, MIN_PRECISION, MAX_FALSE_BLOCK)
    synthetic_cut = 1.0
    if synthetic_forest is not None:
        voices = ScreenerModel(learned, synthetic_forest, rule).synthetic_proba(Xv[yv == "human"])
        synthetic_cut = synthetic_threshold(voices)
    model = ScreenerModel(learned, synthetic_forest, rule, layout(), synthetic_cut)
    early, early_classifiers = early_stage(model, kept, y, val_kept, yv, seed, workers, progress)
    model = dataclasses.replace(model, early=early, early_classifiers=early_classifiers)
    thresholds = {**rule.thresholds, "human_costs": dict(rule.human_costs), "synthetic_voice": synthetic_cut,
                  "early": [{"horizon_ms": h, **t} for h, t in zip(early.horizons_ms, early.thresholds)]}
    val_accuracy = float(np.mean(model.predict(Xv) == yv))

    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / MODEL_FILE, compress=3)
    CompiledModel.from_model(model).save(out / COMPILED_FILE)
    digest = sha256_of(out / MODEL_FILE)
    recipe_path = corpus / "recipe.json"
    manifest = {
        "format": 2,
        "layout": layout(),
        "model_version": f"pbxguard-{digest[:12]}",
        "files": {MODEL_FILE: {"sha256": digest}, COMPILED_FILE: {"sha256": sha256_of(out / COMPILED_FILE)}},
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "python": ".".join(platform.python_version_tuple()[:2]),  # the pickles need it; a patch release must not change the pin
        "seed": seed,
        "corpus": json.loads(recipe_path.read_text()) if recipe_path.exists() else {"path": str(corpus)},
        "corpus_sha256": corpus_digest(corpus, clips),
        "site_folders": [str(s) for s in site],
        "training_clips": int(len(y)),
        # unreadable, or shorter than the window (a site's capture of a call answered early holds only the audio
        # up to its answer): left out of training
        "skipped_clips": int((~ok).sum()),
        "class_counts": {c: int(np.sum(y == c)) for c in LEARNED_CLASSES},
        "thresholds": thresholds,
        "metrics": {"deadair_cv": cv, "val_accuracy": round(val_accuracy, 4)},
    }
    write_manifest(out, manifest)
    return manifest


_SCREENER: Screener | None = None  # the model being tuned, for the forked workers of `final_answers`


def _screen(path: Path) -> tuple[str, float, bool]:
    assert _SCREENER is not None
    verdict = _SCREENER.screen(read_audio(path, min_seconds=WINDOW_MS / 1000))
    return verdict.label, verdict.decided_ms, verdict.proven


def final_answers(model: ScreenerModel, clips: list[Clip], workers: int,
                  progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the whole engine (proofs, learned stages, overrides) answers on each clip, when, and whether proven."""
    global _SCREENER
    _SCREENER = Screener.from_model(CompiledModel.from_model(model))
    try:
        answers = pool_map(_screen, [c.path for c in clips], workers, progress, "val answers")
    finally:
        _SCREENER = None
    labels, times, proofs = (np.array([a[k] for a in answers]) for k in range(3))
    return labels, times, proofs.astype(bool)


def early_stage(model: ScreenerModel, clips: list[Clip], y: np.ndarray, val_clips: list[Clip], yv: np.ndarray,
                seed: int, workers: int, progress: bool) -> tuple[EarlyDecisions, tuple[CallOpeningClassifier, ...]]:
    """Prefix classifiers fitted on the training clips' first EARLY_HORIZONS_MS, thresholds tuned on the
    validation clips against the whole window's answers (`model` has no early stage yet)."""
    prefixes, _, _ = extract_prefixes(clips, EARLY_HORIZONS_MS, workers, progress, "train prefixes")
    classifiers = []
    for k, X in enumerate(prefixes):
        forest = CallOpeningClassifier(deadair_columns=len(DEADAIR_FEATURES), deadair_trees=EARLY_TREES, opening_trees=EARLY_TREES,
                                       random_state=seed + 10 * (k + 1), n_jobs=workers).fit(X, y)
        sequential(forest, forest.deadair_, forest.opening_)
        classifiers.append(forest)
    val_prefixes, digital, _ = extract_prefixes(val_clips, EARLY_HORIZONS_MS, workers, progress, "val prefixes")
    scores = [[dict(zip(map(str, c.classes_), row.tolist())) for row in c.predict_proba(X)] for c, X in zip(classifiers, val_prefixes)]
    final, final_ms, proven = final_answers(model, val_clips, workers, progress)
    thresholds = EarlyDecisions.tune(EARLY_HORIZONS_MS, scores, digital, final, final_ms, yv, EARLY_BUDGET, model.rule, proven)
    return EarlyDecisions(EARLY_HORIZONS_MS, thresholds, model.rule), tuple(classifiers)


def _synthetic_stage(learned: CallOpeningClassifier, X: np.ndarray, y: np.ndarray,
                     synthetic: np.ndarray) -> RandomForestClassifier | None:
    """Among speech openings (people and machines), a synthetic voice or not; None when no speech opening
    or every one is of one kind."""
    speech = np.isin(y, ["human", "machine"])
    if len(set(synthetic[speech])) < 2:
        return None
    return learned.make_forest(SYNTHETIC_TREES, 2).fit(learned.blocks(X)[1][speech], synthetic[speech])


def synthetic_threshold(p_human: np.ndarray) -> float:
    """The lowest P(synthetic) above 0.5 that at most SYNTHETIC_MAX_HUMANS of the validation callers reach:
    above it a voice is a robocall's whatever the cost-weighted scores say. 1.0 (never) without callers."""
    ordered = np.sort(p_human)[::-1]
    allowed = int(np.floor(len(ordered) * SYNTHETIC_MAX_HUMANS))
    if len(ordered) == 0:
        return 1.0
    return float(min(1.0, max(0.5, np.nextafter(ordered[allowed], 1.0)))) if allowed < len(ordered) else 0.5


def corpus_digest(corpus: Path, clips: list[Clip]) -> str:
    """One hash of the labels and every clip's bytes: which corpus, exactly, a model was trained on."""
    digest = hashlib.sha256((corpus / "labels.csv").read_bytes() if (corpus / "labels.csv").exists() else b"")
    for clip in sorted(clips, key=lambda c: str(c.path)):
        digest.update(str(clip.path.relative_to(corpus)).encode() + b"\0" + hashlib.sha256(clip.path.read_bytes()).digest())
    return digest.hexdigest()


def write_manifest(out: Path, manifest: dict) -> None:
    (Path(out) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
