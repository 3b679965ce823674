"""The caption, lexicon, label and skeleton tables live in JSON package data; their loaded values equal the
literals they replaced (checksums taken from the former Python literals), and so do the generated captions.

A checksum is the SHA-256 of `json.dumps(value, ensure_ascii=False)` (order kept; floats as `repr`, so any
change of a number changes it). Update a checksum only together with a deliberate change of the table.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from models.data import captions, labels, pos, skeletons
from models.data.captions import template_captions, text_line
from models.data.labels import ClipLabel
from models.motion.skeleton import KIT21, SMPL22

SKELETON_FIELDS = ("name", "joint_names", "kinematic_chains", "raw_directions", "target_lengths", "face_joints",
                   "feet_left", "feet_right", "leg_joints", "left_right_pairs", "fps", "feet_threshold")
# checksums of the former Python literals (and of the captions they generated)
CHECKSUMS = {
    "caption tables": "22f3a29aca38b733458c632d8cb546b7daa42d2bc10b8d8ccb84c4b7d361e54d",
    "caption corpus": "390ed2ea97bb6fc1f660d6cb74ebca3347be94af03bc2a5c8475663e011bbdb7",
    "lexicon": "ec13b54586a67a8b52788fc7fc8b62e7def5a3c9ce0244218aacb458015c04f6",
    "ase rules": "6526194b389f5ff1c1f161198f456a7ecbe3cac6b66a63a4687203d4dc584527",
    "source skeletons": "bf69a5529f0e4b21c906e0e4d9917e98e4a7ae115f9c34459f5d23af042d5b0c",
    "motion skeletons": "866a2ed74c365f07423c190f1bcdcdd346f0f239e21bb8a419c58d2c10df97c2",
    "motion skeleton arrays": "479c9d1e9b9a8282b2492ba497617fdd3ce1bc313045258de743c4bbafaf18f9",
}
CMU_DESCRIPTIONS = (
    "basketball - backward dribble", "basketball - crossover dribble, shoot", "basketball - dribble, shoot",
    "basketball - forward dribble, 90-degree left turns", "basketball - sideways dribble",
    "basketball - forward dribble, 90-degree right turns, crossover dribble",
    "dance - arms held high, pointe tendue a terre, upper body rotation",
    "dance - attitude/arabesque, jete en tourant, bending back", "dance - cartwheel-like start, pirouettes, jete",
    "dance - expressive arms, pirouette", "dance - sideways steps, pirouette", "dance - glissade devant",
    "dance - sideways arabesque, folding arms, bending back", "some_unknown-label/other",
)  # fmt: skip


def checksum(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()


def caption_corpus() -> list[str]:
    """Captions and text lines of every known label (and CMU rule descriptions) in every style and side."""
    out = []
    for label in [*captions.LABEL_PHRASES, *CMU_DESCRIPTIONS]:
        for style in captions.STYLE_PHRASES:
            for side in (None, "left", "right"):
                for key, n in (("src/clip/0", 3), ("x", 5)):
                    caps = template_captions(ClipLabel(label, style, False, None), key, n, side)
                    out += caps + [text_line(c, 0.5, 2.0) for c in caps]
    return out


def test_caption_tables_equal_the_former_literals():
    value = [captions.SUBJECTS, captions.STYLE_PHRASES, captions.LABEL_PHRASES]
    assert checksum(value) == CHECKSUMS["caption tables"]


def test_generated_captions_are_unchanged():
    assert checksum(caption_corpus()) == CHECKSUMS["caption corpus"]


def test_lexicon_equals_the_former_literals():
    assert checksum([pos._CLOSED_LEX, pos._VERB_LEX, pos._NOUN_LEX]) == CHECKSUMS["lexicon"]


def test_ase_rules_equal_the_former_literals():
    assert checksum(labels._ASE_RULES) == CHECKSUMS["ase rules"]


def test_source_skeletons_equal_the_former_literals():
    value = {name: [sk.joint_names, sk.synthesised] for name, sk in skeletons.SOURCE_SKELETONS.items()}
    direct = [skeletons._BANDAI_DIRECT, skeletons._CMU_DIRECT, skeletons._ASE_DIRECT]
    assert checksum([value, direct]) == CHECKSUMS["source skeletons"]


def test_motion_skeletons_equal_the_former_literals():
    value = [[getattr(sk, f) for f in SKELETON_FIELDS] for sk in (SMPL22, KIT21)]
    assert checksum(value) == CHECKSUMS["motion skeletons"]
    arrays = [SMPL22.directions, SMPL22.target_offsets(), KIT21.directions]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
    assert digest == CHECKSUMS["motion skeleton arrays"]
    assert all(a.dtype == np.float64 for a in arrays)
