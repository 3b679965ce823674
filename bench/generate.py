"""Generation speed of an official-size MoMask (random weights) on this machine.

    python bench/generate.py [--device cpu] [--repeats 3] [--batch 32] [--timesteps 10]

Measures seconds per motion at batch 1 and motions/s at batch 32 for 196-frame motions, with the official
architecture (RVQ-VAE 6x512 codes, 8-layer masked and residual transformers) and a CLIP-sized (512-d) text
feature. The CLIP text tower itself is timed separately with random weights of the ViT-B/32 text config.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from models.io.native import build_components
from models.pipelines import MotionPipeline


class FixedFeatureEncoder:
    """Random 512-d features (the bench times the motion model, not the text encoder)."""

    name, dim = "bench-random-512", 512

    def encode(self, texts: list[str]) -> torch.Tensor:
        generator = torch.Generator().manual_seed(len(texts))
        return torch.randn(len(texts), self.dim, generator=generator)

    def spec(self) -> dict:
        return {"type": "bench"}

    def to(self, device):  # noqa: ANN001
        return self


def official_pipeline(kind: str = "momask") -> MotionPipeline:
    torch.manual_seed(0)
    vq, base, residual, length_estimator = build_components({"kind": kind, "size": "official", "cond_dim": 512})
    dim = vq.cfg.dim_pose
    return MotionPipeline.for_kind(kind)(text_encoder=FixedFeatureEncoder(), vq=vq, base=base, residual=residual,
                          length_estimator=length_estimator, mean=np.zeros(dim, np.float32),
                          std=np.ones(dim, np.float32))


def time_generation(pipeline: MotionPipeline, batch: int, repeats: int, timesteps: int) -> float:
    """Median wall seconds of one generate() call on `batch` 196-frame prompts."""
    texts = [f"a person performs motion {i}" for i in range(batch)]
    pipeline.generate(texts[:1], lengths=[196], seed=0, timesteps=timesteps)  # warm-up
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        pipeline.generate(texts, lengths=[196] * batch, seed=r, timesteps=timesteps)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_clip_text_tower(batch: int, repeats: int) -> float:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    model = CLIPTextModelWithProjection(CLIPTextConfig(projection_dim=512)).eval()
    ids = torch.randint(0, 49408, (batch, 77))
    with torch.no_grad():
        model(input_ids=ids)
        start = time.perf_counter()
        for _ in range(repeats):
            model(input_ids=ids)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=10, help="10 = README eval setting, 18 = gen_t2m default")
    parser.add_argument("--kind", default="momask", choices=["momask", "bamm"])
    args = parser.parse_args()
    pipeline = official_pipeline(args.kind).to(args.device)
    single = time_generation(pipeline, 1, args.repeats, args.timesteps)
    batched = time_generation(pipeline, args.batch, args.repeats, args.timesteps)
    clip = time_clip_text_tower(1, args.repeats) if args.device == "cpu" else float("nan")
    result = {
        "kind": args.kind, "device": args.device, "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "timesteps": args.timesteps, "frames": 196,
        "seconds_per_motion_batch1": round(single, 3),
        f"motions_per_second_batch{args.batch}": round(args.batch / batched, 3),
        "batching_speedup": round((args.batch / batched) / (1 / single), 2),
        "clip_text_tower_seconds_batch1": round(clip, 4),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
