"""Token-generation speed of this checkout against another revision of it, side by side in one process.

    python bench/ab.py --old 337575e [--kind momask|bamm] [--model official|weights/momask-small]
                       [--batch 1 32] [--threads 1 2] [--repeats 6] [--out bench/results/ab.jsonl]

The old revision's `models` package is extracted with `git archive` into a temporary folder and imported under
its own copy of `sys.modules`, so both versions live in this process. The old models get the new models' state
dict; both run base + residual token generation (what the sampling loops do; text encoding and VQ decoding are
the same code in both) on the same text features, lengths (196 frames unless --frames) and per-row seeds, with the
official sampling setting (10 steps, CFG 4, residual CFG 5, top-k 0.9, categorical base sampling).
`--precision` runs the new models under a lower-precision setting (`HMU_PRECISION` values).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sidebyside import Contender, agreement, emit, import_package_from, measure  # noqa: E402

from models.common.sampling_config import SamplingConfig  # noqa: E402
from models.pipelines import MotionPipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLING = {"timesteps": 10, "cond_scale": 4.0, "res_cond_scale": 5.0, "temperature": 1.0,
            "topk_filter_thres": 0.9, "gsample": False}


def old_tree(rev: str) -> Path:
    dest = Path(tempfile.mkdtemp(prefix=f"hmu-{rev}-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "models"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def new_pipeline(model: str, kind: str) -> MotionPipeline:
    if model == "official":
        from generate import official_pipeline  # bench/generate.py: official sizes, random weights

        return official_pipeline(kind)
    return MotionPipeline.from_pretrained(model)


def old_modules(pipeline: MotionPipeline, modules: dict[str, ModuleType]) -> tuple[torch.nn.Module, ...]:
    """The old revision's base and residual transformers holding the pipeline's weights."""
    config = modules["models.common.transformer_config"].TransformerConfig
    base_class = getattr(modules["models.bamm"] if pipeline.kind == "bamm" else modules["models.momask"],
                         type(pipeline.base).__name__)
    base = base_class(config.from_dict(pipeline.base.cfg.to_dict())).eval()
    residual = modules["models.momask"].ResidualTransformer(config.from_dict(pipeline.residual.cfg.to_dict()))
    base.load_state_dict(pipeline.base.state_dict())
    residual.load_state_dict(pipeline.residual.state_dict())
    return base, residual.eval()


def token_generator(base: torch.nn.Module, residual: torch.nn.Module, sampling, tokens: int,  # noqa: ANN001
                    precision: str = "fp32") -> Contender:
    """A contender: base + residual tokens of `batch` rows of `tokens` tokens, per-row seeds 0.., fixed features,
    at `precision` (models.common.precision: int8 runs quantised copies, bf16 under autocast)."""
    from models.common.precision import autocast, inference_modules

    base, residual = inference_modules(precision, (base, residual))

    def run(batch: int) -> torch.Tensor:
        cond = torch.randn(batch, base.cond_emb.in_features, generator=torch.Generator().manual_seed(batch))
        lens = torch.full((batch,), tokens)
        gens = [torch.Generator().manual_seed(i) for i in range(batch)]
        with torch.no_grad(), autocast(precision):
            out = base.generate(cond, lens, sampling, generator=gens)
            ids, lens = out if isinstance(out, tuple) else (out, lens)
            return residual.generate(ids, cond, lens, sampling, generator=gens)

    return run


def argmax_agreement(pipeline: MotionPipeline, precision: str, batch: int = 8, tokens: int = 49) -> dict:
    """Share of positions whose guided-logit argmax at `precision` equals fp32's, on the same inputs: the base
    model on half-masked random tokens (CFG 4), the residual model for each layer on random histories (CFG 5).
    Sampled tokens diverge after the first different draw; this isolates what the precision changes."""
    from models.common.precision import autocast, inference_modules

    g = torch.Generator().manual_seed(0)
    base, residual = pipeline.base, pipeline.residual
    low_base, low_res = inference_modules(precision, (base, residual))
    cond = torch.randn(batch, base.cond_emb.in_features, generator=g)
    pad = torch.zeros(batch, tokens, dtype=torch.bool)
    ids = torch.randint(0, base.num_tokens, (batch, tokens), generator=g)
    ids = torch.where(torch.rand(batch, tokens, generator=g) < 0.5, getattr(base, "mask_id", 0), ids)
    history = torch.randn(batch, tokens, residual.cfg.code_dim, generator=g) * 0.3
    out = {}
    with torch.no_grad():
        if pipeline.kind == "momask":
            exact = base.forward_with_cond_scale(ids, cond, pad, 4.0).argmax(-1)
            with autocast(precision):
                out["base"] = agreement(exact, low_base.forward_with_cond_scale(ids, cond, pad, 4.0).argmax(-1))
        for q in range(1, residual.num_quantizers):
            exact = residual.forward_with_cond_scale(history, q, cond, pad, 5.0).argmax(-1)
            with autocast(precision):
                low = low_res.forward_with_cond_scale(history, q, cond, pad, 5.0).argmax(-1)
            out[f"residual_q{q}"] = agreement(exact, low)
    return {k: round(v, 4) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git revision to compare against")
    parser.add_argument("--kind", default="momask", choices=["momask", "bamm"])
    parser.add_argument("--model", default="official", help="'official' (random weights) or a model folder")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--frames", type=int, default=196)
    parser.add_argument("--precision", nargs="*", default=[], help="also time the new models at these precisions")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    pipeline = new_pipeline(args.model, args.kind)
    modules = import_package_from(old_tree(args.old), "models", ["models.momask", "models.bamm",
                                  "models.common.sampling_config", "models.common.transformer_config"])
    old_base, old_res = old_modules(pipeline, modules)
    old_sampling = modules["models.common.sampling_config"].SamplingConfig(**SAMPLING)
    tokens = args.frames // 4
    contenders = {"old": token_generator(old_base, old_res, old_sampling, tokens),
                  "new": token_generator(pipeline.base, pipeline.residual, SamplingConfig(**SAMPLING), tokens)}
    for precision in args.precision:
        contenders[precision] = token_generator(pipeline.base, pipeline.residual, SamplingConfig(**SAMPLING), tokens,
                                                precision)
    for precision in args.precision:
        emit({"bench": "ab-argmax-agreement", "kind": args.kind, "model": args.model, "precision": precision,
              "agreement_with_fp32": argmax_agreement(pipeline, precision)}, args.out)
    for threads in args.threads:
        for batch in args.batch:
            record = measure(contenders, batch, threads, args.repeats, reference="old")
            emit({"bench": "ab", "old": args.old, "kind": args.kind, "model": args.model, "frames": args.frames,
                  **record}, args.out)


if __name__ == "__main__":
    main()
