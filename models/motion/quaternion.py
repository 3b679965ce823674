"""Quaternion helpers, (w, x, y, z) convention, Hamilton product, vectorised over leading dims.

Every function accepts numpy arrays or torch tensors (both arguments of the same kind) and broadcasts
leading dimensions. Quaternions are assumed to be unit quaternions, so inverse == conjugate.
"""

from __future__ import annotations

import numpy as np

from models.motion._array import Array, broadcast, cat, is_torch, sqrt, stack

IDENTITY = (1.0, 0.0, 0.0, 0.0)


def _check(q: Array, last: int, name: str) -> None:
    if q.shape[-1] != last:
        raise ValueError(f"{name} must have last dimension {last}, got shape {tuple(q.shape)}")


def cross(a: Array, b: Array) -> Array:
    """Cross product over the last axis (size 3), broadcasting leading dims."""
    a, b = broadcast(a, b)
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -1)


def dot(a: Array, b: Array) -> Array:
    """Dot product over the last axis, keeping it as size 1."""
    return (a * b).sum(-1, keepdims=True) if not is_torch(a) else (a * b).sum(-1, keepdim=True)


def normalize(v: Array, eps: float = 0.0) -> Array:
    """v / |v| over the last axis (eps is added to the norm)."""
    return v / (sqrt(dot(v, v)) + eps)


def qmul(q: Array, r: Array) -> Array:
    """Hamilton product q ⊗ r. (..., 4) x (..., 4) -> (..., 4)."""
    _check(q, 4, "q")
    _check(r, 4, "r")
    q, r = broadcast(q, r)
    w1, x1, y1, z1 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    w2, x2, y2, z2 = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
    return stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        -1,
    )


def qconj(q: Array) -> Array:
    """Conjugate (w, -x, -y, -z); the inverse of a unit quaternion."""
    _check(q, 4, "q")
    return cat([q[..., :1], -q[..., 1:]], -1)


qinv = qconj


def qrot(q: Array, v: Array) -> Array:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4): v + 2(w u×v + u×(u×v))."""
    _check(q, 4, "q")
    _check(v, 3, "v")
    u, w = q[..., 1:], q[..., :1]
    uv = cross(u, v)
    return v + 2.0 * (w * uv + cross(u, uv))


def qbetween(a: Array, b: Array) -> Array:
    """Shortest-arc unit quaternion rotating direction a onto direction b (..., 3) -> (..., 4).

    normalise([|a||b| + a·b, a×b]). For exactly opposite directions (undefined axis) a half turn about
    an axis orthogonal to a is returned (about a×x̂, or a×ŷ when a is parallel to x̂), so a heading that
    points exactly backwards maps to a pure yaw.
    """
    _check(a, 3, "a")
    _check(b, 3, "b")
    a, b = broadcast(a, b)
    w = sqrt(dot(a, a) * dot(b, b)) + dot(a, b)
    q = cat([w, cross(a, b)], -1)
    n = sqrt(dot(q, q))
    bad = n[..., 0] < 1e-9 * (1.0 + sqrt(dot(a, a) * dot(b, b))[..., 0])
    if bad.any():
        ex = a * 0
        ex[..., 0] = 1
        axis = cross(a, ex)
        ey = a * 0
        ey[..., 1] = 1
        axis_y = cross(a, ey)
        use_y = dot(axis, axis) < 1e-12 * (1.0 + dot(a, a))
        axis = axis_y * use_y + axis * ~use_y
        half_turn = cat([w * 0, normalize(axis)], -1)
        q = q * ~bad[..., None] + half_turn * bad[..., None]
        n = sqrt(dot(q, q))
    return q / n


def qfix(q: Array) -> Array:
    """Sign continuity over time: flip q[t] whenever it is on the far hemisphere of q[t-1].

    q: (T, ..., 4), time first. Uses the cumulative parity of negative dot products of the input
    (as the official `qfix`), so the result has non-negative consecutive dot products.
    """
    _check(q, 4, "q")
    if is_torch(q):
        flips = (q[1:] * q[:-1]).sum(-1) < 0
        parity = flips.long().cumsum(0) % 2 == 1
    else:
        flips = (q[1:] * q[:-1]).sum(-1) < 0
        parity = np.cumsum(flips, axis=0) % 2 == 1
    sign = 1 - 2 * parity[..., None]
    return cat([q[:1], q[1:] * sign], 0)


def quat_to_matrix(q: Array) -> Array:
    """(..., 4) -> (..., 3, 3) rotation matrices (columns are the rotated basis vectors)."""
    _check(q, 4, "q")
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / (q * q).sum(-1)
    rows = [
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ]
    return stack([stack(r, -1) for r in rows], -2)


def matrix_to_quat(m: Array) -> Array:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0 (Shepperd's method)."""
    if tuple(m.shape[-2:]) != (3, 3):
        raise ValueError(f"matrix must have trailing shape (3, 3), got {tuple(m.shape)}")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # four candidates, each well conditioned when its leading component is the largest
    cands = [
        stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ]
    diag = stack([m00 + m11 + m22, m00 - m11 - m22, -m00 + m11 - m22, -m00 - m11 + m22], -1)
    best = diag.argmax(-1)
    allc = stack(cands, -2)  # (..., 4 candidates, 4)
    if is_torch(m):
        q = allc.gather(-2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    else:
        q = np.take_along_axis(allc, best[..., None, None], axis=-2)[..., 0, :]
    q = normalize(q)
    return q * (1 - 2 * (q[..., :1] < 0))


def matrix_to_cont6d(m: Array) -> Array:
    """(..., 3, 3) -> (..., 6): first two columns, (R00, R10, R20, R01, R11, R21)."""
    return cat([m[..., :, 0], m[..., :, 1]], -1)


def cont6d_to_matrix(c: Array) -> Array:
    """(..., 6) -> (..., 3, 3): x = n(c[:3]), z = n(x × c[3:]), y = z × x; R = [x | y | z]."""
    _check(c, 6, "cont6d")
    x = normalize(c[..., :3])
    z = normalize(cross(x, c[..., 3:]))
    y = cross(z, x)
    return stack([x, y, z], -1)


def quat_to_cont6d(q: Array) -> Array:
    return matrix_to_cont6d(quat_to_matrix(q))


def cont6d_to_quat(c: Array) -> Array:
    return matrix_to_quat(cont6d_to_matrix(c))
