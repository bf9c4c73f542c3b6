"""Labelled folders of call audio: the corpus splits and a site's own captured calls.

A folder is labelled by a `labels.csv` (columns `file` and `class`, optionally `subclass`, `split`), or by
class-named subfolders (`silence/abc.wav`). Features are extracted with the engine's own `analyse()`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pbxguard.audio.files import AudioError, read_audio
from pbxguard.audio.format import samples_for
from pbxguard.features.analysis import analyse
from pbxguard.features.layout import WINDOW_MS
from pbxguard.screener.verdict import CLASSES

AUDIO_SUFFIXES = {".wav", ".ul", ".ulaw", ".al", ".alaw", ".sln", ".raw"}


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    subclass: str = ""
    split: str = ""
    source: str = ""  # the corpus's source ids, "|"-joined


def read_labelled(folder: str | Path, labels_csv: str | Path | None = None) -> list[Clip]:
    folder = Path(folder)
    csv_path = Path(labels_csv) if labels_csv else folder / "labels.csv"
    if csv_path.exists():
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"file", "class"} <= set(rows[0]):
            raise ValueError(f"{csv_path}: needs columns 'file' and 'class'")
        clips = [Clip(folder / r["file"], r["class"], r.get("subclass", ""), r.get("split", ""), r.get("source", "")) for r in rows]
    else:
        clips = [Clip(p, p.parent.name) for p in sorted(folder.glob("*/*")) if p.suffix.lower() in AUDIO_SUFFIXES]
    bad = sorted({c.label for c in clips} - set(CLASSES))
    if bad:
        raise ValueError(f"{folder}: unknown classes {bad} (expected some of {', '.join(CLASSES)})")
    if not clips:
        raise ValueError(f"{folder}: no labelled audio (no labels.csv and no class-named subfolders)")
    return clips


def _opening(path: Path) -> np.ndarray | None:
    try:
        return read_audio(path, min_seconds=WINDOW_MS / 1000)[: samples_for(WINDOW_MS)]
    except AudioError:
        return None


def _vector(samples: np.ndarray) -> tuple[np.ndarray, bool]:
    """The learned stages' input for this audio, and whether it is digital silence."""
    a = analyse(samples)
    return np.concatenate([a.deadair_vector, a.opening_vector]), a.levels.digital_silence


def _features(path: Path) -> np.ndarray | None:
    x = _opening(path)
    return None if x is None else _vector(x)[0]


def _prefix_features(job: tuple[Path, tuple[int, ...]]) -> list[tuple[np.ndarray, bool]] | None:
    path, horizons = job
    x = _opening(path)
    return None if x is None else [_vector(x[: samples_for(h)]) for h in horizons]


def pool_map(function, jobs: list, workers: int, progress: bool, desc: str) -> list:
    """`function` over `jobs` in forked worker processes (which inherit the parent's objects), in order."""
    with get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(function, jobs, chunksize=16), total=len(jobs), desc=desc, disable=not progress))


def _stack(rows: list, width: int) -> np.ndarray:
    return np.stack(rows) if rows else np.zeros((0, width))


def extract(clips: list[Clip], workers: int = 2, progress: bool = True, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix of the readable clips and the boolean mask of which clips those are."""
    rows = pool_map(_features, [c.path for c in clips], workers, progress, desc)
    ok = np.array([r is not None for r in rows])
    width = next((len(r) for r in rows if r is not None), 0)
    return _stack([r for r in rows if r is not None], width), ok


def extract_prefixes(clips: list[Clip], horizons_ms: tuple[int, ...], workers: int = 2, progress: bool = True,
                     desc: str = "prefix features") -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per horizon, the feature matrix of the first `horizon` ms of each readable clip and whether that prefix
    is digital silence; and the mask of the readable clips."""
    rows = pool_map(_prefix_features, [(c.path, tuple(horizons_ms)) for c in clips], workers, progress, desc)
    ok = np.array([r is not None for r in rows])
    kept = [r for r in rows if r is not None]
    width = len(kept[0][0][0]) if kept else 0
    matrices = [_stack([r[k][0] for r in kept], width) for k in range(len(horizons_ms))]
    digital = [np.array([r[k][1] for r in kept], dtype=bool) for k in range(len(horizons_ms))]
    return matrices, digital, ok
