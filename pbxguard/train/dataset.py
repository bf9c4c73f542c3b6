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


def _features(path: Path) -> np.ndarray | None:
    try:
        x = read_audio(path, min_seconds=WINDOW_MS / 1000)[: samples_for(WINDOW_MS)]
    except AudioError:
        return None
    a = analyse(x)
    return np.concatenate([a.deadair_vector, a.opening_vector])


def extract(clips: list[Clip], workers: int = 2, progress: bool = True, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix of the readable clips and the boolean mask of which clips those are."""
    with get_context("fork").Pool(workers) as pool:
        rows = list(tqdm(pool.imap(_features, [c.path for c in clips], chunksize=16), total=len(clips), desc=desc, disable=not progress))
    ok = np.array([r is not None for r in rows])
    width = next((len(r) for r in rows if r is not None), 0)
    return (np.stack([r for r in rows if r is not None]) if ok.any() else np.zeros((0, width))), ok
