"""Model files: the manifest, the sha256 pin, and loading.

joblib files are pickles, and unpickling runs code: every file is hashed and compared with the folder's
manifest.json before it is opened, and a mismatch is refused. The manifest itself is pinned from outside the
folder, so that whoever can write the folder cannot bring a pickle with a manifest to match: the shipped
models by SHIPPED_MANIFEST_SHA256 here (package code), a site's models by `engine.manifest_sha256` in the
configuration (`pbxguard train` prints it). The shipped models are package data (`pbxguard/models/`), so an
installed wheel finds them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import sklearn

from pbxguard.features.layout import layout
from pbxguard.screener.estimators import ScreenerModel

MANIFEST = "manifest.json"
MODEL_FILE = "screener.joblib"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# sha256 of pbxguard/models/manifest.json; retraining the shipped model changes it (tests/train checks both)
SHIPPED_MANIFEST_SHA256 = "c331166b5d600da278dfa9e0bb962c1560d67d7abe30d44d48430f042f1dd7cc"


class ModelError(RuntimeError):
    """Model files missing, tampered with, or for another scikit-learn."""


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_manifest(models_dir: Path) -> dict:
    path = Path(models_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: no model manifest (train one with 'pbxguard train')") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: manifest is not valid JSON ({exc})") from None


def manifest_pin(models_dir: Path) -> str:
    """What `engine.manifest_sha256` must say for these models."""
    return sha256_of(Path(models_dir) / MANIFEST)


def load_pinned(models_dir: Path, manifest_sha256: str = "", name: str = MODEL_FILE) -> tuple[ScreenerModel, dict]:
    """Unpickle models_dir/name only if the manifest matches its pin, the file matches the manifest, and
    sklearn's version and the feature layout match."""
    models_dir = Path(models_dir)
    shipped = models_dir.resolve() == DEFAULT_MODELS_DIR
    pin = manifest_sha256 or (SHIPPED_MANIFEST_SHA256 if shipped else "")
    manifest_path = models_dir / MANIFEST
    if not pin:
        raise ModelError(f"{models_dir}: these models are not pinned; if you trained them, set engine.manifest_sha256 "
                         f"to the sha256 of {manifest_path} (pbxguard train prints it)")
    if manifest_path.exists() and (actual := sha256_of(manifest_path)) != pin:
        raise ModelError(f"{manifest_path}: sha256 {actual} is not the pinned {pin}; refusing these models")
    manifest = read_manifest(models_dir)
    entry = manifest.get("files", {}).get(name)
    if entry is None:
        raise ModelError(f"{models_dir / MANIFEST}: does not list {name}")
    path = models_dir / name
    if not path.exists():
        raise ModelError(f"{path}: model file missing")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ModelError(f"{path}: sha256 {actual} does not match the manifest ({entry['sha256']}); refusing to unpickle it")
    wanted = manifest.get("sklearn_version")
    if wanted and wanted != sklearn.__version__:
        raise ModelError(f"{path}: trained with scikit-learn {wanted}, this is {sklearn.__version__}; retrain or install {wanted}")
    if manifest.get("layout") != layout():  # checked before unpickling: a stale model is not even opened
        raise ModelError(f"{path}: trained on feature layout {manifest.get('layout')}, this pbxguard computes {layout()}; "
                         "retrain with 'pbxguard train'")
    model = joblib.load(path)
    if not isinstance(model, ScreenerModel) or dict(model.layout) != layout():
        raise ModelError(f"{path}: not a ScreenerModel for this feature layout; retrain with 'pbxguard train'")
    return model, manifest
