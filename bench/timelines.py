"""Timelines (issue #16): speed, seam smoothness and per-segment R-precision of the shipped small models.

    python bench/timelines.py --data data/default [--models weights/momask-small weights/bamm-small]
                              [--timelines 32] [--seed 1] [--out bench/results/timelines.json]

* Speed: one 6 x 10 s (60 s) timeline, batch 1, default sampling, against one 196-frame generation in the
  same process (best of `--repeats`).
* Quality: `--timelines` timelines of six test captions each (durations 4, 7, 3, 8, 5, 6 s; batched, one seed
  per timeline). Each is decoded two ways from the same tokens: "concat" (the whole token sequence at once,
  the service's default) and "blend" (each chunk alone, cross-faded over the kept window); "independent" =
  every segment generated alone (same text, length and seed) and the features concatenated (hard cuts).
* Smoothness on the joints (metres, 20 fps, the whole timeline recovered from its features): per frame the
  mean over joints of |velocity| (m/s) and |acceleration| (m/s^2). A seam's value is the mean over the four
  frames around it; inside frames are those at least 8 frames from any seam. The figure is
  seam / median(inside), per seam; we report its median and 90th percentile over all seams.
* R-precision of each segment (its frames) against its own caption with the shipped evaluator (as
  `hmu evaluate`): shuffled batches of 32 segments, R@1..3.
* `--edits N`: N real test motions (80..196 frames), first and last quarter kept, the middle regenerated from
  another test caption: kept frames bit-exact?, boundary smoothness as above and against the rougher of the
  two sides of the boundary (kept and regenerated parts differ in activity), seconds per edit.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from models.eval.metrics import euclidean_distance_matrix, iter_batches, top_k_hits
from models.eval.sets import load_eval_set, read_ids_or_all
from models.eval.space import load_eval_space
from models.motion.features import features_to_joints
from models.pipelines import MotionPipeline, default_model_dir
from models.pipelines.edit import edit_motion
from models.pipelines.timeline import Segment, decode_blend, generate_timeline, timeline_tokens

DURATIONS = (4, 7, 3, 8, 5, 6)
SEAM_HALF = 2     # frames each side of a seam
INSIDE_GAP = 8    # inside frames are at least this far from a seam


def kinematics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mean joint speed (m/s) and acceleration (m/s^2), each (T,) (edges repeated)."""
    joints = features_to_joints(torch.from_numpy(features)).numpy()
    vel = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=-1) * 20
    acc = np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1).mean(axis=-1) * 400
    return np.concatenate([vel, vel[-1:]]), np.concatenate([acc[:1], acc, acc[-1:]])


def seam_ratios(features: list[np.ndarray], seams: list[int]) -> dict[str, dict[str, float]]:
    """Seam / median-inside ratios of speed and acceleration over every timeline's seams."""
    out = {}
    for name, index in (("velocity", 0), ("acceleration", 1)):
        ratios, seam_values, inside_values = [], [], []
        for feats in features:
            curve = kinematics(feats)[index]
            frames = np.arange(len(curve))
            distance = np.min(np.abs(frames[:, None] - np.asarray(seams)[None]), axis=1)
            inside = float(np.median(curve[distance >= INSIDE_GAP]))
            for seam in seams:
                value = float(curve[seam - SEAM_HALF:seam + SEAM_HALF].mean())
                ratios.append(value / inside)
                seam_values.append(value)
            inside_values.append(inside)
        out[name] = {"seam_over_inside_median": float(np.median(ratios)),
                     "seam_over_inside_p90": float(np.percentile(ratios, 90)),
                     "seam_mean": float(np.mean(seam_values)), "inside_median": float(np.median(inside_values))}
    return out


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, seed: int) -> list[float]:
    hits, count = np.zeros(3), 0
    size = min(32, len(text_emb))
    for batch in iter_batches(len(text_emb), size, drop_last=True, shuffle=True, rng=np.random.default_rng(seed)):
        hits += top_k_hits(euclidean_distance_matrix(text_emb[batch], motion_emb[batch]), 3).sum(axis=0)
        count += len(batch)
    return [round(float(h), 3) for h in hits / max(count, 1)]


def speed(pipeline: MotionPipeline, repeats: int) -> dict[str, float]:
    segments = [Segment(t, 200) for t in ("a person walks forward", "a person jumps in place", "a person kicks",
                                          "a person sits down", "a person waves", "a person runs")]
    timeline, single = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        generate_timeline(pipeline, segments, seed=r)
        timeline.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pipeline.generate(["a person walks forward"], [196], seed=r)
        single.append(time.perf_counter() - t0)
    return {"timeline_6x10s_seconds": round(min(timeline), 2), "single_196_frames_seconds": round(min(single), 2)}


def quality(pipeline: MotionPipeline, space, captions: list[list[str]], seed: int) -> dict:
    segments = [Segment("-", seconds * 20) for seconds in DURATIONS]
    bounds = np.cumsum([0, *(s.frames for s in segments)])
    seeds = [seed * 1000 + i for i in range(len(captions))]
    t0 = time.perf_counter()
    tokens, chunks = timeline_tokens(pipeline, segments, seeds, texts=captions)
    seconds = time.perf_counter() - t0
    decoded = {"concat": pipeline.decode_tokens(tokens), "blend": decode_blend(pipeline, chunks)}
    features = {name: [f.cpu().numpy() for f in feats] for name, feats in decoded.items()}
    rows = [(i, k) for i in range(len(captions)) for k in range(len(segments))]
    single = pipeline.generate([captions[i][k] for i, k in rows], [segments[k].frames for _, k in rows],
                               seeds=[seeds[i] + 7919 * k for i, k in rows])
    features["independent"] = [np.concatenate([single[i * len(segments) + k].features
                                               for k in range(len(segments))]) for i in range(len(captions))]
    flat = [captions[i][k] for i, k in rows]
    text_emb = space.text_embeddings(flat, [[] for _ in flat])
    out: dict = {"batched_timelines_seconds": round(seconds, 1)}
    for name, feats in features.items():
        crops = [feats[i][bounds[k]:bounds[k + 1]] for i, k in rows]
        out[name] = {"smoothness": seam_ratios(feats, list(bounds[1:-1])),
                     "segment_r_precision": r_precision(text_emb, space.motion_embeddings(crops), seed)}
    return out


def edits(pipeline: MotionPipeline, motions: list[np.ndarray], captions: list[str], seed: int) -> dict:
    """In-betweening of real test motions: keep the first and last quarter, regenerate the middle from another
    caption. Kept frames must be bit-exact; smoothness at the two boundaries as for timeline seams."""
    exact, features, seams, seconds = [], [], [], 0.0
    for i, (motion, caption) in enumerate(zip(motions, captions, strict=True)):
        frames = len(motion) // 4 * 4
        a, b = frames // 4, frames - frames // 4
        t0 = time.perf_counter()
        [out] = edit_motion(pipeline, motion, caption, [[0, a], [b, frames]], seed=seed + i)
        seconds += time.perf_counter() - t0
        exact.append(bool(np.array_equal(out.features[:a], motion[:a]))
                     and bool(np.array_equal(out.features[b:], motion[b:frames])))
        features.append(out.features)
        seams.append([a, b])
    ratios = [seam_ratios([f], s)["acceleration"]["seam_over_inside_median"] for f, s in zip(features, seams,
                                                                                            strict=True)]
    local = [local_ratio(f, seam) for f, pair in zip(features, seams, strict=True) for seam in pair]
    return {"edits": len(motions), "kept_frames_bit_exact": int(sum(exact)),
            "boundary_acc_over_inside_median": float(np.median(ratios)),
            "boundary_acc_over_inside_p90": float(np.percentile(ratios, 90)),
            "boundary_acc_over_rougher_side_median": float(np.median(local)),
            "boundary_acc_over_rougher_side_p90": float(np.percentile(local, 90)),
            "seconds_per_edit": round(seconds / len(motions), 2)}


def local_ratio(features: np.ndarray, seam: int) -> float:
    """A boundary's acceleration over the rougher of its two sides (median of frames 3..14 away): an edit
    joins kept and regenerated motion of different activity, so the global median is no fair reference."""
    acc = kinematics(features)[1]
    sides = [acc[max(seam - 14, 0):seam - 2], acc[seam + 2:seam + 14]]
    return float(acc[seam - SEAM_HALF:seam + SEAM_HALF].mean() / max(float(np.median(x)) for x in sides if len(x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--models", nargs="+", default=[str(default_model_dir("momask-small")),
                                                         str(default_model_dir("bamm-small"))])
    parser.add_argument("--timelines", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--edits", type=int, default=0, help="also edit this many real test motions")
    parser.add_argument("--skip-timelines", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    test = load_eval_set(args.data, read_ids_or_all(args.data, "test"), name="test")
    rng = np.random.default_rng(args.seed)
    pool = [item.captions[0] for item in test.items]
    captions = [[pool[j] for j in rng.choice(len(pool), len(DURATIONS), replace=False)]
                for _ in range(args.timelines)]
    space = load_eval_space("default")
    report: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                    f"{torch.get_num_threads()} threads", "timelines": args.timelines,
                    "durations_s": list(DURATIONS), "models": {}}
    for path in args.models:
        pipeline = MotionPipeline.from_pretrained(path)
        entry = {} if args.skip_timelines else {"speed": speed(pipeline, args.repeats),
                                                **quality(pipeline, space, captions, args.seed)}
        if args.edits:
            items = [item for item in test.items if 80 <= len(item.motion) <= 196][:args.edits]
            others = [pool[j] for j in rng.choice(len(pool), len(items))]
            entry["edit"] = edits(pipeline, [item.motion.astype(np.float32) for item in items], others, args.seed)
        report["models"][Path(path).name] = entry
        print(json.dumps(report["models"][Path(path).name], indent=2), flush=True)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
