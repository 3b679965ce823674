"""Dataset build on a small subset of the shared mocap: byte-identical rebuilds, HumanML3D file
formats, splits (violent kinds in test, clips not split across sets), statistics, BVH-only builds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.data.build import BuildConfig, assign_splits, build_dataset, window_ranges
from models.data.labels import ClipLabel
from models.motion.features import feature_slices, features_to_joints
from models.motion.mirror import mirror_text
from models.motion.normalize import compute_statistics

SHARED = Path(os.environ.get("HMU_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
IDS = [
    "dataset-1_kick_normal_001", "dataset-1_punch_normal_001", "dataset-1_punch_normal_002",
    "dataset-2_walk_normal_001", "dataset-2_run_active_001", "dataset-2_wave-left-hand_active_001",
    "dataset-2_raise-up-both-hands_active_001",  # 31 frames: too short, dropped
    "Atk_Stab", "WalkForward01", "02_05", "07_03",
]  # fmt: skip


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path, dict]:
    a, b = tmp_path_factory.mktemp("build_a"), tmp_path_factory.mktemp("build_b")
    summary = build_dataset(a, SHARED, ids=IDS)
    build_dataset(b, SHARED, ids=IDS)
    return a, b, summary


def ids_of(root: Path, name: str) -> list[str]:
    return (root / f"{name}.txt").read_text().split()


def test_rebuild_is_byte_identical(builds):
    a, b, _ = builds
    tree_a, tree_b = read_tree(a), read_tree(b)
    assert tree_a.keys() == tree_b.keys()
    assert all(tree_a[k] == tree_b[k] for k in tree_a)
    sums = dict(line.split("  ")[::-1] for line in (a / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == set(tree_a) - {"SHA256SUMS"}


def test_files_follow_the_humanml3d_format(builds):
    root, _, summary = builds
    all_ids = ids_of(root, "all")
    assert len(all_ids) == summary["motions"] == len(set(all_ids))
    plain = [i for i in all_ids if not i.startswith("M")]
    assert all(len(i) == 6 and i.isdigit() for i in plain)
    assert sorted("M" + i for i in plain) == sorted(i for i in all_ids if i.startswith("M"))
    for i in all_ids:
        vecs = np.load(root / "new_joint_vecs" / f"{i}.npy")
        joints = np.load(root / "new_joints" / f"{i}.npy")
        assert vecs.dtype == joints.dtype == np.float32
        assert 40 <= vecs.shape[0] <= 196 and vecs.shape[1] == 263
        assert joints.shape == (vecs.shape[0], 22, 3)
        np.testing.assert_allclose(joints, features_to_joints(vecs), atol=1e-5)
        lines = (root / "texts" / f"{i}.txt").read_text().splitlines()
        assert len(lines) >= 3
        for line in lines:
            caption, tokens, start, end = line.split("#")
            assert caption == caption.lower() and (start, end) == ("0.0", "0.0")
            assert all(len(t.split("/")) == 2 and t.split("/")[1].isupper() for t in tokens.split())
        if i.startswith("M"):
            original = (root / "texts" / f"{i[1:]}.txt").read_text().splitlines()
            assert [ln.split("#")[0] for ln in lines] == [mirror_text(ln.split("#")[0]) for ln in original]


def test_splits_and_violent_kinds(builds):
    root, _, summary = builds
    meta = json.loads((root / "meta.json").read_text())
    splits = {s: set(ids_of(root, s)) for s in ("train", "val", "test")}
    assert not (
        splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"]
    )
    assert set().union(*splits.values()) == set(ids_of(root, "all")) == set(meta)
    assert set(ids_of(root, "train_val")) == splits["train"] | splits["val"]
    clip_split: dict[tuple[str, str], set] = {}
    for i, m in meta.items():
        assert i in splits[m["split"]]
        clip_split.setdefault((m["source"], m["source_clip"]), set()).add(m["split"])
    assert all(len(s) == 1 for s in clip_split.values())  # windows and mirrors share their clip's split
    kinds = {m["violent_kind"] for m in meta.values() if m["violent"]}
    assert kinds == {"kick", "punch", "stab"}
    for kind in kinds:
        assert any(m["violent_kind"] == kind and m["split"] == "test" for m in meta.values()), kind
    # 3 punch clips (2 Bandai Namco, 1 CMU): one in test, the others stay in train
    punch_clips = {(m["source_clip"], m["split"]) for m in meta.values() if m["violent_kind"] == "punch"}
    assert sorted(s for _, s in punch_clips) == ["test", "train", "train"]
    kick = [m for m in meta.values() if m["source_clip"] == "dataset-1_kick_normal_001"]
    assert len(kick) == 4 and {m["side"] for m in kick if not m["mirrored"]} == {"right"}
    assert {m["side"] for m in kick if m["mirrored"]} == {"left"}
    wave = [m for m in meta.values() if m["source_clip"] == "dataset-2_wave-left-hand_active_001"]
    assert sorted(m["label"] for m in wave) == ["wave-left-hand", "wave-right-hand"]
    assert summary["sources"]["bandai_namco"]["dropped_short"] == 1


def test_statistics_come_from_the_train_split(builds):
    root, _, _ = builds
    mean, std = np.load(root / "Mean.npy"), np.load(root / "Std.npy")
    assert mean.shape == std.shape == (263,) and mean.dtype == std.dtype == np.float32
    ref_mean, ref_std = compute_statistics(
        [np.load(root / "new_joint_vecs" / f"{i}.npy") for i in ids_of(root, "train")]
    )
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, ref_std, rtol=1e-5, atol=1e-7)
    for sl in feature_slices(22).values():
        assert (std[sl] == std[sl][0]).all() and std[sl][0] > 0


def test_card_lists_counts_and_licences(builds):
    card = (builds[0] / "DATASET_CARD.md").read_text()
    needles = ["CC BY-NC 4.0", "2306.08861", "Reallusion", "noncommercial", "mocap.cs.cmu.edu", "TMR"]
    needles += ["template-generated", "spine3 = midpoint(Chest, Neck)", "| punch | 2 (3) |", "| kick |"]
    for needle in needles:
        assert needle in card, needle


def test_bvh_only_build_matches_the_npz_clip(builds, tmp_path):
    root = builds[0]
    bvh_dir = tmp_path / "bvh"
    bvh_dir.mkdir()
    shutil.copy(SHARED / "bvh" / "dataset-2_run_active_001.bvh", bvh_dir)
    out = tmp_path / "out"
    summary = build_dataset(out, shared_dir=None, bvh_dir=bvh_dir)
    assert summary["motions"] == 2
    meta = json.loads((out / "meta.json").read_text())
    assert meta["000000"]["origin"] == "bvh:dataset-2_run_active_001.bvh"
    npz_id = next(i for i, m in json.loads((root / "meta.json").read_text()).items()
                  if m["source_clip"] == "dataset-2_run_active_001" and not m["mirrored"])  # fmt: skip
    from_bvh = np.load(out / "new_joint_vecs" / "000000.npy")
    from_npz = np.load(root / "new_joint_vecs" / f"{npz_id}.npy")
    assert from_bvh.shape == from_npz.shape
    # the inputs differ only by the npz's float16 storage (<= 2 mm): poses relative to the root agree to
    # 1 cm, root heights to 2 mm and foot contacts exactly (the integrated trajectory may drift more)
    sl = feature_slices(22)
    assert np.abs(from_bvh[:, sl["ric"]] - from_npz[:, sl["ric"]]).max() < 0.01
    assert np.abs(from_bvh[:, sl["root_y"]] - from_npz[:, sl["root_y"]]).max() < 0.002
    assert (from_bvh[:, sl["contacts"]] == from_npz[:, sl["contacts"]]).all()
    with pytest.raises(ValueError, match="not empty"):
        build_dataset(out, shared_dir=None, bvh_dir=bvh_dir)


def test_window_ranges():
    assert window_ranges(40) == []  # 39 feature frames < 40
    assert window_ranges(41) == [(0, 41)]
    assert window_ranges(197) == [(0, 197)]
    w = window_ranges(309)
    assert len(w) == 2 and w[0][0] == 0 and w[-1][1] == 309
    assert all(e - s - 1 <= 196 and e - s - 1 >= 40 for s, e in w)
    w = window_ranges(1267)
    assert len(w) == 7 and w[-1][1] == 1267 and all(e - s == w[0][1] - w[0][0] for s, e in w)


def test_assign_splits_puts_every_violent_kind_in_test():
    def lab(kind):
        return ClipLabel(kind or "walk", "normal", kind is not None, kind)

    clips = [("bandai_namco", f"walk{i:03d}", lab(None)) for i in range(400)]
    clips += [("ase_reallusion", "stab", lab("stab"))]
    clips += [("bandai_namco", f"kick{i}", lab("kick")) for i in range(2)]
    clips += [("ase_reallusion", f"combo{i}", lab("sword_attack")) for i in range(30)]
    splits = assign_splits(clips, BuildConfig())
    by = lambda prefix: [splits[(s, c)] for s, c, _ in clips if c.startswith(prefix)]  # noqa: E731
    assert by("stab") == ["test"]
    assert sorted(by("kick")) == ["test", "train"]
    combo = by("combo")
    assert combo.count("test") == 10 and combo.count("val") == 1 and combo.count("train") == 19
    walk = by("walk")
    assert 0.7 < walk.count("train") / 400 < 0.9 and walk.count("test") > 30 and walk.count("val") > 5
    assert splits == assign_splits(list(reversed(clips)), BuildConfig())  # order independent
