"""Issue 16 figures: FK error of exported BVH / .glb files per rig, export time, bone-length drift.

Generates motions with both shipped models, exports each on every rig at 20 and 60 fps, world and in place,
reads the files back (models.data.bvh, gltf_export.read_glb), runs forward kinematics and compares the
bones that follow our joints with the generated joints (all joints, all frames). Prints a Markdown table.

    python bench/motion_export.py [--seed 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from models.data.bvh import forward_kinematics, parse_bvh
from models.motion.bvh_export import joints_to_bvh
from models.motion.export import ExportOptions, export_motion
from models.motion.gltf_export import read_glb
from models.motion.quaternion import quat_to_matrix
from models.motion.rigs import RIG_NAMES, get_rig
from models.motion.skeleton import SMPL22
from models.pipelines import MotionPipeline, default_model_dir

TEXTS = ["a person walks forward and turns around", "a person jumps and waves", "a person kicks with the left leg",
         "a person runs in a circle"]
LENGTHS = [196, 120, 80, 160]


def _mapped(names: list[str], positions: np.ndarray, skeleton: str | None) -> np.ndarray:
    rig = get_rig(skeleton)
    bone_of = rig.bone_of()
    return positions[:, [names.index(rig.names[bone_of[j]]) for j in range(SMPL22.num_joints)]]


def glb_joints(data: bytes, skeleton: str | None) -> np.ndarray:
    glb = read_glb(data)
    local = quat_to_matrix(glb["rotations"])
    rot, pos = np.zeros(local.shape), np.zeros(glb["translations"].shape)
    for b, p in enumerate(glb["parents"]):
        rot[:, b] = local[:, b] if p < 0 else rot[:, p] @ local[:, b]
        pos[:, b] = glb["translations"][:, b] if p < 0 else (
            pos[:, p] + np.einsum("tab,tb->ta", rot[:, p], glb["translations"][:, b]))
    if glb["trajectory"] is not None:
        pos = pos + glb["trajectory"][:, None]
    return _mapped(glb["names"], pos, skeleton)


def bvh_joints(text: str, skeleton: str | None, trajectory: np.ndarray | None) -> np.ndarray:
    bvh = parse_bvh(text)
    pos = forward_kinematics(bvh) / 100.0
    if trajectory is not None:
        pos = pos + trajectory[:, None]
    return _mapped(bvh.names, pos, skeleton)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    errors: dict[tuple[str, str], list[float]] = {}
    seconds: list[float] = []
    drift, plain = [], []
    for name in ("momask-small", "bamm-small"):
        pipeline = MotionPipeline.from_pretrained(default_model_dir(name))
        for motion in pipeline.generate(TEXTS, lengths=LENGTHS, seed=args.seed):
            joints = motion.joints.astype(np.float64)
            lengths = SMPL22.bone_lengths(joints)
            drift.append(np.abs(lengths - lengths.mean(axis=0)).max())
            plain.append(np.linalg.norm(bvh_joints(joints_to_bvh(joints), None, None) - joints, axis=-1).max())
            for skeleton in RIG_NAMES:
                for fps in (20, 60):
                    for root_motion in ("world", "in_place"):
                        options = dict(skeleton=skeleton, fps=fps, root_motion=root_motion)
                        start = time.perf_counter()
                        glb = export_motion(joints, ExportOptions(format="glb", **options))
                        seconds.append(time.perf_counter() - start)
                        step = fps // 20
                        got = glb_joints(glb.data, skeleton)[::step]
                        errors.setdefault((skeleton, "glb"), []).append(np.linalg.norm(got - joints, axis=-1).max())
                        bvh = export_motion(joints, ExportOptions(format="bvh", **options))
                        got = bvh_joints(bvh.data, skeleton, bvh.trajectory)[::step]
                        errors.setdefault((skeleton, "bvh"), []).append(np.linalg.norm(got - joints, axis=-1).max())
    print("| rig | file | files | max FK error, all joints and frames |\n| --- | --- | --- | --- |")
    for (skeleton, fmt), values in errors.items():
        print(f"| {skeleton} | {fmt} | {len(values)} | {max(values) * 1000:.4f} mm |")
    print(f"\nbone-length drift of the generated motions (max |length - clip mean|): {max(drift) * 100:.1f} cm")
    print(f"plain rigid BVH of our skeleton (format bvh, no option): max FK error {max(plain) * 100:.1f} cm")
    print(f".glb export time: median {np.median(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms "
          f"({len(seconds)} files, 80-196 frames)")


if __name__ == "__main__":
    main()
