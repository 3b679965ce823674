"""Quality of the shipped default models on the test split of the default dataset (issue #3 acceptance).

    python bench/default_models.py --data data/default [--models weights/momask-small weights/bamm-small]
                                   [--evaluator default] [--seed 1] [--out runs/default_models.json]

Reports, on the test split:
* VQ reconstruction MPJPE (cm): encode -> decode every test motion, joints recovered from the features;
  "global" compares world positions, "local" after aligning the root of every frame.
* R-precision@1/2/3 and FID of generated motions (one per test item, ground-truth length, fixed seeds)
  against the real test motions, with our evaluator (batches of 32, as the official protocol); the
  ratio R@3(generated) / R@3(real) is the acceptance figure (>= 0.8).
* Violent retrieval: for every violent test caption, the share of generated motions for which the
  evaluator ranks a violent caption among its top 3 over all unique test captions (>= 70 %).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from models.data.concepts import get_concept
from models.eval.metrics import euclidean_distance_matrix, fid, iter_batches, top_k_hits
from models.eval.sets import load_eval_set, read_ids_or_all
from models.eval.space import load_eval_space
from models.motion.features import features_to_joints
from models.pipelines import MotionPipeline, default_model_dir


def vq_mpjpe(pipeline: MotionPipeline, motions: list[np.ndarray]) -> dict[str, float]:
    """Mean per-joint position error (cm) of VQ reconstruction over motions (lengths floored to x4)."""
    errors_global, errors_local = [], []
    for motion in motions:
        frames = len(motion) // 4 * 4
        x = torch.from_numpy(motion[:frames]).float()[None]
        ids = pipeline.encode_motion(x)
        recon = pipeline.decode_tokens(ids)[0]
        real_j, recon_j = features_to_joints(x[0]), features_to_joints(recon)
        errors_global.append((real_j - recon_j).norm(dim=-1).mean().item())
        local = (real_j - real_j[:, :1]) - (recon_j - recon_j[:, :1])
        errors_local.append(local.norm(dim=-1).mean().item())
    return {"mpjpe_cm_global": 100 * float(np.mean(errors_global)),
            "mpjpe_cm_root_aligned": 100 * float(np.mean(errors_local))}


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, seed: int) -> list[float]:
    """R@1..3 over shuffled batches of 32 (drop_last), as the official evaluation."""
    hits, count = np.zeros(3), 0
    for batch in iter_batches(len(text_emb), 32, drop_last=True, shuffle=True, rng=np.random.default_rng(seed)):
        dist = euclidean_distance_matrix(text_emb[batch], motion_emb[batch])
        hits += top_k_hits(dist, 3).sum(axis=0)
        count += len(batch)
    return list(hits / max(count, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--models", nargs="+", default=[str(default_model_dir("momask-small")),
                                                         str(default_model_dir("bamm-small"))])
    parser.add_argument("--evaluator", default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    test = load_eval_set(args.data, read_ids_or_all(args.data, "test"), name="test")
    space = load_eval_space(args.evaluator)
    rng = np.random.default_rng(args.seed)
    captions = [item.captions[rng.integers(len(item.captions))] for item in test.items]
    lengths = [len(item.motion) // 4 * 4 for item in test.items]
    real = [item.motion[:n] for item, n in zip(test.items, lengths, strict=True)]
    text_emb = space.text_embeddings(captions, [[] for _ in captions])
    real_emb = space.motion_embeddings(real)
    concept = get_concept("violence")
    violent_rows = [i for i, c in enumerate(captions) if concept.matches(c)]
    pool = sorted({c for item in test.items for c in item.captions})
    pool_emb = space.text_embeddings(pool, [[] for _ in pool])
    pool_violent = np.array([concept.matches(c) for c in pool])

    def violent_top3(motion_emb: np.ndarray) -> float:
        dist = euclidean_distance_matrix(motion_emb[violent_rows], pool_emb)
        top3 = np.argsort(dist, axis=1)[:, :3]
        return float(pool_violent[top3].any(axis=1).mean())

    real_r = r_precision(text_emb, real_emb, args.seed)
    report: dict = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "data": args.data, "evaluator": space.name, "test_items": len(test.items),
        "violent_test_items": len(violent_rows), "caption_pool": len(pool),
        "chance_violent_top3": float(1 - np.prod([(1 - pool_violent.mean())] * 3)),
        "real": {"r_precision": real_r, "violent_top3": violent_top3(real_emb)}, "models": {},
    }
    for path in args.models:
        pipeline = MotionPipeline.from_pretrained(path)
        t0 = time.perf_counter()
        generated: list[np.ndarray] = [np.empty(0)] * len(captions)
        order = sorted(range(len(captions)), key=lambda i: (lengths[i], i))  # row i keeps seed base + i
        for s in range(0, len(order), 32):
            rows = order[s:s + 32]
            motions = pipeline.generate([captions[i] for i in rows], lengths=[lengths[i] for i in rows],
                                        seeds=[args.seed * 100000 + i for i in rows])
            for i, m in zip(rows, motions, strict=True):
                generated[i] = m.features
        gen_emb = space.motion_embeddings(generated)
        gen_r = r_precision(text_emb, gen_emb, args.seed)
        report["models"][Path(path).name] = {
            "vq": vq_mpjpe(pipeline, real),
            "r_precision": gen_r, "r3_ratio_vs_real": gen_r[2] / real_r[2],
            "fid": float(fid(real_emb, gen_emb)), "violent_top3": violent_top3(gen_emb),
            "generation_seconds": round(time.perf_counter() - t0, 1),
        }
    report["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
