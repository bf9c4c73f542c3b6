import csv
import hashlib
import json

import numpy as np

from pbxguard.audio.files import read_audio
from pbxguard.audio.format import SAMPLE_RATE
from pbxguard.features.levels import measure_levels
from pbxguard.train import corpus


def rows_of(folder):
    with open(folder / "labels.csv") as f:
        return list(csv.DictReader(f))


def test_labels_and_layout(small_corpus):
    rows = rows_of(small_corpus)
    assert len(rows) == len(corpus.CLASSES) * 40
    assert {r["class"] for r in rows} == set(corpus.CLASSES)
    for r in rows[::17]:
        x = read_audio(small_corpus / r["file"])
        assert len(x) == int(corpus.CLIP_SECONDS * SAMPLE_RATE)
        params = json.loads(r["params"])
        assert isinstance(params, dict) and params, r["file"]  # every clip says how it was made
    for split in corpus.SPLITS:
        assert (small_corpus / split / "labels.csv").exists()


def test_sources_never_cross_splits(small_corpus):
    split_of = {}
    for r in rows_of(small_corpus):
        for source in r["source"].split("|"):
            if source == "generated":
                continue
            source = source.split("@")[0]  # the perturbation factor is not a different recording
            assert split_of.setdefault(source, r["split"]) == r["split"], source


def test_same_seed_same_bytes(small_corpus, tmp_path):
    corpus.build(tmp_path, seed=7, per_class=40, progress=False)
    for r in rows_of(small_corpus)[::11]:
        a = hashlib.sha256((small_corpus / r["file"]).read_bytes()).digest()
        b = hashlib.sha256((tmp_path / r["file"]).read_bytes()).digest()
        assert a == b, r["file"]
    assert (small_corpus / "labels.csv").read_bytes() == (tmp_path / "labels.csv").read_bytes()


def test_dead_air_and_digital_silence_meet_their_specs(small_corpus):
    for r in rows_of(small_corpus):
        if r["class"] not in ("silence", "digital_silence"):
            continue
        levels = measure_levels(read_audio(small_corpus / r["file"]))
        if r["class"] == "silence":  # up to -55 dBFS RMS with peaks near -40 after any codec chain
            assert -92 < levels.rms_dbfs < -54 and levels.peak_dbfs <= -36 and not levels.digital_silence
        else:
            assert levels.digital_silence


def test_split_assignment_is_stable_and_fills_every_split():
    ids = [f"voice{i}" for i in range(10)]
    first = corpus.assign_splits(ids)
    assert first == corpus.assign_splits(list(reversed(ids)))
    assert set(first.values()) == set(corpus.SPLITS)
    assert np.isclose(sum(v == "train" for v in first.values()), 6)
