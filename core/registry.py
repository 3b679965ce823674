"""Model and dataset registry: plain directories, read without importing torch.

Models are native checkpoint folders (config.json, *.safetensors, MODEL_CARD.md, manifest.json) looked up
by id in `settings.models_dir` (registered, e.g. unlearned, models) and then in `settings.weights_dir`
(shipped models). Named evaluation sets are `settings.datasets_dir/<name>/{forget,retain}` in the
HumanML3D layout (texts/*.txt, new_joint_vecs/*.npy).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from core.settings import Settings

# The one id pattern of models and datasets (API schemas and the registry): a-z 0-9 . _ -, starting with a
# letter or digit, a dot only between two other characters (so no '..', no path separators), at most
# ID_MAX_LENGTH characters. No look-ahead: the same pattern works in pydantic, JSON Schema and Python.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*$"
ID_MAX_LENGTH = 64
_ID = re.compile(ID_PATTERN)
BUNDLE_SUFFIXES = (".safetensors", ".json", ".md")
NATIVE_FORMAT = "hmu-native"
CONFIG_KEYS = ("format", "format_version", "kind", "dataset", "generation")


class NotFound(LookupError):
    """An unknown model or dataset (the gateway answers 404)."""


class InvalidId(ValueError):
    """An id that does not match ID_PATTERN (the gateway answers 422)."""


def is_valid_id(name: str) -> bool:
    return isinstance(name, str) and len(name) <= ID_MAX_LENGTH and _ID.fullmatch(name) is not None


def check_id(name: str, what: str = "model") -> str:
    if not is_valid_id(name):
        raise InvalidId(f"invalid {what} id {str(name)[:80]!r}: use 1-{ID_MAX_LENGTH} of a-z 0-9 . _ - "
                        "(starting with a letter or digit; no '..')")
    return name


def resolve_in(root: Path, name: str, what: str = "model") -> Path:
    """`root/name` for a valid id, checked to stay directly inside `root` (never above or beside it)."""
    check_id(name, what)
    path = Path(root) / name
    if os.path.normpath(path.parent) != os.path.normpath(root) or path.name != name:
        raise InvalidId(f"invalid {what} id {name!r}")
    return path


def model_roots(settings: Settings) -> list[Path]:
    return [Path(settings.models_dir), Path(settings.weights_dir)]


def is_model(path: Path) -> bool:
    """A native checkpoint folder (other folders, e.g. evaluator weights, may share the roots)."""
    return _read_json(path / "config.json").get("format") == NATIVE_FORMAT


def model_dir(settings: Settings, model_id: str) -> Path:
    """Folder of a model by id; NotFound when no root holds it."""
    check_id(model_id)
    for root in model_roots(settings):
        path = resolve_in(root, model_id)
        if is_model(path):
            return path
    raise NotFound(f"model {model_id!r} not found; GET /models lists the available ones")


def model_exists(settings: Settings, model_id: str) -> bool:
    try:
        model_dir(settings, model_id)
    except NotFound:
        return False
    return True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        return {"unreadable": f"{path.name}: {error}"}
    return data if isinstance(data, dict) else {}


def model_summary(settings: Settings, model_id: str) -> dict[str, Any]:
    """Short description used by GET /models."""
    path = model_dir(settings, model_id)
    config, manifest = _read_json(path / "config.json"), _read_json(path / "manifest.json")
    safety = manifest.get("safety_report")
    return {
        "id": model_id,
        "kind": config.get("kind"),
        "dataset": config.get("dataset"),
        "parent": parent_id(manifest.get("parent")),
        "method": manifest.get("method"),
        "default": model_id == settings.default_model,
        "shipped": path.parent == Path(settings.weights_dir),
        "verified": bool(safety["verified"]) if isinstance(safety, dict) and "verified" in safety else None,
    }


def parent_id(parent: Any) -> str | None:
    """The parent model's id from a manifest's `parent` entry (its folder name, else its digest)."""
    if isinstance(parent, dict):
        if parent.get("path"):
            return Path(parent["path"]).name
        return parent.get("sha256")
    return parent if isinstance(parent, str) else None


def model_detail(settings: Settings, model_id: str) -> dict[str, Any]:
    """Card, provenance and file list used by GET /models/{id}."""
    path = model_dir(settings, model_id)
    card = path / "MODEL_CARD.md"
    config = _read_json(path / "config.json")
    manifest = _read_json(path / "manifest.json")
    return {
        **model_summary(settings, model_id),
        "card": card.read_text() if card.is_file() else None,
        "provenance": manifest or None,
        "safety": manifest.get("safety_report") if isinstance(manifest.get("safety_report"), dict) else None,
        "config": {k: config[k] for k in CONFIG_KEYS if k in config},
        "files": [{"name": f.name, "bytes": f.stat().st_size} for f in bundle_files(path)],
    }


def list_models(settings: Settings) -> list[dict[str, Any]]:
    ids: set[str] = set()
    for root in model_roots(settings):
        if root.is_dir():
            ids |= {p.name for p in root.iterdir() if is_valid_id(p.name) and is_model(p)}
    return [model_summary(settings, model_id) for model_id in sorted(ids)]


def bundle_files(path: Path) -> list[Path]:
    """The files of a model bundle (no hidden files, no sub-folders, no links)."""
    return sorted(f for f in path.iterdir()
                  if f.is_file() and not f.is_symlink() and not f.name.startswith(".")
                  and f.suffix in BUNDLE_SUFFIXES)


def dataset_dir(settings: Settings, name: str) -> Path:
    """Folder of a named evaluation set with forget/ and retain/ sub-folders."""
    path = resolve_in(Path(settings.datasets_dir), name, "dataset")
    if not ((path / "forget").is_dir() and (path / "retain").is_dir()):
        raise NotFound(f"dataset {name!r} not found (expected {name}/forget and {name}/retain "
                       "in the datasets folder)")
    return path
