"""Map the skeletons of the shared mocap sources onto the 22-joint SMPL / HumanML3D chain.

All sources are already Y up, metres, and right-handed like SMPL (a body facing +Z has its left
hip at +X; checked on every clip: knees bend and toes point along the forward direction computed
from the left/right labels). The mapping is therefore a per-joint choice, plus a documented rule
for each SMPL joint a source lacks. Interpolation weights come from the SMPL rest pose: spine3 sits
~20-25 % of the way from spine2 to the neck, the collars sit at ~55 % of the spine3 -> neck height
and ~45 % of the way out to the shoulder, the foot joint (ball of the foot) is ~0.14 m from the
ankle, pitched ~25 deg down.

The retarget in `joints_to_features` (`uniform_skeleton`) keeps only bone *directions* and rescales
every bone to the SMPL target length, so the synthesised joints need plausible directions, not
exact lengths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.common.package_data import read_json
from models.motion.skeleton import SMPL22

SMPL_NAMES = SMPL22.joint_names
SMPL_INDEX = {n: i for i, n in enumerate(SMPL_NAMES)}

# per source: joint names in file order, SMPL joint -> source joint taken over directly, synthesis summary
_TABLES = read_json(__file__, "tables/source_skeletons.json")
BANDAI_NAMES: tuple[str, ...] = tuple(_TABLES["bandai_namco"]["joint_names"])
CMU_NAMES: tuple[str, ...] = tuple(_TABLES["cmu"]["joint_names"])
ASE_NAMES: tuple[str, ...] = tuple(_TABLES["ase_reallusion"]["joint_names"])
_BANDAI_DIRECT: dict[str, str] = _TABLES["bandai_namco"]["direct"]
_CMU_DIRECT: dict[str, str] = _TABLES["cmu"]["direct"]
_ASE_DIRECT: dict[str, str] = _TABLES["ase_reallusion"]["direct"]

FOOT_LENGTH = 0.14  # m, SMPL ankle -> foot (ball) distance
FOOT_PITCH = np.deg2rad(25.0)  # SMPL rest: the ball of the foot is below the ankle


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + t * (b - a)


def _unit(v: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def synth_collar(spine3: np.ndarray, neck: np.ndarray, shoulder: np.ndarray) -> np.ndarray:
    """Collar = 45 % of the way from the spine point at 55 % of spine3->neck to the shoulder."""
    base = _lerp(spine3, neck, 0.55)
    return _lerp(base, shoulder, 0.45)


def synth_foot(
    ankle: np.ndarray, knee: np.ndarray, left_hip: np.ndarray, right_hip: np.ndarray
) -> np.ndarray:
    """Ball of the foot from the shin and the pelvis' left->right axis (no toe data in the source).

    The foot is taken perpendicular to the shin in the leg's sagittal plane (a neutral ankle):
    forward = normalise(lateral x shin), lateral = right_hip - left_hip, shin = ankle - knee; then
    foot = ankle + FOOT_LENGTH * (cos(pitch) * forward + sin(pitch) * shin_dir). Standing, this points
    forward and slightly down; with the shin horizontal (a front kick) the foot points up.
    """
    shin = _unit(ankle - knee)
    lateral = _unit(right_hip - left_hip)
    fwd = np.cross(lateral, shin)
    norm = np.linalg.norm(fwd, axis=-1, keepdims=True)
    # degenerate when the shin is parallel to the hip axis: fall back to the horizontal body forward
    body_fwd = np.stack([lateral[..., 2], np.zeros_like(lateral[..., 0]), -lateral[..., 0]], axis=-1)
    fwd = np.where(norm > 1e-3, fwd / np.maximum(norm, 1e-8), _unit(body_fwd))
    return ankle + FOOT_LENGTH * (np.cos(FOOT_PITCH) * fwd + np.sin(FOOT_PITCH) * shin)


def _gather(joints: np.ndarray, names: tuple[str, ...], table: dict[str, str]) -> dict[str, np.ndarray]:
    idx = {n: i for i, n in enumerate(names)}
    return {smpl: joints[:, idx[src]] for smpl, src in table.items()}


def _assemble(parts: dict[str, np.ndarray]) -> np.ndarray:
    missing = [n for n in SMPL_NAMES if n not in parts]
    if missing:
        raise ValueError(f"mapping leaves SMPL joints undefined: {missing}")
    return np.stack([parts[n] for n in SMPL_NAMES], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Bandai Namco (22 joints; joint_Root is a ground projection and is dropped)


def bandai_to_smpl(joints: np.ndarray) -> np.ndarray:
    """Bandai Namco (T, 22, 3) -> SMPL (T, 22, 3). spine3 (synthesised) = midpoint of Chest and Neck
    (puts the collars, which hang from Chest in the source, at the SMPL height ratio); every other
    SMPL joint is a source joint (Spine -> spine1, Chest -> spine2, Shoulder_* -> collars,
    UpperArm_* -> shoulders, Toes_* -> feet)."""
    p = _gather(joints, BANDAI_NAMES, _BANDAI_DIRECT)
    p["spine3"] = _lerp(p["spine2"], p["neck"], 0.5)
    return _assemble(p)


# ---------------------------------------------------------------------------------------------
# CMU subjects 1-7 retargeted to the iClone CC_Base rig (22 joints: every SMPL joint exists)


def cmu_to_smpl(joints: np.ndarray) -> np.ndarray:
    """CMU / CC_Base (T, 22, 3) -> SMPL (T, 22, 3): a one-to-one renaming, nothing synthesised."""
    return _assemble(_gather(joints, CMU_NAMES, _CMU_DIRECT))


# ---------------------------------------------------------------------------------------------
# Reallusion sword-and-shield humanoid of ASE (17 rigid bodies; body origins are joint centres)


def ase_to_smpl(joints: np.ndarray) -> np.ndarray:
    """ASE Reallusion (T, 17, 3) -> SMPL (T, 22, 3). `sword` and `shield` are dropped.

    Source body origins are joints: torso = lower spine (-> spine2), head = base of the neck (-> neck).
    Synthesised: spine1 = midpoint(pelvis, torso); spine3 = torso + 0.2 (neck - torso);
    head = neck + 0.10 m along spine3 -> neck; collars by `synth_collar`; feet (ball of the foot)
    by `synth_foot` (the source has no toes, so the ankle is assumed neutral).
    """
    p = _gather(joints, ASE_NAMES, _ASE_DIRECT)
    p["spine1"] = _lerp(p["pelvis"], p["spine2"], 0.5)
    p["spine3"] = _lerp(p["spine2"], p["neck"], 0.2)
    p["head"] = p["neck"] + 0.10 * _unit(p["neck"] - p["spine3"])
    p["left_collar"] = synth_collar(p["spine3"], p["neck"], p["left_shoulder"])
    p["right_collar"] = synth_collar(p["spine3"], p["neck"], p["right_shoulder"])
    p["left_foot"] = synth_foot(p["left_ankle"], p["left_knee"], p["left_hip"], p["right_hip"])
    p["right_foot"] = synth_foot(p["right_ankle"], p["right_knee"], p["left_hip"], p["right_hip"])
    return _assemble(p)


@dataclass(frozen=True)
class SourceSkeleton:
    name: str
    joint_names: tuple[str, ...]
    to_smpl: Callable[[np.ndarray], np.ndarray]
    synthesised: str  # one-line rule summary for the dataset card


_MAPPERS = {"bandai_namco": bandai_to_smpl, "cmu": cmu_to_smpl, "ase_reallusion": ase_to_smpl}
SOURCE_SKELETONS = {
    name: SourceSkeleton(name, tuple(_TABLES[name]["joint_names"]), mapper, _TABLES[name]["synthesised"])
    for name, mapper in _MAPPERS.items()
}


def map_to_smpl(
    joints: np.ndarray, source: str, joint_names: tuple[str, ...] | list[str] | None = None
) -> np.ndarray:
    """Source joints (T, J, 3), Y up, metres -> SMPL / HumanML3D 22-joint positions (T, 22, 3) float32.

    `joint_names`, when given (e.g. from the npz file), must equal the source's expected names.
    """
    if source not in SOURCE_SKELETONS:
        raise ValueError(f"unknown source skeleton {source!r}; expected one of {sorted(SOURCE_SKELETONS)}")
    sk = SOURCE_SKELETONS[source]
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(sk.joint_names), 3):
        raise ValueError(
            f"{source}: joints must have shape (T, {len(sk.joint_names)}, 3), got {joints.shape}"
        )
    if joint_names is not None and tuple(str(n) for n in joint_names) != sk.joint_names:
        raise ValueError(
            f"{source}: joint names {list(joint_names)} differ from the expected {list(sk.joint_names)}"
        )
    return sk.to_smpl(joints)
