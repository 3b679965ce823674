"""Load the shared mocap sources and folders of BVH files as clips on the SMPL 22-joint chain."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.data.bvh import forward_kinematics, read_bvh, resample
from models.data.labels import ClipLabel, ase_label, bandai_label, bvh_label, cmu_label
from models.data.skeletons import SOURCE_SKELETONS, map_to_smpl

# source name -> (folder under mocap/, npz file, label function)
SHARED_SOURCES = {
    "bandai_namco": ("bandai_namco", "bandai_namco_joints20fps.npz", bandai_label),
    "ase_reallusion": ("ase_reallusion", "ase_reallusion_joints20fps.npz", ase_label),
    "cmu": ("cmu_subjects_1to7", "cmu_s1-7_joints20fps.npz", cmu_label),
}
SOURCE_ORDER = ("bandai_namco", "ase_reallusion", "cmu", "bvh")
KITML_FILE = "cmu_metadata/cmu_kitml_captions.json"


@dataclass
class SourceClip:
    source: str  # one of SOURCE_ORDER
    clip_id: str  # the source's own clip id (BVH: the file stem)
    label: ClipLabel
    joints: np.ndarray  # (T, 22, 3) float32, SMPL chain, Y up, metres, 20 fps
    origin: str  # "npz" or "bvh:<file name>"
    kitml: list[dict] = field(default_factory=list)  # KIT-ML captions {"text", "start", "end"} (s)


def _mocap_dir(shared_dir: str | Path) -> Path:
    root = Path(shared_dir)
    mocap = root / "mocap" if (root / "mocap").is_dir() else root
    if not any((mocap / folder).is_dir() for folder, _, _ in SHARED_SOURCES.values()):
        raise FileNotFoundError(f"no mocap sources under {root} (expected {root}/mocap/bandai_namco, ...)")
    return mocap


def load_shared_clips(
    shared_dir: str | Path, sources: tuple[str, ...] | None = None, ids: set[str] | None = None
) -> list[SourceClip]:
    """Clips of the shared mocap npz files (`shared_dir` = the data root holding `mocap/`).

    `sources` restricts the sources (default: all three); `ids` keeps only these source clip ids.
    """
    mocap = _mocap_dir(shared_dir)
    sources = tuple(SHARED_SOURCES) if sources is None else sources
    kitml_path = mocap / KITML_FILE
    kitml = json.loads(kitml_path.read_text()) if kitml_path.is_file() else {}
    out: list[SourceClip] = []
    for source in sources:
        if source not in SHARED_SOURCES:
            raise ValueError(f"unknown shared source {source!r}; expected one of {sorted(SHARED_SOURCES)}")
        folder, npz_name, label_fn = SHARED_SOURCES[source]
        npz_path, clips_path = mocap / folder / npz_name, mocap / folder / "clips.json"
        for p in (npz_path, clips_path):
            if not p.is_file():
                raise FileNotFoundError(f"{source}: missing {p}")
        entries = json.loads(clips_path.read_text())
        with np.load(npz_path, allow_pickle=False) as data:
            joints, offsets, names = (
                data["joints"],
                data["offsets"],
                tuple(str(n) for n in data["joint_names"]),
            )
            fps = float(data["fps"])
        if fps != 20.0:
            raise ValueError(f"{npz_path}: expected 20 fps, got {fps}")
        if len(offsets) != len(entries) + 1:
            raise ValueError(
                f"{source}: {len(entries)} clips in clips.json but {len(offsets) - 1} in the npz"
            )
        for i, entry in enumerate(entries):
            if ids is not None and entry["id"] not in ids:
                continue
            clip = joints[offsets[i] : offsets[i + 1]].astype(np.float32)
            out.append(
                SourceClip(
                    source=source,
                    clip_id=entry["id"],
                    label=label_fn(entry),
                    joints=map_to_smpl(clip, source, names),
                    origin="npz",
                    kitml=list(kitml.get(entry["id"], [])) if source == "cmu" else [],
                )
            )
    return out


def _detect_skeleton(names: list[str]) -> str:
    present = set(names)
    for name, sk in SOURCE_SKELETONS.items():
        if set(sk.joint_names) <= present:
            return name
    raise ValueError(
        "BVH skeleton not recognised: it must contain the joints of one of "
        + "; ".join(f"{n} ({', '.join(sk.joint_names[:4])}, ...)" for n, sk in SOURCE_SKELETONS.items())
    )


def load_bvh_clip(path: str | Path, scale: float = 0.01, fps: float = 20.0) -> SourceClip:
    """One BVH file (Y up; `scale` converts its units to metres) -> SourceClip on the SMPL chain.

    The skeleton is recognised from its joint names (Bandai Namco or CC_Base); the label comes from
    the file name (`labels.bvh_label`). Bandai Namco file names keep source "bandai_namco".
    """
    path = Path(path)
    bvh = read_bvh(path)
    skeleton = _detect_skeleton(bvh.names)
    sk = SOURCE_SKELETONS[skeleton]
    world = forward_kinematics(bvh)[:, [bvh.names.index(n) for n in sk.joint_names]] * scale
    joints = resample(world, bvh.fps, fps).astype(np.float32)
    label = bvh_label(path.stem)
    is_bandai_name = skeleton == "bandai_namco" and path.stem.startswith("dataset-")
    return SourceClip(
        source="bandai_namco" if is_bandai_name else "bvh",
        clip_id=path.stem,
        label=label,
        joints=map_to_smpl(joints, skeleton),
        origin=f"bvh:{path.name}",
    )


def load_bvh_dir(bvh_dir: str | Path, scale: float = 0.01) -> list[SourceClip]:
    """Every `*.bvh` of a folder (sorted by name)."""
    bvh_dir = Path(bvh_dir)
    if not bvh_dir.is_dir():
        raise FileNotFoundError(f"BVH folder not found: {bvh_dir}")
    files = sorted(bvh_dir.glob("*.bvh"))
    if not files:
        raise FileNotFoundError(f"no .bvh files in {bvh_dir}")
    return [load_bvh_clip(f, scale=scale) for f in files]
