import hashlib
import json
import pickle
import shutil

import pytest

from pbxguard.screener.estimators import ScreenerModel
from pbxguard.screener.persist import COMPILED_FILE, MANIFEST, MODEL_FILE, ModelError, manifest_pin
from pbxguard.screener.screener import Screener

# Each model file with what opens it: the engine opens the compiled arrays, training and tests the pickle.
OPENERS = [pytest.param(COMPILED_FILE, Screener, id="compiled"),
           pytest.param(MODEL_FILE, lambda path, manifest_sha256: ScreenerModel.load(path, manifest_sha256), id="pickle")]


@pytest.fixture
def models_copy(small_models, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(small_models, target)
    return target


def evil_pickle(marker) -> bytes:
    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Evil())


def swap_in(models, name, marker) -> None:
    """Put a pickle that would create `marker` in place of model file `name`, and a manifest that matches it."""
    evil = evil_pickle(marker)
    manifest = json.loads((models / MANIFEST).read_text())
    manifest["files"][name]["sha256"] = hashlib.sha256(evil).hexdigest()
    (models / name).write_bytes(evil)
    (models / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(("name", "opener"), OPENERS)
def test_tampered_model_file_is_refused_before_it_is_opened(models_copy, name, opener):
    path = models_copy / name
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="does not match the manifest"):
        opener(models_copy, manifest_sha256=manifest_pin(models_copy))


@pytest.mark.parametrize(("name", "opener"), OPENERS)
def test_pickle_that_would_run_code_is_never_opened(models_copy, tmp_path, name, opener):
    marker = tmp_path / "pwned"
    (models_copy / name).write_bytes(evil_pickle(marker))
    with pytest.raises(ModelError):
        opener(models_copy, manifest_sha256=manifest_pin(models_copy))
    assert not marker.exists()


def test_the_compiled_file_is_never_unpickled_even_when_it_matches_its_manifest(models_copy, tmp_path):
    """np.load without pickles: a pickle put in the compiled file's place, with a manifest and pin to match, is
    refused as not a compiled model, and its code does not run."""
    marker = tmp_path / "pwned"
    swap_in(models_copy, COMPILED_FILE, marker)
    with pytest.raises(ModelError, match="not a compiled pbxguard model"):
        Screener(models_copy, manifest_sha256=manifest_pin(models_copy))
    assert not marker.exists()


@pytest.mark.parametrize(("name", "opener"), OPENERS)
def test_missing_manifest_and_missing_file(models_copy, name, opener):
    pin = manifest_pin(models_copy)
    (models_copy / name).unlink()
    with pytest.raises(ModelError, match="model file missing"):
        opener(models_copy, manifest_sha256=pin)
    (models_copy / MANIFEST).unlink()
    with pytest.raises(ModelError, match="no model manifest"):
        opener(models_copy, manifest_sha256=pin)


def test_other_scikit_learn_version_is_refused_for_the_pickle_only(models_copy):
    manifest = json.loads((models_copy / MANIFEST).read_text())
    manifest["sklearn_version"] = "0.1"
    (models_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="scikit-learn 0.1"):
        ScreenerModel.load(models_copy, manifest_sha256=manifest_pin(models_copy))
    Screener(models_copy, manifest_sha256=manifest_pin(models_copy))  # the engine does not use scikit-learn


@pytest.mark.parametrize(("name", "opener"), OPENERS)
def test_the_manifest_is_pinned_from_outside_the_folder(models_copy, tmp_path, name, opener):
    """Whoever can write the models folder cannot bring a model file and a manifest to match it."""
    pin = manifest_pin(models_copy)
    marker = tmp_path / "pwned"
    swap_in(models_copy, name, marker)
    with pytest.raises(ModelError, match="not the pinned"):
        opener(models_copy, manifest_sha256=pin)
    with pytest.raises(ModelError, match="not pinned"):
        opener(models_copy, manifest_sha256="")  # a folder of one's own needs its pin
    assert not marker.exists()
