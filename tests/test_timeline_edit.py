"""Token in-filling (MoMask, BAMM, residual), timelines and in-betweening with random-weight tiny pipelines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.pipelines import MotionPipeline
from models.pipelines.edit import blend_boundaries, check_keep, edit_motion
from models.pipelines.outputs import make_generators
from models.pipelines.timeline import (
    MAX_TOKENS,
    Segment,
    generate_timeline,
    plan_chunks,
    segment_tokens,
    timeline_tokens,
)


@pytest.fixture(scope="module")
def momask(tiny_momask: MotionPipeline) -> MotionPipeline:
    return tiny_momask  # conftest's shared tiny MoMask (read only here)


@pytest.fixture(scope="module")
def bamm(tiny_bamm: MotionPipeline) -> MotionPipeline:
    return tiny_bamm


def _known(pipeline: MotionPipeline, n: int, known_at: list[int], seed: int = 0) -> torch.Tensor:
    q = pipeline.vq.cfg.num_quantizers
    codes = torch.randint(0, pipeline.vq.cfg.nb_code, (1, n, q), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(1, n, 1, dtype=torch.bool)
    mask[0, known_at] = True
    return torch.where(mask, codes, -1)


@pytest.mark.parametrize("kind", ["momask", "bamm"])
@pytest.mark.parametrize("known_at", [[0, 1, 2, 3], [0, 1, 9, 10, 11]], ids=["prefix", "both-ends"])
def test_infill_keeps_known_tokens_and_fills_the_rest(kind, known_at, momask, bamm) -> None:
    pipeline = momask if kind == "momask" else bamm
    known = _known(pipeline, 12, known_at)
    cond = pipeline.encode_text(["a person walks"])
    out = pipeline.infill_tokens(cond, torch.tensor([12]), known, make_generators([4]))
    assert out.shape == known.shape
    torch.testing.assert_close(out[0, known_at], known[0, known_at])      # every layer of known tokens
    free = [i for i in range(12) if i not in known_at]
    assert bool((out[0, free, 0] >= 0).all()) and bool((out[0, free, 0] < pipeline.vq.cfg.nb_code).all())
    again = pipeline.infill_tokens(cond, torch.tensor([12]), known, make_generators([4]))
    other = pipeline.infill_tokens(cond, torch.tensor([12]), known, make_generators([5]))
    torch.testing.assert_close(out, again)
    assert not torch.equal(out[0, free], other[0, free])


def test_bamm_infill_pads_after_the_length_and_checks_inputs(bamm) -> None:
    cond = bamm.encode_text(["a person walks", "someone jumps"])
    known = torch.full((2, 10), -1, dtype=torch.long)
    known[:, :2] = 7
    ids = bamm.base.infill(cond, torch.tensor([10, 6]), known, generator=make_generators([1, 2]))
    assert bool((ids[1, 6:] == -1).all()) and bool((ids[:, :2] == 7).all()) and bool((ids[0] >= 0).all())
    with pytest.raises(ValueError, match="known_ids"):
        bamm.base.infill(cond, torch.tensor([10, 6]), torch.full((2, 10), 10_000))


def test_residual_keeps_known_residual_ids(momask) -> None:
    cond = momask.encode_text(["a person walks"])
    q = momask.vq.cfg.num_quantizers
    ids = torch.randint(0, 16, (1, 6, q))
    ids[0, 3:, 1:] = -1
    out = momask.residual.generate(ids, cond, torch.tensor([6]), generator=make_generators([0]))
    torch.testing.assert_close(out[0, :3], ids[0, :3])
    torch.testing.assert_close(out[0, :, 0], ids[0, :, 0])
    assert bool((out[0, 3:, 1:] >= 0).all())


def test_plan_chunks_respects_the_window_and_the_token_limit() -> None:
    chunks = plan_chunks([50] * 6, window=4)
    assert sum(n for _, n in chunks) == 300
    assert chunks[0][1] <= MAX_TOKENS and all(n + 4 <= MAX_TOKENS for _, n in chunks[1:])
    assert [i for i, _ in chunks] == sorted(i for i, _ in chunks)
    assert plan_chunks([10, 3]) == [(0, 10), (1, 3)]
    assert segment_tokens(10.0) == 50 and segment_tokens(0.1) == 1


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_timeline_chunks_continue_from_the_previous_tokens(kind, momask, bamm) -> None:
    pipeline = momask if kind == "momask" else bamm
    segments = [Segment("a person walks", 48), Segment("a person jumps", 220)]
    tokens, chunks = timeline_tokens(pipeline, segments, [3], window=4, transition=2)
    assert tokens.shape[1] == 12 + 55
    assert len(chunks) == 3 and chunks[0][:2] == (0, 0) and all(c[:2] == (4, 2) for c in chunks[1:])
    assert all(ids.shape[1] <= MAX_TOKENS for *_, ids in chunks)
    seen = chunks[0][2]
    for kept, redo, ids in chunks[1:]:
        seen = seen[:, :seen.shape[1] - redo]                      # the transition tokens are regenerated
        torch.testing.assert_close(ids[:, :kept], seen[:, -kept:])  # the window: previous tokens, all layers
        seen = torch.cat([seen, ids[:, kept:]], dim=1)
    torch.testing.assert_close(seen, tokens)
    plain, _ = timeline_tokens(pipeline, segments, [3], window=4, transition=0)
    torch.testing.assert_close(plain[:, :10], tokens[:, :10])      # before the first transition: the same
    assert not torch.equal(plain, tokens)


def test_batched_timelines_match_single_ones(momask) -> None:
    segments = [Segment("-", 40), Segment("-", 32)]
    texts = [["a person walks", "a person jumps"], ["someone sits down", "a person waves"]]
    batched, _ = timeline_tokens(momask, segments, [5, 6], texts=texts)
    for row, seed in enumerate([5, 6]):
        parts = [Segment(t, s.frames) for t, s in zip(texts[row], segments, strict=True)]
        alone, _ = timeline_tokens(momask, parts, [seed])
        torch.testing.assert_close(batched[row:row + 1], alone)


def test_generate_timeline_shapes_boundaries_and_seed(momask) -> None:
    segments = [Segment("a person walks", 40), Segment("a person jumps", 62)]
    a = generate_timeline(momask, segments, seed=2, num_samples=2)
    b = generate_timeline(momask, segments, seed=2, num_samples=2)
    blend = generate_timeline(momask, segments, seed=2, decode="blend")
    assert [m.length for m in a] == [100, 100] and a[0].boundaries == [(0, 40), (40, 100)]
    assert a[0].joints.shape == (100, 22, 3) and np.isfinite(a[0].joints).all()
    np.testing.assert_array_equal(a[0].features, b[0].features)
    assert not np.array_equal(a[0].features, a[1].features)
    assert blend[0].features.shape == a[0].features.shape
    with pytest.raises(ValueError, match="at most 60 s"):
        generate_timeline(momask, [Segment("x", 1000), Segment("y", 204)])
    with pytest.raises(ValueError, match="non-empty text"):
        generate_timeline(momask, [Segment(" ", 40)])


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_edit_keeps_kept_frames_bit_exact(kind, momask, bamm) -> None:
    pipeline = momask if kind == "momask" else bamm
    source = pipeline.generate(["a person walks"], [80], seed=1)[0].features
    out = edit_motion(pipeline, source, "a person jumps", [[0, 22], [60, 80]], seed=5, num_samples=2)
    for motion in out:
        assert motion.length == 80 and motion.features.shape == source.shape
        np.testing.assert_array_equal(motion.features[:22], source[:22])
        np.testing.assert_array_equal(motion.features[60:], source[60:])
        assert not np.array_equal(motion.features[22:60], source[22:60])
    assert not np.array_equal(out[0].features[22:60], out[1].features[22:60])


def test_edit_crops_to_a_multiple_of_four_and_validates_keep(momask) -> None:
    source = momask.generate(["a person walks"], [40], seed=1)[0].features
    longer = np.concatenate([source, source[:3]])                    # 43 frames -> 40
    out = edit_motion(momask, longer, "a person jumps", [[0, 8]], seed=5)
    assert out[0].length == 40
    with pytest.raises(ValueError, match="overlap"):
        check_keep([[0, 10], [5, 20]], 40)
    with pytest.raises(ValueError, match="0 <= start < end <= 40"):
        check_keep([[30, 44]], 40)
    with pytest.raises(ValueError, match="0 <= start < end"):
        check_keep([[8, 8]], 40)
    with pytest.raises(ValueError, match="features"):
        edit_motion(momask, source[:, :100], "x", [[0, 8]])


def test_blend_boundaries_removes_the_jump_next_to_kept_frames() -> None:
    source = torch.zeros(12, 2)
    decoded = torch.ones(1, 12, 2)
    kept = torch.tensor([True] * 4 + [False] * 8)
    out = blend_boundaries(decoded, source, kept, blend=3)
    torch.testing.assert_close(out[0, :4], source[:4])
    # frames 4, 5, 6 move toward the kept frame's source by a cosine share of the offset (-1), frame 7 not at all
    share = [0.5 * (1 + math.cos(math.pi * d / 4)) for d in (1, 2, 3)]
    torch.testing.assert_close(out[0, 4:8, 0], torch.tensor([1 - share[0], 1 - share[1], 1 - share[2], 1.0]))
    linear = blend_boundaries(decoded, source, kept, blend=3, shape="linear")
    torch.testing.assert_close(linear[0, 4:8, 0], torch.tensor([0.25, 0.5, 0.75, 1.0]))
    # a kept ramp (slope 1 per frame) keeps rising into the first generated frame, then fades to the decoded 0
    ramp = torch.arange(12.0).unsqueeze(1).repeat(1, 2)
    flat = blend_boundaries(torch.zeros(1, 12, 2), ramp, kept, blend=3)
    no_slope = blend_boundaries(torch.zeros(1, 12, 2), ramp, torch.tensor([False] * 3 + [True] + [False] * 8),
                                blend=3)
    assert float(flat[0, 4, 0]) > float(ramp[3, 0]) > float(no_slope[0, 4, 0]) and float(flat[0, 7, 0]) == 0


def test_gateway_limits_match_the_library() -> None:
    from models.pipelines import MAX_FRAMES, edit, timeline
    from service import schemas

    assert schemas.TIMELINE_MAX_SECONDS == timeline.MAX_SECONDS
    assert schemas.TIMELINE_MAX_SEGMENTS == timeline.MAX_SEGMENTS
    assert schemas.EDIT_MAX_FRAMES == MAX_FRAMES and schemas.EDIT_MAX_KEEP == edit.MAX_KEEP_RANGES


def test_cli_timeline_and_edit(momask, tmp_path) -> None:
    from hmu.cli import main as hmu_main

    model = momask.save_pretrained(tmp_path / "model")
    out, feats = tmp_path / "t.npy", tmp_path / "t_features.npy"
    assert hmu_main(["generate", "--model", str(model), "--segment", "a person walks=2",
                     "--segment", "a person jumps=1.2", "--seed", "1", "--out", str(out),
                     "--features-out", str(feats)]) == 0
    assert np.load(out).shape == (64, 22, 3)
    edited, edited_feats = tmp_path / "e.npy", tmp_path / "e_features.npy"
    assert hmu_main(["generate", "--model", str(model), "--text", "a person waves", "--edit", str(feats),
                     "--keep", "0:16", "--keep", "48:64", "--seed", "2", "--out", str(edited),
                     "--features-out", str(edited_feats)]) == 0
    source, result = np.load(feats), np.load(edited_feats)
    np.testing.assert_array_equal(result[:16], source[:16])
    np.testing.assert_array_equal(result[48:], source[48:])
    assert hmu_main(["generate", "--model", str(model), "--text", "x", "--edit", str(feats), "--keep", "0:80",
                     "--out", str(edited)]) == 2
    assert hmu_main(["generate", "--model", str(model), "--out", str(edited)]) == 2
