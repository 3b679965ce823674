"""Frame rate and looping of a RigAnimation: rotation slerp, linear translations, a blended loop seam."""

from __future__ import annotations

import numpy as np

from models.motion.retarget import RigAnimation

FPS_CHOICES = (20, 24, 30, 60)
LOOP_SECONDS = 0.5  # default blend window of `loop`


def slerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions, (...) weights in [0, 1] -> (..., 4) spherical interpolation (shortest arc)."""
    d = (a * b).sum(-1)
    b = np.where(d[..., None] < 0, -b, b)
    d = np.abs(d)
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6  # almost equal: linear interpolation is exact enough
    safe = np.where(near, 1.0, sin)
    wa = np.where(near, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    wb = np.where(near, w, np.sin(w * theta) / safe)
    q = wa[..., None] * a + wb[..., None] * b
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def frame_count(frames: int, src_fps: float, dst_fps: float) -> int:
    """Frames at `dst_fps` covering the same time span, last frame on the last source frame when it fits."""
    return int(np.floor((frames - 1) * dst_fps / src_fps + 1e-6)) + 1


def resample(anim: RigAnimation, fps: float) -> RigAnimation:
    """The animation at `fps`: frame k at time k / fps; rotations slerped, translations and trajectory lerped."""
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    if fps == anim.fps:
        return anim
    n = frame_count(anim.num_frames, anim.fps, fps)
    src = np.minimum(np.arange(n) * (anim.fps / fps), anim.num_frames - 1)
    i0 = np.floor(src + 1e-9).astype(np.int64)
    i0 = np.minimum(i0, anim.num_frames - 1)
    i1 = np.minimum(i0 + 1, anim.num_frames - 1)
    w = np.clip(src - i0, 0.0, 1.0)

    def lerp(x: np.ndarray) -> np.ndarray:
        ww = w.reshape((-1,) + (1,) * (x.ndim - 1))
        return x[i0] * (1.0 - ww) + x[i1] * ww

    bones = anim.rotations.shape[1]
    rot = slerp(anim.rotations[i0], anim.rotations[i1], np.broadcast_to(w[:, None], (n, bones)))
    return anim.with_(rotations=rot, translations=lerp(anim.translations), fps=float(fps),
                      trajectory=None if anim.trajectory is None else lerp(anim.trajectory))


def loop(anim: RigAnimation, seconds: float = LOOP_SECONDS) -> RigAnimation:
    """Blend the last `seconds` into the first frame: the last frame is the first pose (smoothstep weights).

    Rotations and bone translations blend toward frame 0; the horizontal root motion (of the motion root
    bone, or the trajectory) keeps going, so a walk loops its pose and still advances.
    """
    t = anim.num_frames
    n = min(int(round(seconds * anim.fps)), t - 1)
    if n < 1:
        return anim
    x = np.arange(1, n + 1) / n  # window frames t-n .. t-1
    w = x * x * (3.0 - 2.0 * x)
    rot = anim.rotations.copy()
    first = np.broadcast_to(rot[0], (n, *rot.shape[1:]))
    rot[t - n:] = slerp(rot[t - n:], first, np.broadcast_to(w[:, None], (n, rot.shape[1])))
    trans = anim.translations.copy()
    keep = trans[t - n:, anim.motion_root].copy()
    trans[t - n:] = trans[t - n:] * (1.0 - w[:, None, None]) + trans[0] * w[:, None, None]
    trans[t - n:, anim.motion_root, 0] = keep[:, 0]  # horizontal root motion is not blended
    trans[t - n:, anim.motion_root, 2] = keep[:, 2]
    return anim.with_(rotations=rot, translations=trans)
