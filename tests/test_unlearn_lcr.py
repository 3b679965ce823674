"""LCR: forget/retain split, code statistics, selection, replacement, private overlay, injection."""

from __future__ import annotations

import pytest
import torch

from models.data.concepts import get_concept
from models.data.forget_retain import split_dataset, write_retain_dataset
from models.motion.normalize import Normalizer
from models.pipelines import MotionPipeline
from models.unlearn.code_stats import CountSpec, collect_code_stats
from models.unlearn.lcr import (
    LCRParams,
    apply_lcr,
    apply_overlay,
    code_scores,
    inject_codes,
    save_overlay,
    select_codes,
)
from models.unlearn.run import copy_pipeline
from tests.unlearn_helpers import make_dataset


@pytest.fixture(scope="module")
def pipeline() -> MotionPipeline:
    return MotionPipeline.random(kind="momask", size="tiny", seed=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("hml"))


def _normalizer(p: MotionPipeline) -> Normalizer:
    return Normalizer(p.mean.numpy(), p.std.numpy())


def test_forget_retain_split_counts_and_files(data, tmp_path) -> None:
    parts = split_dataset(data, "violence", splits=("train", "test"), out_dir=tmp_path / "kw_splits")
    train = parts["train"]
    assert sorted(train.forget + train.retain) == (data / "train.txt").read_text().split()
    assert train.forget == [f"{i:06d}" for i in range(18) if i % 4 == 0 or i % 6 == 1]
    assert train.keyword_counts == {"kick": 5, "punch": 3}
    assert train.sub_concept_counts == {"kick": 5, "punch_jab_box_hit_beat": 3}
    assert (tmp_path / "kw_splits" / "train-w-violence.txt").read_text().split() == train.forget
    assert (tmp_path / "kw_splits" / "test-wo-violence.txt").read_text().split() == parts["test"].retain
    # The paper's substring mode also catches "hit" in "white" (SAFE[2] captions).
    paper = split_dataset(data, get_concept("violence-humanml3d", match_mode="substring"), splits=("train",))
    assert len(paper["train"].forget) > len(train.forget)


def test_retain_dataset_links_the_data_and_lists_retain_ids_only(data, tmp_path) -> None:
    from hmu.cli import main
    from models.data.datasets import check_data_dir, read_split

    out = tmp_path / "retain"
    assert main(["forget-split", "--data", str(data), "--splits", "train", "test", "--out", str(tmp_path / "kw"),
                 "--retain-data", str(out)]) == 0
    parts = split_dataset(data, "violence", splits=("train", "val", "test"))
    for split in ("train", "val", "test"):
        assert (out / f"{split}.txt").read_text().split() == parts[split].retain
    assert parts["train"].forget and not set(parts["train"].forget) & set((out / "train.txt").read_text().split())
    assert (out / "new_joint_vecs").is_symlink() and (out / "texts").resolve() == (data / "texts").resolve()
    assert (out / "Mean.npy").is_symlink() and not (out / "train_val.txt").exists()
    assert read_split(check_data_dir(out), "train") == parts["train"].retain  # what `hmu train` reads
    with pytest.raises(FileExistsError):
        write_retain_dataset(data, "violence", out)


def test_scores_and_top_k_selection() -> None:
    f_forget = torch.tensor([5.0, 0.0, 3.0, 4.0, 1.0, 2.0])
    f_retain = torch.tensor([1.0, 9.0, 0.0, 4.0, 0.0, 8.0])
    s1, s2 = code_scores(f_forget, f_retain)
    assert s1.argmax() == 2 and s2.argmax() == 2  # never seen in retain ranks first (by f_F)
    assert select_codes(f_forget, f_retain, k=2) == [2, 4]  # codes absent from retain come first
    assert select_codes(f_forget, f_retain, k=3) == [0, 2, 4]
    assert select_codes(f_forget, f_retain, k=3, min_support=2) == [0, 2, 3]


def test_code_statistics_exclude_padding_repeat_and_cache(pipeline, data, tmp_path) -> None:
    norm = _normalizer(pipeline)
    stats, cached = collect_code_stats(data, pipeline.vq, norm, CountSpec(["train"], repeats=3), cache_dir=tmp_path)
    assert not cached and stats.counts.shape == (18, 3, 64) and stats.counts.max() <= 3
    tokens_per_item = torch.tensor([int(n) for n in stats.counts[:, 0].sum(1)])
    assert bool((tokens_per_item <= 3 * 25).all())  # presence counts, <= #distinct valid tokens per repeat
    again, cached = collect_code_stats(data, pipeline.vq, norm, CountSpec(["train"], repeats=3), cache_dir=tmp_path)
    assert cached and torch.equal(again.counts, stats.counts) and again.names == stats.names
    padded, _ = collect_code_stats(
        data, pipeline.vq, norm, CountSpec(["train"], repeats=1, exclude_padding=False), use_cache=False
    )
    plain, _ = collect_code_stats(data, pipeline.vq, norm, CountSpec(["train"], repeats=1), use_cache=False)
    assert not torch.equal(padded.counts, plain.counts)  # the padded tail adds codes


def test_lcr_changes_exactly_the_selected_rows_and_overlay_restores_bits(pipeline, data, tmp_path) -> None:
    model = copy_pipeline(pipeline)
    before = {k: v.clone() for k, v in model.vq.state_dict().items()}
    others = {
        n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in model.modules().items() if n != "vq"
    }
    params = LCRParams.from_dict({"k": 4, "layers": [0, 2], "cache_dir": str(tmp_path)})
    result, overlay = apply_lcr(model, get_concept("violence"), params, data)
    selected = {int(q): v for q, v in result["selected_codes"].items()}
    assert set(selected) == {0, 2} and all(1 <= len(v) <= 8 for v in selected.values())
    after = model.vq.state_dict()
    for key, value in before.items():
        if key.startswith("quantizer.layers.") and key.endswith("codebook"):
            q = int(key.split(".")[2])
            changed = torch.nonzero((after[key] != value).any(dim=1)).flatten().tolist()
            assert changed == selected.get(q, []), f"layer {q}"
        else:
            assert torch.equal(after[key], value), key
    for name, state in others.items():
        assert all(torch.equal(v, model.modules()[name].state_dict()[k]) for k, v in state.items()), name
    # Replaced rows sit near the destination, with alpha * sigma noise.
    book = after["quantizer.layers.0.codebook"]
    dest = result["destinations"]["0"][0]
    assert dest not in selected[0]
    noise = (book[selected[0]] - before["quantizer.layers.0.codebook"][dest]).std()
    assert abs(float(noise) / result["sigma"]["0"] - 1.0) < 0.35

    save_overlay(overlay, tmp_path / "overlay.safetensors", {})
    apply_overlay(model, tmp_path / "overlay.safetensors")
    assert all(torch.equal(v, model.vq.state_dict()[k]) for k, v in before.items())


def test_lcr_options_orth_fixed_destination_and_compositional(pipeline, data, tmp_path) -> None:
    concept = get_concept("violence")
    fixed = copy_pipeline(pipeline)
    result, _ = apply_lcr(
        fixed,
        concept,
        LCRParams.from_dict(
            {"k": 3, "dest_strategy": "fixed", "dest_code": 63, "alpha": 0.0, "cache_dir": str(tmp_path)}
        ),
        data,
    )
    book = fixed.vq.quantizer.layers[0].codebook
    for code in result["selected_codes"]["0"]:
        assert torch.equal(book[code], book[63])  # alpha = 0: an exact copy of the destination row

    orth = copy_pipeline(pipeline)
    result, overlay = apply_lcr(
        orth, concept, LCRParams.from_dict({"k": 3, "mode": "orth", "cache_dir": str(tmp_path)}), data
    )
    rows = orth.vq.quantizer.layers[0].codebook[result["selected_codes"]["0"]]
    u = overlay["layer0.rows"].mean(0)
    torch.testing.assert_close(rows @ (u / u.norm()), torch.zeros(len(rows)), atol=1e-5, rtol=0)

    comp = copy_pipeline(pipeline)
    result, _ = apply_lcr(
        comp,
        concept,
        LCRParams.from_dict(
            {"k_per_sub": {"kick": 2, "punch_jab_box_hit_beat": 1}, "cache_dir": str(tmp_path)}
        ),
        data,
    )
    parts = result["parts"]
    assert set(parts) == {"kick", "punch_jab_box_hit_beat"}
    assert parts["kick"]["forget_items"] == 5 and parts["punch_jab_box_hit_beat"]["forget_items"] == 4
    union = sorted(set(parts["kick"]["codes"]["0"]) | set(parts["punch_jab_box_hit_beat"]["codes"]["0"]))
    assert result["selected_codes"]["0"] == union
    with pytest.raises(ValueError, match="unknown sub-concepts"):
        apply_lcr(copy_pipeline(pipeline), concept, LCRParams.from_dict({"k_per_sub": {"nope": 2}}), data)
    with pytest.raises(ValueError, match="layers"):
        apply_lcr(copy_pipeline(pipeline), concept, LCRParams.from_dict({"layers": [5]}), data)


def test_violence_injection_writes_the_given_codes(pipeline) -> None:
    ids, feats = inject_codes(
        pipeline, ["a person walks"], [40], codes=[7, 9], positions=[0, 1, 2], seed=3, timesteps=2
    )
    assert ids[0, :3, 0].tolist() == [7, 9, 7]
    kept, _ = inject_codes(
        pipeline,
        ["a person walks"],
        [40],
        codes=[7],
        positions=[4],
        seed=3,
        timesteps=2,
        regenerate_residual=False,
    )
    assert kept[0, 4, 0] == 7 and feats[0].shape == (40, 263)
    with pytest.raises(ValueError, match="codes must lie"):
        inject_codes(pipeline, ["a person walks"], [40], codes=[64])
