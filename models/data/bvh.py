"""A BVH (Biovision Hierarchy) reader: HIERARCHY + MOTION, forward kinematics, resampling.

Conventions:
* Any channel order is accepted; rotations are Euler angles in degrees, composed in the order the
  channels are listed (``Zrotation Xrotation Yrotation`` -> ``R = Rz @ Rx @ Ry``), the usual
  intrinsic BVH convention.
* A joint that has position channels uses them as its local translation (they replace OFFSET, which
  is how exporters such as MotionBuilder write them: the channel values equal the offset for
  non-root joints); a joint without position channels is translated by its OFFSET.
* ``End Site`` blocks are parsed (their offsets are kept) but are not joints of the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BVHJoint:
    name: str
    parent: int  # -1 for the root
    offset: np.ndarray  # (3,)
    channels: list[str] = field(default_factory=list)
    end_site: np.ndarray | None = None  # (3,) offset of an End Site child, if any


@dataclass
class BVH:
    joints: list[BVHJoint]
    frame_time: float  # seconds per frame
    motion: np.ndarray  # (F, n_channels) float64, raw channel values

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def parents(self) -> list[int]:
        return [j.parent for j in self.joints]

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def n_frames(self) -> int:
        return int(self.motion.shape[0])


def _tokens(text: str):
    for line_no, line in enumerate(text.splitlines(), start=1):
        for tok in line.split():
            yield line_no, tok


def parse_bvh(text: str) -> BVH:
    """Parse the text of a BVH file. Raises ValueError on malformed input."""
    toks = list(_tokens(text))
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise ValueError(f"BVH: unexpected end of file (expected {expected or 'a token'})")
        line_no, tok = toks[pos]
        if expected is not None and tok.upper() != expected.upper():
            raise ValueError(f"BVH line {line_no}: expected {expected!r}, got {tok!r}")
        pos += 1
        return tok

    def take_float() -> float:
        line_no, tok = toks[pos] if pos < len(toks) else (-1, "<eof>")
        try:
            value = float(take())
        except ValueError:
            raise ValueError(f"BVH line {line_no}: expected a number, got {tok!r}") from None
        return value

    joints: list[BVHJoint] = []
    take("HIERARCHY")
    stack: list[int] = []  # open joint indices; -2 marks an open End Site block
    take("ROOT")
    kind = "ROOT"
    while True:
        if kind in ("ROOT", "JOINT"):
            name = take()
            take("{")
            parent = stack[-1] if stack else -1
            if parent == -2:
                raise ValueError(f"BVH: joint {name!r} inside an End Site")
            take("OFFSET")
            offset = np.array([take_float() for _ in range(3)])
            joint = BVHJoint(name=name, parent=parent, offset=offset)
            if pos < len(toks) and toks[pos][1].upper() == "CHANNELS":
                take("CHANNELS")
                n = int(take_float())
                joint.channels = [take() for _ in range(n)]
                for ch in joint.channels:
                    if (
                        len(ch) != 9
                        or ch[0].upper() not in _AXES
                        or ch[1:].lower() not in ("position", "rotation")
                    ):
                        raise ValueError(f"BVH: unknown channel {ch!r} in joint {name!r}")
            joints.append(joint)
            stack.append(len(joints) - 1)
        elif kind == "END":
            take("Site")
            take("{")
            take("OFFSET")
            if not stack or stack[-1] < 0:
                raise ValueError("BVH: End Site without a parent joint")
            joints[stack[-1]].end_site = np.array([take_float() for _ in range(3)])
            stack.append(-2)
        elif kind == "}":
            stack.pop()
        if not stack:
            break
        kind_tok = take().upper()
        if kind_tok not in ("JOINT", "END", "}"):
            raise ValueError(f"BVH: unexpected token {kind_tok!r} in HIERARCHY")
        kind = kind_tok

    take("MOTION")
    take("Frames:")
    n_frames = int(take_float())
    take("Frame")
    take("Time:")
    frame_time = take_float()
    if frame_time <= 0:
        raise ValueError(f"BVH: Frame Time must be positive, got {frame_time}")
    n_channels = sum(len(j.channels) for j in joints)
    values = [tok for _, tok in toks[pos:]]
    if len(values) != n_frames * n_channels:
        raise ValueError(
            f"BVH: MOTION has {len(values)} values, expected {n_frames} frames x {n_channels} channels"
        )
    try:
        motion = np.array(values, dtype=np.float64).reshape(n_frames, n_channels)
    except ValueError as e:
        raise ValueError(f"BVH: non-numeric value in MOTION: {e}") from None
    return BVH(joints=joints, frame_time=frame_time, motion=motion)


def read_bvh(path: str | Path) -> BVH:
    """Read and parse a BVH file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    return parse_bvh(path.read_text())


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (F, 3, 3) about one coordinate axis, angle in radians (F,)."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., i, j] = -s
    m[..., j, i] = s
    return m


def forward_kinematics(bvh: BVH) -> np.ndarray:
    """World positions (F, J, 3) of every joint, in the file's units and axes."""
    n_frames = bvh.n_frames
    rots = np.zeros((n_frames, len(bvh.joints), 3, 3))
    pos = np.zeros((n_frames, len(bvh.joints), 3))
    col = 0
    for j, joint in enumerate(bvh.joints):
        local_t = np.broadcast_to(joint.offset, (n_frames, 3)).copy()
        local_r = np.broadcast_to(np.eye(3), (n_frames, 3, 3)).copy()
        has_pos = any(ch[1:].lower() == "position" for ch in joint.channels)
        if has_pos:
            local_t[:] = 0.0
        for ch in joint.channels:
            axis = _AXES[ch[0].upper()]
            values = bvh.motion[:, col]
            col += 1
            if ch[1:].lower() == "position":
                local_t[:, axis] = values
            else:
                local_r = local_r @ _axis_rotation(axis, np.deg2rad(values))
        if joint.parent < 0:
            rots[:, j] = local_r
            pos[:, j] = local_t
        else:
            p = joint.parent
            rots[:, j] = rots[:, p] @ local_r
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rots[:, p], local_t)
    return pos


def resample(positions: np.ndarray, src_fps: float, dst_fps: float = 20.0) -> np.ndarray:
    """Linear-interpolate (F, ...) frames from src_fps to dst_fps.

    Output frame k is at time k / dst_fps; there are floor(F * dst_fps / src_fps) of them (the
    count the shared mocap files use), the last sample clamped to the last source frame.
    """
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"fps must be positive, got src={src_fps} dst={dst_fps}")
    n_src = positions.shape[0]
    if n_src == 0:
        raise ValueError("cannot resample an empty clip")
    n_dst = max(1, int(np.floor(n_src * dst_fps / src_fps + 1e-3)))
    t = np.arange(n_dst) * (src_fps / dst_fps)
    t = np.minimum(t, n_src - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_src - 1)
    w = (t - i0).reshape((-1,) + (1,) * (positions.ndim - 1))
    return positions[i0] * (1.0 - w) + positions[i1] * w


def bvh_to_joints(
    bvh: BVH, scale: float = 0.01, fps: float = 20.0, axes: tuple[int, int, int] = (0, 1, 2)
) -> np.ndarray:
    """World joint positions (F', J, 3) in metres at `fps` (default: centimetres in, Y up, 20 fps).

    `axes` permutes the file's axes into (x, y, z) with Y up; the default keeps them.
    """
    pos = forward_kinematics(bvh)[..., list(axes)] * scale
    return resample(pos, bvh.fps, fps)
