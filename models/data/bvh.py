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


class _Cursor:
    """The tokens of a BVH file with their line numbers, consumed from the front."""

    def __init__(self, text: str):
        self.toks = list(_tokens(text))
        self.pos = 0

    def peek(self) -> str | None:
        return self.toks[self.pos][1] if self.pos < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        if self.pos >= len(self.toks):
            raise ValueError(f"BVH: unexpected end of file (expected {expected or 'a token'})")
        line_no, tok = self.toks[self.pos]
        if expected is not None and tok.upper() != expected.upper():
            raise ValueError(f"BVH line {line_no}: expected {expected!r}, got {tok!r}")
        self.pos += 1
        return tok

    def take_float(self) -> float:
        line_no, tok = self.toks[self.pos] if self.pos < len(self.toks) else (-1, "<eof>")
        try:
            value = float(self.take())
        except ValueError:
            raise ValueError(f"BVH line {line_no}: expected a number, got {tok!r}") from None
        return value

    def rest(self) -> list[str]:
        return [tok for _, tok in self.toks[self.pos :]]


def _parse_joint(cur: _Cursor, parent: int) -> BVHJoint:
    """`<name> { OFFSET x y z [CHANNELS n ch...]` of a ROOT or JOINT (the keyword already taken)."""
    name = cur.take()
    cur.take("{")
    if parent == -2:
        raise ValueError(f"BVH: joint {name!r} inside an End Site")
    cur.take("OFFSET")
    joint = BVHJoint(name=name, parent=parent, offset=np.array([cur.take_float() for _ in range(3)]))
    if cur.peek() is not None and cur.peek().upper() == "CHANNELS":
        cur.take("CHANNELS")
        n = int(cur.take_float())
        joint.channels = [cur.take() for _ in range(n)]
        for ch in joint.channels:
            if len(ch) != 9 or ch[0].upper() not in _AXES or ch[1:].lower() not in ("position", "rotation"):
                raise ValueError(f"BVH: unknown channel {ch!r} in joint {name!r}")
    return joint


def _parse_hierarchy(cur: _Cursor) -> list[BVHJoint]:
    joints: list[BVHJoint] = []
    cur.take("HIERARCHY")
    stack: list[int] = []  # open joint indices; -2 marks an open End Site block
    cur.take("ROOT")
    kind = "ROOT"
    while True:
        if kind in ("ROOT", "JOINT"):
            joints.append(_parse_joint(cur, stack[-1] if stack else -1))
            stack.append(len(joints) - 1)
        elif kind == "END":
            cur.take("Site")
            cur.take("{")
            cur.take("OFFSET")
            if not stack or stack[-1] < 0:
                raise ValueError("BVH: End Site without a parent joint")
            joints[stack[-1]].end_site = np.array([cur.take_float() for _ in range(3)])
            stack.append(-2)
        elif kind == "}":
            stack.pop()
        if not stack:
            return joints
        kind = cur.take().upper()
        if kind not in ("JOINT", "END", "}"):
            raise ValueError(f"BVH: unexpected token {kind!r} in HIERARCHY")


def _parse_motion(cur: _Cursor, n_channels: int) -> tuple[float, np.ndarray]:
    cur.take("MOTION")
    cur.take("Frames:")
    n_frames = int(cur.take_float())
    cur.take("Frame")
    cur.take("Time:")
    frame_time = cur.take_float()
    if frame_time <= 0:
        raise ValueError(f"BVH: Frame Time must be positive, got {frame_time}")
    values = cur.rest()
    if len(values) != n_frames * n_channels:
        raise ValueError(
            f"BVH: MOTION has {len(values)} values, expected {n_frames} frames x {n_channels} channels"
        )
    try:
        motion = np.array(values, dtype=np.float64).reshape(n_frames, n_channels)
    except ValueError as e:
        raise ValueError(f"BVH: non-numeric value in MOTION: {e}") from None
    return frame_time, motion


def parse_bvh(text: str) -> BVH:
    """Parse the text of a BVH file. Raises ValueError on malformed input."""
    cur = _Cursor(text)
    joints = _parse_hierarchy(cur)
    frame_time, motion = _parse_motion(cur, sum(len(j.channels) for j in joints))
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
