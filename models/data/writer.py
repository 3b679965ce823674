"""Files of a build: the output folder, per-motion files, statistics, split lists, meta.json, SHA256SUMS."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from models.data.captions import text_line
from models.data.config import SPLITS
from models.data.motions import Motion
from models.motion.features import features_to_joints

OUTPUTS = ("new_joint_vecs", "new_joints", "texts")
FILES = ("Mean.npy", "Std.npy", "meta.json", "DATASET_CARD.md", "SHA256SUMS") + tuple(
    f"{s}.txt" for s in (*SPLITS, "train_val", "all")
)


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Create the output folders; with `overwrite`, first remove what a previous build wrote."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out_dir} is not empty (pass overwrite=True / --overwrite)")
        for name in OUTPUTS:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in FILES:
            (out_dir / name).unlink(missing_ok=True)
    for name in OUTPUTS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)


def write_motion(out_dir: Path, motion: Motion) -> None:
    """new_joint_vecs/<id>.npy, new_joints/<id>.npy (recovered from the features) and texts/<id>.txt."""
    feats = motion.features
    np.save(out_dir / "new_joint_vecs" / f"{motion.motion_id}.npy", feats.astype(np.float32))
    np.save(out_dir / "new_joints" / f"{motion.motion_id}.npy", np.asarray(features_to_joints(feats), dtype=np.float32))
    lines = [text_line(c) for c in motion.captions]
    (out_dir / "texts" / f"{motion.motion_id}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_index(out_dir: Path, split_ids: dict[str, list[str]], meta: dict[str, dict]) -> None:
    """The split lists (train, val, test, train_val, all; sorted ids) and meta.json."""
    for s in SPLITS:
        split_ids[s].sort()
    lists = {**split_ids, "train_val": sorted(split_ids["train"] + split_ids["val"])}
    lists["all"] = sorted(lists["train_val"] + split_ids["test"])
    for name, id_list in lists.items():
        (out_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in id_list), encoding="utf-8")
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def write_statistics(out_dir: Path, mean: np.ndarray, std: np.ndarray) -> None:
    np.save(out_dir / "Mean.npy", mean)
    np.save(out_dir / "Std.npy", std)


def write_checksums(out_dir: Path) -> None:
    """SHA256SUMS over every file the build wrote (sorted paths)."""
    lines = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        rel = path.relative_to(out_dir).as_posix()
        if rel.split("/")[0] not in OUTPUTS and rel not in FILES:
            continue
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    (out_dir / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")
