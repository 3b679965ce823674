"""Token-generation speed of this project against the official MoMask / BAMM code, side by side in one process.

    python bench/vs_official.py --official /tmp/official [--kind momask|bamm] [--batch 1 32] [--threads 1 2]
                                [--repeats 6] [--precision bf16] [--out bench/results/vs_official.jsonl]

`--official` is a checkout of EricGuo5513/momask-codes (`--kind momask`) or exitudio/BAMM (`--kind bamm`), both on
GitHub, in a temporary folder outside this repository; it is imported at bench time only (its `models`
package under its own copy of `sys.modules`), never by the project. It needs `einops` (pip install einops); the
`clip` package is stubbed (the bench feeds 512-d text features, CLIP is not timed).

Both sides are the official HumanML3D size (8 layers, latent 384, 6 heads, ff 1024, 6 RVQ layers of 512 codes),
hold the same random weights (ours built with seed 0, its state dict loaded into the official modules with
strict=True), and generate base + residual tokens for the same 512-d features at 196 frames (49 tokens), with the
official evaluation setting: MoMask 10 steps, CFG 4, residual CFG 5, top-k 0.9, categorical base sampling; BAMM
its two-pass sampler at the given length with CFG 4 (second pass 3) and residual CFG 5. Repeats are interleaved;
the load average is recorded before and after. The two sides draw different random numbers (official: global
RNG, ours: per-row generators), so their tokens are not compared (bench/ab.py and the tests check exactness).
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import SAMPLING, new_pipeline, token_generator  # noqa: E402
from sidebyside import Contender, emit, import_package_from, measure  # noqa: E402

from models.common.sampling_config import SamplingConfig  # noqa: E402


def official_modules(tree: Path, kind: str, ours) -> tuple[torch.nn.Module, torch.nn.Module]:  # noqa: ANN001
    """The official base and residual transformers of `tree`, with the weights of our pipeline `ours`."""
    sys.modules.setdefault("clip", types.ModuleType("clip"))  # only used to load CLIP, which the bench skips
    mods = import_package_from(tree, "models", ["models.mask_transformer.transformer"])
    module = mods["models.mask_transformer.transformer"]
    for cls in (module.MaskTransformer, module.ResidualTransformer):
        cls.load_and_freeze_clip = lambda self, version: None
    b, r = ours.base.cfg, ours.residual.cfg
    opt = types.SimpleNamespace(num_tokens=b.num_tokens, num_quantizers=r.num_quantizers, trans="official",
                                device=torch.device("cpu"))
    common = {"code_dim": b.code_dim, "cond_mode": "text", "latent_dim": b.latent_dim, "ff_size": b.ff_size,
              "num_layers": b.num_layers, "num_heads": b.num_heads, "clip_dim": b.cond_dim,
              "clip_version": "ViT-B/32", "opt": opt}
    base = module.MaskTransformer(dropout=b.dropout, cond_drop_prob=b.cond_drop_prob, **common)
    residual = module.ResidualTransformer(dropout=r.dropout, cond_drop_prob=r.cond_drop_prob,
                                          shared_codebook=False, share_weight=r.share_weight, **common)
    base.load_state_dict(ours.base.state_dict(), strict=True)
    residual.load_state_dict(ours.residual.state_dict(), strict=True)
    for model in (base, residual):
        model.encode_text = lambda features: features  # conds are text features already
    return base.eval(), residual.eval()


def official_generator(base: torch.nn.Module, residual: torch.nn.Module, kind: str, tokens: int) -> Contender:
    """The official generate calls of gen_t2m.py / the evaluation, on the same features as `token_generator`."""
    def run(batch: int) -> torch.Tensor:
        cond = torch.randn(batch, base.cond_emb.in_features, generator=torch.Generator().manual_seed(batch))
        lens = torch.full((batch,), tokens)
        torch.manual_seed(0)
        with torch.no_grad():
            if kind == "bamm":
                ids, lens = base.generate(cond, lens, timesteps=SAMPLING["timesteps"],
                                          cond_scale=SAMPLING["cond_scale"], is_predict_len=False)
                ids = torch.where(ids >= base.end_id, -1, ids)[:, :tokens]
            else:
                ids = base.generate(cond, lens, timesteps=SAMPLING["timesteps"], cond_scale=SAMPLING["cond_scale"],
                                    temperature=SAMPLING["temperature"],
                                    topk_filter_thres=SAMPLING["topk_filter_thres"], gsample=SAMPLING["gsample"])
            return residual.generate(ids, cond, lens, temperature=SAMPLING["temperature"],
                                     topk_filter_thres=SAMPLING["topk_filter_thres"],
                                     cond_scale=SAMPLING["res_cond_scale"])

    return run


def unpacked(run: Contender) -> Contender:
    """`run` with the oneDNN-packed linear layers switched off (the plain F.linear path, as before them)."""
    from models.common import packed_linear

    def plain(batch: int) -> torch.Tensor:
        packed_linear.ENABLED = False
        try:
            return run(batch)
        finally:
            packed_linear.ENABLED = packed_linear.packing_available()

    return plain


def flop_bound(run: Contender, ours, batch: int, tokens: int, threads: int) -> dict:  # noqa: ANN001
    """The FLOP bound of one call: its matrix FLOPs (torch's flop counter, plain path) over the best GEMM rate at
    the encoder layer's shapes for this call's rows (the packed linear, `threads` threads, best of 5)."""
    from torch.utils.flop_counter import FlopCounterMode

    from models.common import packed_linear

    with FlopCounterMode(display=False) as counter:
        unpacked(run)(batch)
    flops = counter.get_total_flops()
    cfg = ours.base.cfg
    rows = 2 * batch * (tokens + 1)  # guidance doubles the batch; + the condition token
    shapes = [(cfg.latent_dim, 3 * cfg.latent_dim), (cfg.latent_dim, cfg.latent_dim),
              (cfg.latent_dim, cfg.ff_size), (cfg.ff_size, cfg.latent_dim)]
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    layers = [(torch.randn(rows, k, generator=generator), torch.randn(n, k, generator=generator) * 0.05,
               torch.zeros(n)) for k, n in shapes]
    best = float("inf")
    with torch.no_grad():
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(20):
                for x, w, b in layers:
                    packed_linear.linear(x, w, b)
            best = min(best, (time.perf_counter() - start) / 20)
    rate = sum(2 * rows * k * n for k, n in shapes) / best
    return {"gflop_per_call": round(flops / 1e9, 2), "gemm_gflops_per_s": round(rate / 1e9, 1),
            "flop_bound_s": round(flops / rate, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of the official repository")
    parser.add_argument("--kind", default="momask", choices=["momask", "bamm"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--frames", type=int, default=196)
    parser.add_argument("--precision", nargs="*", default=[], help="also time ours at these precisions")
    parser.add_argument("--unpacked", action="store_true",
                        help="also time ours without the oneDNN-packed linear layers (ours_unpacked)")
    parser.add_argument("--flop-bound", action="store_true", help="record the FLOP bound of each batch size")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    ours = new_pipeline("official", args.kind)
    tokens = args.frames // 4
    base, residual = official_modules(args.official.resolve(), args.kind, ours)
    sampling = SamplingConfig(**SAMPLING)
    contenders = {"official": official_generator(base, residual, args.kind, tokens),
                  "ours": token_generator(ours.base, ours.residual, sampling, tokens)}
    if args.unpacked:
        contenders["ours_unpacked"] = unpacked(contenders["ours"])
    for precision in args.precision:
        contenders[f"ours_{precision}"] = token_generator(ours.base, ours.residual, sampling, tokens, precision)
    for threads in args.threads:
        for batch in args.batch:
            record = measure(contenders, batch, threads, args.repeats, reference="official", compare=False)
            if args.flop_bound:
                bound = flop_bound(contenders["ours"], ours, batch, tokens, threads)
                bound["ours_over_bound"] = round(record["median_s"]["ours"] / bound["flop_bound_s"], 2)
                record["flop_bound"] = bound
            emit({"bench": "vs_official", "kind": args.kind, "frames": args.frames,
                  "official": str(args.official), **record}, args.out)


if __name__ == "__main__":
    main()
