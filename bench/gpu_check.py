"""GPU check of the shipped models: CUDA generation against CPU generation in the same process.

Sampling draws from per-row CPU generators on every device, so with the same seeds a CUDA run should pick the
same tokens as the CPU run except where float rounding flips a draw. The check reports token agreement, joint
differences, BAMM's cached causal pass against the full causal forward on the GPU, and the speed ratio.

On a machine without the MiniLM package, export the prompt features first (here) and carry the file:

    python bench/gpu_check.py --export-features .gpu/prompt_features.safetensors
    HMU_TEXT_FEATURES=.gpu/prompt_features.safetensors python bench/gpu_check.py --out gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.common.kv_cache import CachedCausalEncoder  # noqa: E402
from models.pipelines import MotionPipeline, make_generators  # noqa: E402

PROMPTS = [
    "a person kicks forward with the right leg", "a person punches twice with the left fist",
    "a person slashes with a sword", "a person stabs forward with a knife",
    "a person walks forward slowly", "a person runs in a circle", "a person jumps in place",
    "a person waves with the right hand", "a person sits down on a chair", "a person dances happily",
    "a person walks backwards", "a person turns around and walks away",
    "a person kicks to the side angrily", "a person throws a punch and steps back",
    "a person bows politely", "a person picks something up from the ground",
]
LENGTHS = [48 + 8 * (i % 19) for i in range(len(PROMPTS))]  # 48..192 frames
SEED = 1234


def timed(device: torch.device, fn):
    """Run fn once and return (result, seconds), synchronising CUDA around it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def token_ids(pipe: MotionPipeline) -> torch.Tensor:
    """Base-layer and residual ids (B, L, Q) for PROMPTS with the fixed seeds (-1 at pads), on CPU."""
    gens = make_generators([SEED + i for i in range(len(PROMPTS))])
    cond = pipe.encode_text(PROMPTS)
    lens = pipe.token_lengths(LENGTHS, cond, gens)
    ids, _ = pipe.generate_tokens(cond, lens, gens)
    return ids.cpu()


def kv_cache_error(pipe: MotionPipeline) -> float | None:
    """Largest |cached step - full causal forward| of BAMM's causal encoder on random inputs."""
    if pipe.kind != "bamm":
        return None
    encoder = pipe.base.seqTransEncoder
    latent = pipe.base.cfg.latent_dim
    length, batch = 50, 8
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(length, batch, latent, generator=gen).to(pipe.device)
    causal = torch.ones(length, length, dtype=torch.bool, device=pipe.device).triu(1)
    with torch.no_grad():
        full = encoder(x, mask=causal)
        cache = CachedCausalEncoder(encoder, batch_size=batch, max_len=length)
        steps = torch.stack([cache.step(x[t]) for t in range(length)])
    return float((steps - full).abs().max())


def check_model(path: str, device: torch.device) -> dict:
    cpu = MotionPipeline.from_pretrained(path, device="cpu")
    gpu = MotionPipeline.from_pretrained(path, device=device)
    for pipe in (cpu, gpu):
        for module in pipe.modules().values():
            module.float().eval()
    timed(device, lambda: gpu.generate(PROMPTS[:2], LENGTHS[:2], seed=0))  # warm-up (kernels, allocator)
    ids_cpu, cpu_s = timed(torch.device("cpu"), lambda: token_ids(cpu))
    ids_gpu, gpu_s = timed(device, lambda: token_ids(gpu))
    valid = ids_cpu >= 0
    same_pads = bool(torch.equal(valid, ids_gpu >= 0))
    agree_base = float((ids_cpu[..., 0] == ids_gpu[..., 0])[valid[..., 0]].float().mean())
    agree_all = float((ids_cpu == ids_gpu)[valid].float().mean())
    motions_cpu = cpu.generate(PROMPTS, LENGTHS, seed=SEED)
    motions_gpu, full_gpu_s = timed(device, lambda: gpu.generate(PROMPTS, LENGTHS, seed=SEED))
    finite = all(np.isfinite(m.joints).all() for m in motions_gpu)
    same_tokens_rows = [i for i in range(len(PROMPTS)) if torch.equal(ids_cpu[i], ids_gpu[i])]
    diffs = [float(np.linalg.norm(motions_cpu[i].joints - motions_gpu[i].joints, axis=-1).mean())
             for i in same_tokens_rows]
    return {
        "model": path, "kind": gpu.kind, "prompts": len(PROMPTS),
        "same_lengths_and_pads": same_pads,
        "base_token_agreement": round(agree_base, 4), "all_layer_token_agreement": round(agree_all, 4),
        "rows_with_identical_tokens": len(same_tokens_rows),
        "joint_diff_cm_rows_with_identical_tokens":
            round(100 * max(diffs, default=0.0), 4),
        "gpu_joints_finite": bool(finite),
        "kv_cache_max_abs_error": kv_cache_error(gpu),
        "tokens_cpu_s": round(cpu_s, 3), "tokens_gpu_s": round(gpu_s, 3),
        "cpu_over_gpu": round(cpu_s / gpu_s, 2), "generate_gpu_s (decode + joints incl.)": round(full_gpu_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["weights/momask-small", "weights/bamm-small"])
    parser.add_argument("--out", default=None, help="JSON report")
    parser.add_argument("--export-features", default=None, help="write the prompts' MiniLM features and stop")
    args = parser.parse_args()
    if args.export_features:
        from models.text.base import load_text_encoder
        from models.text.precomputed import export_text_features

        print(export_text_features(PROMPTS, load_text_encoder({"type": "minilm"}), args.export_features))
        return
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check compares CUDA with CPU generation")
    device = torch.device("cuda")
    torch.set_num_threads(min(8, torch.get_num_threads()))
    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
              "cpu_threads": torch.get_num_threads(), "models": [check_model(p, device) for p in args.models]}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
