import json
import shutil

import pytest

from pbxguard.screener import ModelError, Screener
from pbxguard.screener.persist import MANIFEST, MODEL_FILE, manifest_pin


@pytest.fixture
def models_copy(small_models, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(small_models, target)
    return target


def test_tampered_model_file_is_refused_before_unpickling(models_copy):
    path = models_copy / MODEL_FILE
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="does not match the manifest"):
        Screener(models_copy, manifest_sha256=manifest_pin(models_copy))


def test_pickle_that_would_run_code_is_never_opened(models_copy, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    (models_copy / MODEL_FILE).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelError):
        Screener(models_copy, manifest_sha256=manifest_pin(models_copy))
    assert not marker.exists()


def test_missing_manifest_and_missing_file(models_copy):
    pin = manifest_pin(models_copy)
    (models_copy / MODEL_FILE).unlink()
    with pytest.raises(ModelError, match="model file missing"):
        Screener(models_copy, manifest_sha256=pin)
    (models_copy / MANIFEST).unlink()
    with pytest.raises(ModelError, match="no model manifest"):
        Screener(models_copy, manifest_sha256=pin)


def test_other_scikit_learn_version_is_refused(models_copy):
    manifest = json.loads((models_copy / MANIFEST).read_text())
    manifest["sklearn_version"] = "0.1"
    (models_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="scikit-learn 0.1"):
        Screener(models_copy, manifest_sha256=manifest_pin(models_copy))


def test_the_manifest_is_pinned_from_outside_the_folder(models_copy, tmp_path):
    """Whoever can write the models folder cannot bring a pickle and a manifest to match it."""
    pin = manifest_pin(models_copy)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import hashlib
    import pickle

    evil = pickle.dumps(Evil())
    manifest = json.loads((models_copy / MANIFEST).read_text())
    manifest["files"][MODEL_FILE]["sha256"] = hashlib.sha256(evil).hexdigest()
    (models_copy / MODEL_FILE).write_bytes(evil)
    (models_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not the pinned"):
        Screener(models_copy, manifest_sha256=pin)
    with pytest.raises(ModelError, match="not pinned"):
        Screener(models_copy)  # a folder of one's own needs its pin
    assert not marker.exists()
