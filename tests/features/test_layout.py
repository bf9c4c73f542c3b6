import numpy as np
import pytest

from pbxguard.features import analysis
from pbxguard.features.layout import DEADAIR_FEATURES, FEATURES, OPENING_FEATURES


def test_names_are_unique_within_each_block():
    assert len(set(OPENING_FEATURES)) == len(OPENING_FEATURES)
    assert len(set(DEADAIR_FEATURES)) == len(DEADAIR_FEATURES)
    assert len(set(FEATURES)) == len(FEATURES)


def test_vectors_are_built_by_name_in_the_layouts_order():
    values = {name: float(k) for k, name in enumerate(reversed(OPENING_FEATURES))}
    vector = analysis.by_name(values, OPENING_FEATURES)
    assert [vector[k] for k in range(3)] == [values[n] for n in OPENING_FEATURES[:3]]
    with pytest.raises(KeyError):
        analysis.by_name({**values, "stray": 1.0}, OPENING_FEATURES)


def test_analyse_fills_every_feature():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=16000) * 300).astype(np.int16)
    a = analysis.analyse(x)
    assert a.opening_vector.shape == (len(OPENING_FEATURES),) and a.deadair_vector.shape == (len(DEADAIR_FEATURES),)
    assert np.isfinite(a.opening_vector).all() and np.isfinite(a.deadair_vector).all()
