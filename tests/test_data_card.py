"""DATASET_CARD.md renders from its package template byte for byte as the former code did (expected files
in tests/expected/ were written by the renderer before it moved to a template)."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import pytest

from models.data.build import BuildConfig, render_card

EXPECTED = Path(__file__).resolve().parent / "expected"


def fixed_summary() -> dict:
    """A build summary covering every part of the card (three sources, BVH, violent kinds, notes)."""
    return {
        "format_version": 1,
        "config": asdict(BuildConfig()),
        "sources": {
            "bandai_namco": {"clips": 12, "frames_20fps": 3000, "dropped_short": 1, "clips_used": 11,
                             "windows": 14, "feature_frames": 2500},
            "ase_reallusion": {"clips": 3, "frames_20fps": 400, "clips_used": 3, "windows": 3,
                               "feature_frames": 390},
            "cmu": {"clips": 2, "frames_20fps": 72000, "clips_used": 2, "windows": 380, "feature_frames": 71000},
            "bvh": {"clips": 1, "frames_20fps": 50, "dropped_short": 1},
        },
        "splits": {"train": {"motions": 600, "frames": 100000, "clips": 14},
                   "val": {"motions": 10, "frames": 900, "clips": 1},
                   "test": {"motions": 180, "frames": 30000, "clips": 3}},
        "labels": [
            {"source": "bandai_namco", "label": "kick", "clips": 2, "windows": 3, "test": 2, "train": 1, "violent": 1},
            {"source": "bandai_namco", "label": "walk", "clips": 9, "windows": 11, "train": 10, "val": 1,
             "violent": 0},
            {"source": "cmu", "label": "punch/strike", "clips": 1, "windows": 190, "test": 190, "violent": 1},
        ],
        "violent": {
            "punch": {"train": {"windows": 0, "clips": []}, "val": {"windows": 0, "clips": []},
                      "test": {"windows": 190, "clips": ["cmu/02_05"]}},
            "kick": {"train": {"windows": 1, "clips": ["bandai_namco/k1"]}, "val": {"windows": 0, "clips": []},
                     "test": {"windows": 2, "clips": ["bandai_namco/k2", "bandai_namco/k3"]}},
        },
        "styles": {"active": 3, "normal": 11},
        "kitml_motions": 17,
        "motions": 790,
        "notes": ["`a` (bandai_namco) taken from x.bvh instead of the npz", "second note"],
    }


def plain_summary() -> dict:
    summary = copy.deepcopy(fixed_summary())
    summary["config"] = asdict(BuildConfig(mirror=False, seed=3, min_frames=20, max_frames=100, val_fraction=0.1,
                                           test_fraction=0.2, violent_test_fraction=0.25, kitml_min_coverage=0.75,
                                           bvh_scale=1.0, captions_per_motion=2))
    summary["notes"], summary["violent"], summary["styles"] = [], {}, {}
    del summary["sources"]["bvh"]
    return summary


@pytest.mark.parametrize(
    "name, summary", [("dataset_card.md", fixed_summary), ("dataset_card_plain.md", plain_summary)]
)
def test_card_equals_the_former_rendering(name, summary):
    assert render_card(summary()) == (EXPECTED / name).read_text(encoding="utf-8")
