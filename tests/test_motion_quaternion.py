"""(w, x, y, z) quaternion helpers: numpy/torch agreement, algebraic identities, conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.motion import quaternion as Q


def random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_qmul_identity_inverse_and_rotation_composition():
    q, r = random_quats(50, 1), random_quats(50, 2)
    v = np.random.default_rng(3).normal(size=(50, 3))
    assert np.allclose(Q.qmul(q, Q.qinv(q)), [1, 0, 0, 0])
    assert np.allclose(Q.qmul(np.array(Q.IDENTITY), q), q)
    assert np.allclose(Q.qrot(Q.qmul(q, r), v), Q.qrot(q, Q.qrot(r, v)))
    assert np.allclose(np.linalg.norm(Q.qrot(q, v), axis=-1), np.linalg.norm(v, axis=-1))
    # a quarter turn about +Y takes +Z to +X
    quarter = np.array([np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0])
    assert np.allclose(Q.qrot(quarter, np.array([0.0, 0, 1])), [1, 0, 0])


def test_matrix_and_cont6d_conversions():
    q = random_quats(200, 4)
    m = Q.quat_to_matrix(q)
    v = np.random.default_rng(5).normal(size=(200, 3))
    assert np.allclose(m @ v[..., None], Q.qrot(q, v)[..., None])
    back = Q.matrix_to_quat(m)
    assert np.allclose(back, q * np.sign(q[:, :1]))  # same rotation, w >= 0
    six = Q.quat_to_cont6d(q)
    assert np.allclose(six[:, :3], m[:, :, 0]) and np.allclose(six[:, 3:], m[:, :, 1])
    assert np.allclose(Q.cont6d_to_matrix(six), m)
    # a non-orthonormal 6D input still gives a rotation matrix
    noisy = Q.cont6d_to_matrix(six * 1.7 + 0.05)
    assert np.allclose(noisy @ np.swapaxes(noisy, -1, -2), np.eye(3), atol=1e-6)
    assert np.allclose(np.linalg.det(noisy), 1.0)


def test_qbetween_including_opposite_directions():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    q = Q.qbetween(a, b)
    assert np.allclose(Q.qrot(q, Q.normalize(a)), Q.normalize(b))
    back = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    q = Q.qbetween(back, -back)
    assert np.isfinite(q).all()
    assert np.allclose(Q.qrot(q, back), -back)
    assert np.allclose(q[0], [0, 0, 1, 0]) or np.allclose(q[0], [0, 0, -1, 0])  # pure yaw half turn


def test_qfix_makes_signs_continuous():
    q = random_quats(1, 7).repeat(10, 0)[:, None]  # (T, 1, 4)
    flipped = q * np.array([1, -1, -1, 1, 1, -1, 1, 1, -1, -1])[:, None, None]
    fixed = Q.qfix(flipped)
    assert np.allclose(fixed, q)
    assert ((fixed[1:] * fixed[:-1]).sum(-1) > 0).all()


def test_torch_matches_numpy():
    q, r = random_quats(20, 8), random_quats(20, 9)
    v = np.random.default_rng(10).normal(size=(20, 3))
    tq, tr, tv = (torch.from_numpy(x) for x in (q, r, v))
    for fn, args, targs in (
        (Q.qmul, (q, r), (tq, tr)),
        (Q.qrot, (q, v), (tq, tv)),
        (Q.qbetween, (v, q[:, 1:]), (tv, tq[:, 1:])),
        (Q.quat_to_cont6d, (q,), (tq,)),
        (Q.matrix_to_quat, (Q.quat_to_matrix(q),), (Q.quat_to_matrix(tq),)),
        (Q.qfix, (q[:, None],), (tq[:, None],)),
    ):
        out = fn(*targs)
        assert isinstance(out, torch.Tensor)
        assert np.allclose(out.numpy(), fn(*args)), fn.__name__


def test_shape_errors():
    with pytest.raises(ValueError, match="last dimension 4"):
        Q.qmul(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="last dimension 3"):
        Q.qrot(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        Q.matrix_to_quat(np.zeros((2, 4, 4)))
