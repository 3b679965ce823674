"""Skeleton descriptions of HumanML3D ("t2m", 22 SMPL body joints) and KIT-ML ("kit", 21 joints).

Facts from reference/humanml3d-format.md §4. Directions are the official raw offset directions; an
offset (bone vector in the rest pose) is `bone_length * direction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Mirroring pairs (left, right) of joint indices.
T2M_LEFT_RIGHT_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))
KIT_LEFT_RIGHT_PAIRS = ((8, 5), (9, 6), (10, 7), (16, 11), (17, 12), (18, 13), (19, 14), (20, 15))
LEFT_RIGHT_PAIRS = {"t2m": T2M_LEFT_RIGHT_PAIRS, "kit": KIT_LEFT_RIGHT_PAIRS}


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


SMPL22 = Skeleton(
    name="t2m",
    joint_names=(
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
        "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist",
    ),
    kinematic_chains=((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21),
                      (9, 13, 16, 18, 20)),
    raw_directions=(
        (0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -1, 0),
        (0, -1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1),
        (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0), (0, -1, 0),
    ),
    # bone lengths of new_joints/012314.npy (constant to < 3e-7 over frames); they round to the 4-decimal
    # table of reference §4. The extra digits matter: with the rounded values the re-extracted features
    # of 012314 are off by ~3e-5, with these by ~1e-7 (median).
    target_lengths=(
        0.0, 0.103074, 0.1098834, 0.1315682, 0.3936232, 0.3901882, 0.1431902, 0.432433, 0.4256434,
        0.0573647, 0.1433818, 0.1494191, 0.21936, 0.1374868, 0.1433828, 0.1030392, 0.131614, 0.1229844,
        0.2568399, 0.2630919, 0.2660118, 0.2698763,
    ),
    face_joints=(2, 1, 17, 16),
    feet_left=(7, 10),
    feet_right=(8, 11),
    leg_joints=(5, 8),
    left_right_pairs=T2M_LEFT_RIGHT_PAIRS,
    fps=20.0,
    feet_threshold=0.002,
)  # fmt: skip

# Index semantics (left/right) follow the official code's variable names (face_joint_indx, fid_l/fid_r);
# the joint names are descriptive, not the official marker names.
KIT21 = Skeleton(
    name="kit",
    joint_names=(
        "root", "torso", "chest", "neck", "head", "right_shoulder", "right_elbow", "right_wrist",
        "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
        "right_foot", "right_toe", "left_hip", "left_knee", "left_ankle", "left_foot", "left_toe",
    ),
    kinematic_chains=((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7),
                      (3, 8, 9, 10)),
    raw_directions=(
        (0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (1, 0, 0), (0, -1, 0), (0, -1, 0),
        (-1, 0, 0), (0, -1, 0), (0, -1, 0), (1, 0, 0), (0, -1, 0), (0, -1, 0), (0, 0, 1), (0, 0, 1),
        (-1, 0, 0), (0, -1, 0), (0, -1, 0), (0, 0, 1), (0, 0, 1),
    ),
    target_lengths=None,  # official target skeleton is clip 03950_gt, not available here
    face_joints=(11, 16, 5, 8),
    feet_left=(19, 20),
    feet_right=(14, 15),
    leg_joints=(17, 18),
    left_right_pairs=KIT_LEFT_RIGHT_PAIRS,
    fps=12.5,
    feet_threshold=0.05,
)  # fmt: skip

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
