"""One entry point for every unlearning method (used by the CLI and the Celery worker).

`run_unlearning` loads (or copies) a model, applies the method, and writes a new native checkpoint whose
manifest.json records the parent's sha256, the method, every parameter, the concept (inline), the
method's result (e.g. LCR's selected codes per layer), the software version, a timestamp and file hashes.

LCR also writes `OUT/private/lcr_overlay.safetensors` with the original codebook rows. It is not listed in
the public bundle's manifest: the operator must keep `private/` away from any published copy of `OUT`
(`restore_overlay(OUT, OUT/private/lcr_overlay.safetensors)` gives back the parent model bit-exactly).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models.common.markdown import render
from models.data.concepts import file_version
from models.evaluator.safety_guard import GUARD_DIR, GuardPolicy, SafetyGuard
from models.io.native import is_native, sha256_file
from models.pipelines import MotionPipeline, default_model_dir
from models.unlearn.config import UnlearnConfig
from models.unlearn.lcr import OVERLAY_FILE, save_overlay
from models.unlearn.lcr import restore_overlay as restore
from models.unlearn.method import UnlearnContext, UnlearnResult
from models.unlearn.methods import get_method
from models.unlearn.params import MethodParams
from models.version import package_version

Progress = Callable[[float, str], None]
PRIVATE_DIR = "private"
PRIVATE_README = """This folder holds PRIVATE data of an LCR-unlearned model: the original codebook rows that
LCR replaced. With them, `models.unlearn.restore_overlay(<model dir>, <this folder>/lcr_overlay.safetensors)`
restores the full, un-unlearned parent model. Never publish or serve this folder: copy or ship the model
directory without `private/`. The public files (listed in ../manifest.json) do not contain these rows.
"""


# ---------------------------------------------------------------------------------------------- digests
def checkpoint_files(path: str | Path) -> dict[str, str]:
    """sha256 of a native checkpoint's public files (config.json and *.safetensors, not private/)."""
    path = Path(path)
    return {p.name: sha256_file(p) for p in sorted(path.glob("*.safetensors")) + [path / "config.json"]}


def files_digest(files: Mapping[str, str]) -> str:
    """One sha256 for a {file name: sha256} map (the same files a manifest lists)."""
    return hashlib.sha256(json.dumps(dict(files), sort_keys=True).encode()).hexdigest()


def pipeline_digest(pipeline) -> str:
    """sha256 over every weight tensor and the normalisation statistics of an in-memory pipeline."""
    h = hashlib.sha256(pipeline.kind.encode())
    for name, module in sorted(pipeline.modules().items()):
        for key, value in sorted(module.state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    for stat in (pipeline.mean, pipeline.std):
        h.update(stat.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def copy_pipeline(pipeline):
    """A copy whose weights can be edited without touching `pipeline` (the text encoder is shared)."""
    return pipeline.copy()


def _load_parent(model, device: str) -> tuple[Any, dict[str, Any]]:
    if isinstance(model, MotionPipeline):
        return copy_pipeline(model), {
            "path": None,
            "sha256": pipeline_digest(model),
            "digest_of": "tensors",
            "method": model.manifest.get("method"),
        }
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found")
    pipeline = MotionPipeline.from_pretrained(path, device=device)
    if is_native(path):
        info = {"sha256": files_digest(checkpoint_files(path)), "digest_of": "files"}
    else:
        info = {"sha256": pipeline_digest(pipeline), "digest_of": "tensors"}
    return pipeline, {"path": str(path.resolve()), **info, "method": pipeline.manifest.get("method")}


def _card(parent_card: str, manifest: dict[str, Any]) -> str:
    """The parent's model card with an Unlearning section (package template `templates/unlearning_card.md`)."""
    concept = manifest["concept"]
    return render(
        __file__, "templates/unlearning_card.md", parent=parent_card.rstrip(), method=manifest["method"],
        concept=concept["name"], keywords=", ".join(k for ks in concept["sub_concepts"].values() for k in ks),
        parent_sha256=manifest["parent"]["sha256"], version=manifest["software_version"],
        created=manifest["created"],
    )


# ---------------------------------------------------------------------------------------------- entry point
def run_unlearning(config: UnlearnConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Unlearn `config.concept` from `config.model` with `config.method` and write the result to
    `config.out_dir` -> the written manifest dict. progress(fraction, message)."""
    started = time.monotonic()
    report = progress or (lambda fraction, message: None)
    method = get_method(config.method)
    params = method.params.from_dict(config.params)
    data_dir = config.dataset(config.method) if method.uses_data(params) else None

    report(0.0, "loading model")
    pipeline, parent = _load_parent(config.model, config.device)
    report(0.05, f"running {config.method}")

    def stage(fraction: float, message: str) -> None:
        report(0.05 + 0.85 * min(max(fraction, 0.0), 1.0), message)

    context = UnlearnContext(config.resolved_concept, params, stage, data_dir)
    done = method.apply(pipeline, context)
    report(0.9, "writing checkpoint")
    manifest = _manifest(config, params, parent, done, data_dir, time.monotonic() - started)
    classifier_dir = default_model_dir("violence-classifier")
    guard = GuardPolicy() if config.wants_guard() and (config.guard or classifier_dir.is_dir()) else None
    manifest["safety_guard"] = None if guard is None else {"dir": GUARD_DIR, "policy": guard.to_dict()}
    _write(done, manifest, config.out_dir, parent)
    if guard is not None:
        SafetyGuard.attach(config.out_dir, classifier_dir, guard)
    written = json.loads((config.out_dir / "manifest.json").read_text(encoding="utf-8"))
    report(1.0, f"wrote {config.out_dir}")
    return written


def _manifest(config: UnlearnConfig, params: MethodParams, parent: dict[str, Any], done: UnlearnResult,
              data_dir: Path | None, seconds: float) -> dict[str, Any]:
    concept = config.resolved_concept
    return {
        "format": "hmu-unlearned",
        "method": config.method,
        "params": params.to_dict(),
        "concept": concept.to_dict(),
        "concepts_file_version": file_version(),
        "parent": parent,
        "lineage": [
            *done.pipeline.manifest.get("lineage", []),
            {"method": config.method, "concept": concept.name, "parent_sha256": parent["sha256"]},
        ],
        "data": {"dir": str(data_dir.resolve())} if data_dir is not None else None,
        "result": done.result,
        "software_version": package_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(config.device),
        "seconds": round(seconds, 3),
    }


def _write(done: UnlearnResult, manifest: dict[str, Any], out: Path, parent: dict[str, Any]) -> None:
    """The public checkpoint (with its manifest and card) and, if any, the private overlay."""
    pipeline = done.pipeline
    pipeline.manifest = manifest
    pipeline.save_pretrained(out, card=_card(pipeline.card or "# text-to-motion model", manifest))
    if done.overlay:
        private = out / PRIVATE_DIR
        save_overlay(
            done.overlay,
            private / OVERLAY_FILE,
            {"public_vq_sha256": sha256_file(out / "vq.safetensors"), "parent_sha256": parent["sha256"]},
        )
        (private / "README.txt").write_text(PRIVATE_README, encoding="utf-8")


def restore_overlay(public_dir: str | Path, overlay_file: str | Path | None = None):
    """The full parent pipeline from an LCR checkpoint and its private overlay (default OUT/private/...)."""
    return restore(public_dir, overlay_file or Path(public_dir) / PRIVATE_DIR / OVERLAY_FILE)
