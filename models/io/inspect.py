"""`hmu inspect PATH`: what a checkpoint folder holds and whether (and how) it loads, for a user pointing the tool
at a download.

`inspect_folder` returns a JSON-able report: the format; for the official layout every run folder found (its
role, the opt.txt values that matter, each file in model/ with its size and saved epoch; an unreadable opt.txt
is reported, never fatal), the runs `find_runs` chooses with the given options, whether every component loads
strictly (or the error), and what is missing (CLIP, length estimator). `format_report` renders it as text.
Nothing here needs the text encoder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from models.common.tensors import load_tar
from models.io import native, official
from models.io.opt import read_opt

OPT_FIELDS = ("dataset_name", "vq_name", "nb_code", "code_dim", "num_quantizers", "latent_dim", "n_layers",
              "n_heads", "ff_size", "trans", "share_weight")
EVALUATOR_RUNS = ("Comp_v6_KLD005", "Comp_v6_KLD01", "text_mot_match", "text_mot_match_clip")


def _files(run: Path) -> list[dict[str, Any]]:
    """Each .tar in run/model: name, size in bytes, saved epoch ('ep' or 'epoch'; None if not readable)."""
    files = []
    for tar in sorted((run / "model").glob("*.tar")):
        try:
            content = load_tar(tar)
            epoch = content.get("ep", content.get("epoch")) if isinstance(content, dict) else None
        except (ValueError, RuntimeError, OSError, EOFError):
            epoch = None
        files.append({"file": tar.name, "bytes": tar.stat().st_size,
                      "epoch": int(epoch) if isinstance(epoch, (int, float)) else None})
    return files


def _role(run: Path, opt: dict[str, Any] | None) -> str:
    if run.name == "length_estimator":
        return "length estimator"
    if run.name in EVALUATOR_RUNS:
        return "evaluator"
    if run.name.startswith("tres"):
        return "residual transformer"
    if opt is not None and official._is_vq_opt(opt):
        return "rvq-vae"
    if opt is None:
        return "unknown"
    if "latent_dim" in opt:
        return "bamm base transformer" if "trans" in opt else "base transformer"
    return "other"


def _run_entry(run: Path, root: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"run": str(run.relative_to(root)), "files": _files(run)}
    opt = None
    if (run / "opt.txt").is_file():
        try:
            opt = read_opt(run)
        except ValueError as error:
            entry["opt_error"] = str(error)
    entry["role"] = _role(run, opt)
    entry["options"] = {k: opt[k] for k in OPT_FIELDS if opt is not None and k in opt}
    entry["has_meta"] = (run / "meta" / "mean.npy").is_file()
    return entry


def _official_dirs(path: Path) -> list[Path]:
    """Every folder of run folders at or under `path` (dataset folders of checkpoints roots, BAMM's log/vq)."""
    if (path / "model").is_dir():
        return [path.parent]
    found, level = [], [path]
    for _ in range(4):  # <repo>/log/t2m/<dataset> is three levels down
        found += [d for d in level if any((c / "model").is_dir() for c in d.iterdir() if c.is_dir())]
        level = [c for d in level if d not in found for c in sorted(d.iterdir()) if c.is_dir()]
    return found


def _clip_status(clip_path: str | None) -> tuple[str | None, str | None]:
    where = clip_path or os.environ.get("HMU_CLIP_PATH")
    if where is None:
        return None, "CLIP ViT-B/32 text encoder: pass --clip-path (ViT-B-32.pt, or a Hugging Face folder) or set " \
                     "HMU_CLIP_PATH"
    if not Path(where).exists():
        return where, f"CLIP ViT-B/32 text encoder: {where} does not exist"
    return where, None


def _resolve(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The runs chosen with `options` and whether they load."""
    result: dict[str, Any] = {}
    try:
        runs = official.find_runs(path, **options)
        result["chosen"] = {k: str(v) for k, v in runs.items()}
        parts = official.load_components(runs)
    except (FileNotFoundError, ValueError, KeyError) as error:
        result["loads"] = False
        result["error"] = str(error).strip("'\"")
        return result
    base = parts["base"]
    result.update(loads=True, kind=parts["kind"], dataset=parts["dataset"], trans=base.cfg.trans,
                  num_quantizers=parts["vq"].cfg.num_quantizers, nb_code=parts["vq"].cfg.nb_code,
                  length_estimator=parts["length_estimator"] is not None)
    if parts["length_estimator"] is None:
        result["length_mode"] = "end_token" if parts["kind"] == "bamm" else "lengths must be given"
    else:
        result["length_mode"] = options.get("length_mode") or "estimator"
    return result


def inspect_folder(path: str | Path, clip_path: str | None = None, **official_options: Any) -> dict[str, Any]:
    """Report on `path` (native checkpoint or official layout); `official_options` as for `load_checkpoint`
    (checkpoints_dir, base_name, res_name, which_epoch, length_mode)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if native.is_native(path):
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        files = {p.name: p.stat().st_size for p in sorted(path.glob("*.safetensors"))}
        missing = [f"{name}.safetensors" for name in ("vq", "base", "residual", "stats") if f"{name}.safetensors"
                   not in files]
        return {"path": str(path), "format": "native", "kind": config.get("kind"), "dataset": config.get("dataset"),
                "text_encoder": config.get("text_encoder"), "files": files, "missing": missing,
                "loads": not missing}
    report: dict[str, Any] = {"path": str(path), "format": "official", "runs": []}
    for folder in _official_dirs(path):
        report["runs"] += [_run_entry(c, path if folder.is_relative_to(path) else folder.parent)
                           for c in sorted(folder.iterdir()) if c.is_dir() and (c / "model").is_dir()]
    if not report["runs"]:
        report["format"] = "unknown"
    report.update(_resolve(path, official_options))
    clip, clip_missing = _clip_status(clip_path)
    report["clip"] = clip
    report["missing"] = [m for m in (clip_missing,) if m]
    if report.get("loads") and not report.get("length_estimator") and official_options.get("length_mode") is None:
        report["missing"].append("length estimator (checkpoints/<dataset>/length_estimator/model/finest.tar): "
                                 + ("BAMM predicts lengths with its end token" if report["kind"] == "bamm"
                                    else "every length must be given"))
    return report


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} kB"


def _run_line(run: dict[str, Any]) -> str:
    opts = ", ".join(f"{k} {v}" for k, v in run["options"].items())
    files = ", ".join(f"{f['file']} {_size(f['bytes'])}" + (f" (epoch {f['epoch']})" if f["epoch"] is not None else "")
                      for f in run["files"])
    return f"  {run['run']}: {run['role']}" + (f" [{opts}]" if opts else "") + (f"; {files}" if files else "")


def format_report(report: dict[str, Any]) -> str:
    """The report as text for the terminal."""
    lines = [f"{report['path']}: {report['format']} checkpoint"]
    if report["format"] == "native":
        lines.append(f"  kind {report['kind']}, dataset {report['dataset']}, text encoder {report['text_encoder']}")
        lines += [f"  {name}  {_size(size)}" for name, size in report["files"].items()]
    for run in report.get("runs", []):
        lines.append(_run_line(run))
        if "opt_error" in run:
            lines.append(f"    unreadable opt.txt: {run['opt_error']}")
    for role, where in report.get("chosen", {}).items():
        lines.append(f"  uses {role}: {where}")
    if report.get("loads"):
        detail = "" if report["format"] == "native" else (
            f": {report['kind']} (trans {report['trans']}), dataset {report['dataset']}, {report['num_quantizers']} "
            f"quantizers x {report['nb_code']} codes, lengths by {report['length_mode']}")
        lines.append("loads: yes" + detail)
    else:
        lines.append("loads: no" + (f": {report['error']}" if report.get("error") else ""))
    lines += [f"missing: {m}" for m in report.get("missing", [])]
    return "\n".join(lines)
