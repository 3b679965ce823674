"""One entry point for motion files: joints -> BVH or glTF binary, on a target rig, at a frame rate, in place.

`export_motion(joints, ExportOptions(...))`: retarget to the rig (models/motion/retarget.py), take the root
motion out (in place), resample (models/motion/resample.py), blend a loop, then write BVH text
(`animation_to_bvh`) or a .glb (models/motion/gltf_export.py). The plain BVH of our skeleton at 20 fps
(no rig, world root motion, no loop) stays the rigid-bone file of `bvh_export.joints_to_bvh`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.motion.bvh_export import CM_PER_M, END_SITE_FRACTION, matrix_to_euler_zxy
from models.motion.bvh_export import joints_to_bvh as rigid_bvh
from models.motion.gltf_export import animation_to_glb
from models.motion.quaternion import quat_to_matrix
from models.motion.resample import FPS_CHOICES, LOOP_SECONDS, loop, resample
from models.motion.retarget import RigAnimation, in_place, retarget
from models.motion.rigs import RIG_NAMES, get_rig
from models.motion.skeleton import SMPL22

FORMATS = ("bvh", "glb")
ROOT_MOTIONS = ("world", "in_place")
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


@dataclass(frozen=True)
class ExportOptions:
    """How to write a motion: file format, target rig (None: our 22 joints), fps, root motion, loop."""

    format: str = "bvh"
    skeleton: str | None = None
    fps: int = 20
    root_motion: str = "world"
    loop: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.skeleton is not None and self.skeleton not in RIG_NAMES:
            raise ValueError(f"skeleton must be one of {RIG_NAMES} or None, got {self.skeleton!r}")
        if self.fps not in FPS_CHOICES:
            raise ValueError(f"fps must be one of {FPS_CHOICES}, got {self.fps!r}")
        if self.root_motion not in ROOT_MOTIONS:
            raise ValueError(f"root_motion must be one of {ROOT_MOTIONS}, got {self.root_motion!r}")

    @property
    def plain(self) -> bool:
        """True for the default BVH (our skeleton, 20 fps, world, no loop): the rigid-bone exporter."""
        return (self.format, self.skeleton, self.fps, self.root_motion, self.loop) == ("bvh", None, 20, "world",
                                                                                        False)


@dataclass(frozen=True)
class ExportedMotion:
    """A written motion: the file (BVH text or .glb bytes) and, in place, the ground trajectory (T, 3)."""

    data: str | bytes
    fps: int
    frames: int
    trajectory: np.ndarray | None = None
    animation: RigAnimation | None = None


def animate(joints: np.ndarray, options: ExportOptions, src_fps: float = SMPL22.fps) -> RigAnimation:
    """(T, 22, 3) joints -> the RigAnimation the options describe (rig, root motion, fps, loop)."""
    anim = retarget(joints, get_rig(options.skeleton), fps=src_fps)
    if options.root_motion == "in_place":
        anim = in_place(anim)
    anim = resample(anim, options.fps)
    return loop(anim, LOOP_SECONDS) if options.loop else anim


def export_motion(joints: np.ndarray, options: ExportOptions, src_fps: float = SMPL22.fps) -> ExportedMotion:
    """Write (T, 22, 3) joint positions (metres, Y up, `src_fps`) as the options say (module doc)."""
    if options.plain and src_fps == 20:
        return ExportedMotion(data=rigid_bvh(joints, fps=20), fps=20, frames=len(joints))
    anim = animate(joints, options, src_fps)
    data = animation_to_bvh(anim) if options.format == "bvh" else animation_to_glb(anim)
    return ExportedMotion(data=data, fps=options.fps, frames=anim.num_frames, trajectory=anim.trajectory,
                          animation=anim)


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def _moving(anim: RigAnimation) -> np.ndarray:
    """(B,) bool: bones whose translation changes (or that carry root motion): they get position channels."""
    moving = np.abs(anim.translations - anim.translations[:1]).max(axis=(0, 2)) > 1e-7
    moving[[b for b, p in enumerate(anim.rig.parents) if p < 0]] = True
    return moving


def _hierarchy(anim: RigAnimation, moving: np.ndarray) -> tuple[list[str], list[int]]:
    """HIERARCHY lines and the depth-first bone order of the channel columns."""
    rig = anim.rig
    kids: list[list[int]] = [[] for _ in rig.names]
    for b, p in enumerate(rig.parents):
        if p >= 0:
            kids[p].append(b)
    lines, order = ["HIERARCHY"], []

    def write(b: int, depth: int) -> None:
        pad = "  " * depth
        order.append(b)
        keyword = "ROOT" if rig.parents[b] < 0 else "JOINT"
        channels = (*POSITION_CHANNELS, *ROTATION_CHANNELS) if moving[b] else ROTATION_CHANNELS
        lines.extend([f"{pad}{keyword} {rig.names[b]}", f"{pad}{{", f"{pad}  OFFSET {_fmt(anim.rest[b] * CM_PER_M)}",
                      f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}"])
        if not kids[b]:
            end = anim.rest[b] * END_SITE_FRACTION * CM_PER_M
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(end)}", f"{pad}  }}"])
        for c in kids[b]:
            write(c, depth + 1)
        lines.append(f"{pad}}}")

    roots = [b for b, p in enumerate(rig.parents) if p < 0]
    if len(roots) != 1:
        raise ValueError(f"BVH needs one root bone, rig {rig.name!r} has {len(roots)}")
    write(roots[0], 0)
    return lines, order


def animation_to_bvh(anim: RigAnimation) -> str:
    """A RigAnimation as BVH text: centimetres, ZXY Euler degrees; bones that move also get positions."""
    moving = _moving(anim)
    lines, order = _hierarchy(anim, moving)
    euler = np.degrees(matrix_to_euler_zxy(quat_to_matrix(anim.rotations)))  # (T, B, 3)
    euler = np.unwrap(euler, period=360.0, axis=0)
    columns = []
    for b in order:
        if moving[b]:
            columns.append(anim.translations[:, b] * CM_PER_M)
        columns.append(euler[:, b])
    frames = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {anim.num_frames}", f"Frame Time: {1.0 / anim.fps:.8f}"]
    lines += [_fmt(row) for row in frames]
    return "\n".join(lines) + "\n"
