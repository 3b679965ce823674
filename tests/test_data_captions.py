"""Template captions, the built-in POS tagger and the HumanML3D text line format."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from models.data.captions import LABEL_PHRASES, label_phrases, template_captions, text_line
from models.data.labels import ClipLabel, ase_label, bandai_label, bvh_label, cmu_label
from models.data.pos import pos_tokens
from models.motion.mirror import mirror_text

SHARED = Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "SCONJ",
        "VERB", "X"}  # fmt: skip
VIOLENT_VERBS = re.compile(
    r"\b(kick|punch|slash|stab|strike|attack|counterattack|swing|hit|bash|kill|ram|feint|fight|hack|swordplay)"
)


def shared_labels() -> list[tuple[str, ClipLabel]]:
    out = []
    for folder, fn in (
        ("bandai_namco", bandai_label),
        ("ase_reallusion", ase_label),
        ("cmu_subjects_1to7", cmu_label),
    ):
        for entry in json.loads((SHARED / "mocap" / folder / "clips.json").read_text()):
            out.append((entry["id"], fn(entry)))
    return out


def test_pos_tokens_of_template_captions():
    assert pos_tokens("a person kicks with the right leg.") == [
        "a/DET", "person/NOUN", "kick/VERB", "with/ADP", "the/DET", "right/ADJ", "leg/NOUN",
    ]  # fmt: skip
    assert pos_tokens("Someone punches forward angrily") == [
        "someone/PRON",
        "punch/VERB",
        "forward/ADV",
        "angrily/ADV",
    ]
    assert pos_tokens("a man is walking to the left") == [
        "a/DET", "man/NOUN", "is/AUX", "walk/VERB", "to/ADP", "the/DET", "left/NOUN",
    ]  # fmt: skip
    assert pos_tokens("a person raises both feet, then turns left") == [
        "a/DET", "person/NOUN", "raise/VERB", "both/DET", "foot/NOUN", "then/ADV", "turn/VERB", "left/ADV",
    ]  # fmt: skip


def test_text_line_format():
    line = text_line("A man slashes with a sword.")
    fields = line.split("#")
    assert len(fields) == 4
    assert fields[0] == "a man slashes with a sword."
    assert fields[1] == "a/DET man/NOUN slash/VERB with/ADP a/DET sword/NOUN"
    assert fields[2:] == ["0.0", "0.0"]
    assert text_line("someone waves", 1.5, 3.25).endswith("#1.5#3.25")
    with pytest.raises(ValueError):
        text_line("  ")


def test_every_shared_label_has_captions_with_valid_tokens():
    for clip_id, label in shared_labels():
        phrases = label_phrases(label.label)
        assert not phrases[0].startswith("performs a "), f"{clip_id}: no phrases for label {label.label!r}"
        caps = template_captions(
            label, clip_id, n=3, side="left" if label.kind in ("kick", "punch") else None
        )
        assert len(caps) == 3 and len(set(caps)) == 3, (clip_id, caps)
        for cap in caps:
            assert cap == cap.lower() and "#" not in cap and "{" not in cap
            fields = text_line(cap).split("#")
            tokens = fields[1].split()
            assert tokens and all(t.split("/")[1] in UPOS and t.split("/")[0].isalpha() for t in tokens), (
                tokens
            )


def test_violent_labels_give_violent_captions_and_safe_ones_do_not():
    labels = shared_labels()
    assert sum(lab.violent for _, lab in labels) >= 45
    for clip_id, label in labels:
        caps = template_captions(label, clip_id, n=3)
        if label.violent:
            assert all(VIOLENT_VERBS.search(c) for c in caps), (clip_id, caps)
        if label.kind in ("kick", "punch", "slash", "stab"):
            assert all(label.kind in c for c in caps), (clip_id, caps)
        if not label.violent and label.label in ("walk", "run", "bow", "wave-left-hand"):
            assert not any(VIOLENT_VERBS.search(c) for c in caps)


def test_captions_are_deterministic_varied_and_use_the_side():
    kick = bandai_label({"id": "k", "content": "kick", "style": "angry", "violent": True})
    a = template_captions(kick, "clip/0", side="right")
    assert a == template_captions(kick, "clip/0", side="right")
    assert any("right" in c for c in a) and not any("left" in c for c in a)
    assert any(("angrily" in c or "angry" in c or "furiously" in c) for c in a)
    assert {tuple(template_captions(kick, f"clip/{i}")) for i in range(10)} != {tuple(a)}
    mirrored = [mirror_text(c) for c in a]
    assert any("left" in c for c in mirrored) and not any("right" in c for c in mirrored)
    with pytest.raises(ValueError):
        template_captions(kick, "k", side="up")


def test_labels_of_names_and_unknown_labels():
    assert bvh_label("dataset-1_punch_normal_001") == ClipLabel("punch", "normal", True, "punch")
    assert bvh_label("my_walk") == ClipLabel("my walk", "normal", False, None)
    assert ase_label({"id": "Atk_SlashLeft", "violent": True}) == ClipLabel(
        "slash-left", "normal", True, "slash"
    )
    with pytest.raises(ValueError, match="no known move"):
        ase_label({"id": "Something", "violent": False})
    assert "walk" in LABEL_PHRASES and label_phrases("my walk")[0] == "performs a my walk motion"
