"""Model files: the manifest, the sha256 pin, and the checks before any model file is opened.

A model folder holds the trained model (a joblib pickle, and unpickling runs code) and its compiled arrays
(what the engine loads, without scikit-learn). Every file is hashed and compared with the folder's
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

from pbxguard.features.layout import layout
from pbxguard.shipped import MODELS_DIR

MANIFEST = "manifest.json"
MODEL_FILE = "screener.joblib"  # the trained ScreenerModel (a scikit-learn pickle): what training reproduces
COMPILED_FILE = "screener.npz"  # its compiled twin, plain arrays (no pickle): what the engine loads
# sha256 of pbxguard/models/manifest.json; retraining the shipped model changes it (tests/train checks both)
SHIPPED_MANIFEST_SHA256 = "1dfd4c9a03bb9c6547b129818e2b11c15c7e0d4bb19fdf31c1df8f4f8f3ef683"


class ModelError(RuntimeError):
    """Model files missing, tampered with, for another feature layout or another scikit-learn."""


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


def verified(models_dir: Path, manifest_sha256: str = "", name: str = COMPILED_FILE) -> tuple[Path, dict]:
    """models_dir/name and the manifest, once the manifest matches its pin, the file matches the manifest and
    the feature layout matches this pbxguard's (checked before anything is opened: a stale model is not read)."""
    models_dir = Path(models_dir)
    shipped = models_dir.resolve() == MODELS_DIR
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
        raise ModelError(f"{path}: sha256 {actual} does not match the manifest ({entry['sha256']}); refusing to open it")
    if manifest.get("layout") != layout():
        raise ModelError(f"{path}: trained on feature layout {manifest.get('layout')}, this pbxguard computes {layout()}; "
                         "retrain with 'pbxguard train'")
    return path, manifest
