"""Skeleton descriptions of HumanML3D ("t2m", 22 SMPL body joints) and KIT-ML ("kit", 21 joints).

Facts from reference/humanml3d-format.md §4, stored in the package data file `skeletons.json` (joint
names, kinematic chains, raw offset directions, target bone lengths, feature constants). Directions are
the official raw offset directions; an offset (bone vector in the rest pose) is `bone_length * direction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.common.package_data import read_json


@dataclass(frozen=True)
class Skeleton:
    """Static description of a dataset skeleton and its feature-extraction constants."""

    name: str
    joint_names: tuple[str, ...]
    kinematic_chains: tuple[tuple[int, ...], ...]  # each chain starts at its root-side joint
    raw_directions: tuple[tuple[float, float, float], ...]  # (J, 3) unit rest directions
    target_lengths: tuple[float, ...] | None  # (J,) canonical bone lengths (None: unknown)
    face_joints: tuple[int, int, int, int]  # (r_hip, l_hip, r_shoulder, l_shoulder)
    feet_left: tuple[int, int]  # contact joints, in feature order
    feet_right: tuple[int, int]
    leg_joints: tuple[int, int]  # bones whose lengths define the retarget scale
    left_right_pairs: tuple[tuple[int, int], ...]
    fps: float
    feet_threshold: float  # squared displacement per frame below which a foot is in contact

    def __post_init__(self) -> None:
        j = len(self.joint_names)
        if len(self.raw_directions) != j:
            raise ValueError(f"{self.name}: {len(self.raw_directions)} directions for {j} joints")
        if self.target_lengths is not None and len(self.target_lengths) != j:
            raise ValueError(f"{self.name}: {len(self.target_lengths)} target lengths for {j} joints")
        seen = sorted({i for c in self.kinematic_chains for i in c})
        if seen != list(range(j)):
            raise ValueError(f"{self.name}: kinematic chains do not cover joints 0..{j - 1}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def feature_dim(self) -> int:
        return 12 * self.num_joints - 1

    @property
    def parents(self) -> tuple[int, ...]:
        """Parent index of every joint (-1 for the root), derived from the chains."""
        par = [-1] * self.num_joints
        for chain in self.kinematic_chains:
            for a, b in zip(chain[:-1], chain[1:], strict=True):
                par[b] = a
        return tuple(par)

    @property
    def directions(self) -> np.ndarray:
        """(J, 3) float64 raw offset directions."""
        return np.asarray(self.raw_directions, dtype=np.float64)

    def target_offsets(self) -> np.ndarray:
        """(J, 3) float64 canonical offsets `length * direction` used by the retarget."""
        if self.target_lengths is None:
            raise ValueError(
                f"skeleton {self.name!r} has no known target bone lengths; pass target_offsets explicitly "
                "(e.g. skeleton.offsets_from_positions(reference_frame))"
            )
        return self.directions * np.asarray(self.target_lengths, dtype=np.float64)[:, None]

    def offsets_from_positions(self, frame: np.ndarray) -> np.ndarray:
        """(J, 3) joint positions of one frame -> (J, 3) offsets `|p[i] - p[parent(i)]| * direction(i)`."""
        frame = np.asarray(frame, dtype=np.float64)
        if frame.shape != (self.num_joints, 3):
            raise ValueError(f"frame must have shape ({self.num_joints}, 3), got {frame.shape}")
        par = np.asarray(self.parents)
        lengths = np.zeros(self.num_joints)
        lengths[1:] = np.linalg.norm(frame[1:] - frame[par[1:]], axis=-1)
        return self.directions * lengths[:, None]

    def bone_lengths(self, positions: np.ndarray) -> np.ndarray:
        """(..., J, 3) -> (..., J) length of the bone ending at each joint (0 for the root)."""
        positions = np.asarray(positions, dtype=np.float64)
        par = np.asarray(self.parents)
        out = np.zeros(positions.shape[:-1])
        out[..., 1:] = np.linalg.norm(positions[..., 1:, :] - positions[..., par[1:], :], axis=-1)
        return out


_TABLES = read_json(__file__, "skeletons.json")


def _tuples(value):
    """JSON lists -> (nested) tuples, as the frozen Skeleton fields hold them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _load(name: str) -> Skeleton:
    return Skeleton(**{k: _tuples(v) for k, v in _TABLES[name].items()})


SMPL22 = _load("t2m")
KIT21 = _load("kit")
# Mirroring pairs (left, right) of joint indices.
T2M_LEFT_RIGHT_PAIRS = SMPL22.left_right_pairs
KIT_LEFT_RIGHT_PAIRS = KIT21.left_right_pairs
LEFT_RIGHT_PAIRS = {"t2m": T2M_LEFT_RIGHT_PAIRS, "kit": KIT_LEFT_RIGHT_PAIRS}
_SKELETONS = {"t2m": SMPL22, "humanml3d": SMPL22, "kit": KIT21, "kit-ml": KIT21}


def get_skeleton(dataset: str | Skeleton) -> Skeleton:
    """'t2m' (alias 'humanml3d') or 'kit' (alias 'kit-ml') -> Skeleton; a Skeleton is returned as is."""
    if isinstance(dataset, Skeleton):
        return dataset
    try:
        return _SKELETONS[str(dataset).lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected 't2m' or 'kit'") from None


def skeleton_for_joints(num_joints: int) -> Skeleton:
    """22 -> SMPL22, 21 -> KIT21."""
    for sk in (SMPL22, KIT21):
        if sk.num_joints == num_joints:
            return sk
    raise ValueError(f"no skeleton with {num_joints} joints (22 = t2m, 21 = kit)")
