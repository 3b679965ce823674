"""HumanML3D / KIT-ML motion representation (reference/humanml3d-format.md)."""

from models.motion.features import (
    feature_dim,
    feature_slices,
    features_to_joints,
    forward_kinematics,
    inverse_kinematics,
    joints_num_from_dim,
    joints_to_features,
    recover_root,
    uniform_skeleton,
)
from models.motion.mirror import mirror_joints, mirror_text
from models.motion.normalize import Normalizer, apply_feat_bias, compute_statistics
from models.motion.skeleton import KIT21, LEFT_RIGHT_PAIRS, SMPL22, Skeleton, get_skeleton

__all__ = [
    "KIT21", "LEFT_RIGHT_PAIRS", "SMPL22", "Normalizer", "Skeleton", "apply_feat_bias", "compute_statistics",
    "feature_dim", "feature_slices", "features_to_joints", "forward_kinematics", "get_skeleton",
    "inverse_kinematics", "joints_num_from_dim", "joints_to_features", "mirror_joints", "mirror_text",
    "recover_root", "uniform_skeleton",
]
