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
import importlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models.data.concepts import Concept, concept_from_keywords, file_version, get_concept
from models.unlearn.params import MethodParams

Progress = Callable[[float, str], None]
# method -> (module, params class, apply function, needs a dataset)
METHODS: dict[str, tuple[str, str, str, bool]] = {
    "lcr": ("models.unlearn.lcr", "LCRParams", "apply_lcr", True),
    "uce": ("models.unlearn.uce", "UCEParams", "apply_uce", False),
    "rece": ("models.unlearn.rece", "RECEParams", "apply_rece", False),
    "esd": ("models.unlearn.esd", "ESDParams", "apply_esd", False),
    "ft": ("models.unlearn.finetune", "FTParams", "apply_ft", True),
}
DATA_ENV = "HMU_UNLEARN_DATA_DIR"
PRIVATE_DIR = "private"
PRIVATE_README = """This folder holds PRIVATE data of an LCR-unlearned model: the original codebook rows that
LCR replaced. With them, `models.unlearn.restore_overlay(<model dir>, <this folder>/lcr_overlay.safetensors)`
restores the full, un-unlearned parent model. Never publish or serve this folder: copy or ship the model
directory without `private/`. The public files (listed in ../manifest.json) do not contain these rows.
"""


def method_spec(method: str) -> tuple[type[MethodParams], Callable[..., Any], bool]:
    """(params class, apply function, needs_data) of `method`."""
    if method not in METHODS:
        raise ValueError(f"unknown unlearning method {method!r}; expected one of {sorted(METHODS)}")
    module_name, params_name, apply_name, needs_data = METHODS[method]
    module = importlib.import_module(module_name)
    return getattr(module, params_name), getattr(module, apply_name), needs_data


def parse_params(method: str, params: Mapping[str, Any] | None) -> MethodParams:
    """Validated parameters of `method` (unknown keys -> ValueError naming them)."""
    return method_spec(method)[0].from_dict(params)


def resolve_concept(
    concept: str | dict | Concept | Sequence[str] | None,
    keywords: Sequence[str] | None = None,
    concept_files: Sequence[str | Path] = (),
) -> Concept:
    """A concept from a name, an inline dict, a Concept, or a keyword list."""
    if (concept is None) == (keywords is None):
        raise ValueError("give exactly one of a concept (name or definition) or a keyword list")
    if keywords is not None:
        return concept_from_keywords(keywords, name="custom")
    if isinstance(concept, (list, tuple)):
        return concept_from_keywords(concept, name="custom")
    return get_concept(concept, concept_files)


# ---------------------------------------------------------------------------------------------- digests
def checkpoint_files(path: str | Path) -> dict[str, str]:
    """sha256 of a native checkpoint's public files (config.json and *.safetensors, not private/)."""
    from models.io.native import sha256_file

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
    from models.io.native import is_native
    from models.pipelines import MotionPipeline

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
    concept = manifest["concept"]
    lines = [
        parent_card.rstrip(),
        "",
        "## Unlearning",
        "",
        f"* method: `{manifest['method']}`; concept: `{concept['name']}` "
        f"({', '.join(k for ks in concept['sub_concepts'].values() for k in ks)})",
        f"* parent sha256: `{manifest['parent']['sha256']}`",
        f"* parameters and results: see manifest.json "
        f"(hmu {manifest['software_version']}, {manifest['created']})",
    ]
    return "\n".join(lines) + "\n"


DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "default"


def default_data_dir() -> Path | None:
    """The dataset used by LCR / FT when none is given: `$HMU_UNLEARN_DATA_DIR`, else `data/default` of the
    checkout when it exists (built by `hmu data build --out data/default`)."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value)
    return DEFAULT_DATA_DIR if (DEFAULT_DATA_DIR / "new_joint_vecs").is_dir() else None


# ---------------------------------------------------------------------------------------------- entry point
def run_unlearning(
    model=None,
    method: str | None = None,
    concept: str | dict | Concept | Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    keywords: Sequence[str] | None = None,
    device: str = "cpu",
    concept_files: Sequence[str | Path] = (),
    base_model_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Unlearn `concept` from `model` (a checkpoint path or a MotionPipeline, which is not modified) with
    `method` (lcr | uce | rece | esd | ft) and write the result to `out_dir` -> the manifest dict.

    params: method parameters (validated; see the *Params dataclasses). data_dir: HumanML3D-format folder
    (LCR, FT, ESD with x_source="data"); default `$HMU_UNLEARN_DATA_DIR`. progress(fraction, message).
    `base_model_dir` / `parameters` are aliases of `model` / `params` (worker adapter).
    """
    from models.version import package_version

    model = model if model is not None else base_model_dir
    params = params if params is not None else parameters
    if model is None or method is None or out_dir is None:
        raise ValueError("run_unlearning needs a model, a method and an out_dir")
    started = time.monotonic()
    report = progress or (lambda fraction, message: None)
    concept_obj = resolve_concept(concept, keywords, concept_files)
    parsed = parse_params(method, params)
    _, apply, needs_data = method_spec(method)
    data_path = Path(data_dir) if data_dir is not None else default_data_dir()
    uses_data = needs_data or getattr(parsed, "x_source", None) == "data"
    if uses_data:
        if data_path is None:
            raise ValueError(f"{method} needs a HumanML3D-format dataset: pass data_dir, set {DATA_ENV}, or build "
                             "the default one with `hmu data build --out data/default`")
        if not (data_path / "texts").is_dir() or not (data_path / "new_joint_vecs").is_dir():
            raise FileNotFoundError(f"{data_path} is not a HumanML3D-format folder (texts/, new_joint_vecs/)")
    out = Path(out_dir)
    if (out / "config.json").exists():
        raise ValueError(f"{out} already holds a model; choose a new output folder")
    if isinstance(model, (str, Path)) and Path(model).resolve() == out.resolve():
        raise ValueError("the output folder must differ from the model folder")

    report(0.0, "loading model")
    pipeline, parent = _load_parent(model, device)
    report(0.05, f"running {method}")

    def stage(fraction: float, message: str) -> None:
        report(0.05 + 0.85 * min(max(fraction, 0.0), 1.0), message)

    kwargs: dict[str, Any] = {"progress": stage}
    if uses_data:
        kwargs["data_dir"] = data_path
    output = apply(pipeline, concept_obj, parsed, **kwargs)
    result, overlay = output if isinstance(output, tuple) else (output, None)

    report(0.9, "writing checkpoint")
    manifest: dict[str, Any] = {
        "format": "hmu-unlearned",
        "method": method,
        "params": parsed.to_dict(),
        "concept": concept_obj.to_dict(),
        "concepts_file_version": file_version(),
        "parent": parent,
        "lineage": [
            *pipeline.manifest.get("lineage", []),
            {"method": method, "concept": concept_obj.name, "parent_sha256": parent["sha256"]},
        ],
        "data": {"dir": str(data_path.resolve())} if uses_data else None,
        "result": result,
        "software_version": package_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "seconds": round(time.monotonic() - started, 3),
    }
    pipeline.manifest = manifest
    pipeline.save_pretrained(out, card=_card(pipeline.card or "# text-to-motion model", manifest))
    if overlay:
        from models.io.native import sha256_file
        from models.unlearn.lcr import OVERLAY_FILE, save_overlay

        private = out / PRIVATE_DIR
        save_overlay(
            overlay,
            private / OVERLAY_FILE,
            {"public_vq_sha256": sha256_file(out / "vq.safetensors"), "parent_sha256": parent["sha256"]},
        )
        (private / "README.txt").write_text(PRIVATE_README, encoding="utf-8")
    written = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    report(1.0, f"wrote {out}")
    return written


def restore_overlay(public_dir: str | Path, overlay_file: str | Path | None = None):
    """The full parent pipeline from an LCR checkpoint and its private overlay (default OUT/private/...)."""
    from models.unlearn.lcr import OVERLAY_FILE
    from models.unlearn.lcr import restore_overlay as restore

    return restore(public_dir, overlay_file or Path(public_dir) / PRIVATE_DIR / OVERLAY_FILE)
