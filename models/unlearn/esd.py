"""ESD (negative guidance) on the base transformer's outputs (unlearning-methods.md §3.2).

With a frozen copy theta_0, train theta so that, on a partially masked base-token sequence x_t,

    out_theta(x_t, c)  ->  out_0(x_t, a) - eta * (out_0(x_t, c) - out_0(x_t, a))

where c is an erase prompt and a the anchor (the unconditional branch, or a target prompt). `out` is the
logits (or the hidden state before the head) at the masked, non-pad positions (MoMask) or at every valid
position (BAMM, whose causal outputs predict each token from its prefix). x_t comes from theta's own
samples for the concept prompts (`x_source="generate"`, refreshed every `refresh_every` steps) or from the
dataset's forget motions (`"data"`), re-masked at a cosine-schedule ratio. Early stopping watches the
retain drift: the mean KL(out_0 || out_theta) on the retain prompts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.common.masks import lengths_to_mask
from models.common.sampling import cosine_schedule
from models.common.sampling_config import SamplingConfig
from models.data.concepts import Concept
from models.data.datasets import TextMotionDataset
from models.data.forget_retain import caption_lines, is_forget
from models.motion.normalize import Normalizer
from models.pipelines import make_generators
from models.unlearn.code_stats import encode_items
from models.unlearn.params import MethodParams, one_of, require
from models.unlearn.uce import PRESERVE_PROMPTS

Progress = Callable[[float, str], None]
SCOPES = ("cond_emb", "transformer", "full")


@dataclass
class ESDParams(MethodParams):
    """ESD settings: eta 1 as in the paper; scope cond_emb, lr 1e-5, 200 steps and retain early stopping
    as recommended (the paper's ESD collapses MoMask)."""

    method = "esd"
    scope: str = "cond_emb"  # cond_emb | transformer (ESD-u analogue) | full
    train_token_emb: bool = False  # with scope transformer / full
    eta: float = 1.0  # negative guidance
    lr: float = 1e-5
    steps: int = 200
    batch_size: int = 8
    space: str = "logits"  # logits | hidden
    x_source: str = "generate"  # generate (theta's own samples) | data (forget-set motions)
    prompts: list[str] | None = None  # erase prompts (None: the concept's keywords)
    target: str | None = None  # anchor prompt (None: unconditional)
    retain_prompts: list[str] | None = None  # None: the UCE preserve prompts
    timesteps: int = 10  # decoding steps of the generated samples
    min_tokens: int = 10
    max_tokens: int = 49
    pool_size: int = 32
    refresh_every: int = 50
    eval_every: int = 20
    max_retain_drift: float | None = 0.05  # stop (and keep the last good weights) above this KL
    seed: int = 0

    def validate(self) -> None:
        one_of("scope", self.scope, SCOPES)
        one_of("space", self.space, ("logits", "hidden"))
        one_of("x_source", self.x_source, ("generate", "data"))
        require(0.0 <= self.eta <= 100.0, f"eta must be in [0, 100], got {self.eta}")
        require(0.0 < self.lr <= 1.0, f"lr must be in (0, 1], got {self.lr}")
        require(1 <= self.steps <= 100_000, f"steps must be in 1..100000, got {self.steps}")
        require(1 <= self.batch_size <= 1024, f"batch_size must be in 1..1024, got {self.batch_size}")
        require(1 <= self.timesteps <= 100, f"timesteps must be in 1..100, got {self.timesteps}")
        require(
            1 <= self.min_tokens <= self.max_tokens <= 49,
            f"need 1 <= min_tokens <= max_tokens <= 49, got {self.min_tokens}, {self.max_tokens}",
        )
        require(1 <= self.pool_size <= 10_000, f"pool_size must be in 1..10000, got {self.pool_size}")
        require(self.refresh_every >= 1 and self.eval_every >= 1, "refresh_every and eval_every must be >= 1")
        if self.prompts is not None:
            require(bool(self.prompts), "prompts must list at least one prompt")
        if self.max_retain_drift is not None:
            require(self.max_retain_drift > 0, f"max_retain_drift must be > 0, got {self.max_retain_drift}")


def trainable_parameters(model: nn.Module, scope: str, train_token_emb: bool = False) -> list[nn.Parameter]:
    """Select and unfreeze the parameters of `scope`; everything else is frozen."""
    model.requires_grad_(False)
    if scope == "cond_emb":
        chosen = list(model.cond_emb.parameters())
    else:
        chosen = [
            p
            for name, p in model.named_parameters()
            if (scope == "full" or not name.startswith("cond_emb."))
            and (train_token_emb or not name.startswith("token_emb."))
        ]
    for p in chosen:
        p.requires_grad_(True)
    return chosen


@contextmanager
def _capture_hidden(model: nn.Module, store: list[torch.Tensor]):
    handle = model.output_process.register_forward_hook(lambda m, inputs, out: store.append(inputs[0]))
    try:
        yield
    finally:
        handle.remove()


def outputs(
    model: nn.Module,
    kind: str,
    ids: torch.Tensor,
    cond: torch.Tensor,
    pad: torch.Tensor,
    space: str,
    force_mask: bool = False,
) -> torch.Tensor:
    """Per-position outputs (B, L, C) of the base transformer for ids (B, L) (mask/pad ids already set)."""
    hidden: list[torch.Tensor] = []
    with _capture_hidden(model, hidden):
        if kind == "momask":
            logits = model.forward_logits(ids, cond, pad, force_mask=force_mask)
        else:
            logits = model.forward_logits(ids, cond, None, force_mask=force_mask)
    length = ids.shape[1]
    if space == "logits":
        return logits[:, :length]
    return hidden[-1].permute(1, 0, 2)[:, :length]


class TokenPool:
    """Base-token sequences x_0 (N, 49) with lengths (N,), re-masked into x_t batches."""

    def __init__(self, ids: torch.Tensor, lengths: torch.Tensor):
        require(len(ids) > 0, "the ESD token pool is empty")
        self.ids, self.lengths = ids, lengths

    def batch(
        self, model: nn.Module, kind: str, size: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (x_t (B, L), pad (B, L), loss positions (B, L))."""
        rows = torch.randint(len(self.ids), (size,), generator=gen)
        lens = self.lengths[rows]
        n = int(lens.max())
        ids = self.ids[rows, :n].clone()
        pad = ~lengths_to_mask(lens, n)
        if kind != "momask":  # BAMM: causal outputs over the whole valid sequence
            return torch.where(pad, model.pad_id, ids), pad, ~pad
        ratio = cosine_schedule(torch.rand(size, generator=gen))
        count = torch.round(ratio * lens).clamp(min=1)
        rank = torch.rand(size, n, generator=gen).masked_fill(pad, 2.0).argsort(dim=1).argsort(dim=1)
        masked = (rank < count.unsqueeze(1)) & ~pad
        x = torch.where(masked, model.mask_id, torch.where(pad, model.pad_id, ids))
        return x, pad, masked


@torch.no_grad()
def generated_pool(pipeline, prompts: list[str], params: ESDParams, gen: torch.Generator) -> TokenPool:
    """theta's own base-token samples for the concept prompts."""
    picks = torch.randint(len(prompts), (params.pool_size,), generator=gen).tolist()
    lens = torch.randint(params.min_tokens, params.max_tokens + 1, (params.pool_size,), generator=gen)
    cond = pipeline.encode_text([prompts[i] for i in picks])
    seeds = torch.randint(2**31, (params.pool_size,), generator=gen).tolist()
    knobs = SamplingConfig(timesteps=params.timesteps)
    ids, lens = pipeline.generate_tokens(cond, lens.to(pipeline.device), make_generators(seeds), knobs)
    base = torch.full((params.pool_size, 49), 0, dtype=torch.long)
    base[:, : ids.shape[1]] = ids[..., 0].clamp(min=0).cpu()
    return TokenPool(base, lens.cpu().long())


def data_pool(pipeline, concept: Concept, data_dir: Path) -> TokenPool:
    """Layer-0 tokens of the dataset's forget motions (whole clips, train split)."""
    normalizer = Normalizer(pipeline.mean.cpu().numpy(), pipeline.std.cpu().numpy())
    dataset = TextMotionDataset(data_dir, "train", normalizer)
    keep = [
        i
        for i, item in enumerate(dataset.items)
        if is_forget(caption_lines(data_dir, item.name.split("#")[0]), concept)
    ]
    require(bool(keep), f"no train motion of {data_dir} matches {concept.name!r}")
    dataset.items = [dataset.items[i] for i in keep]
    dataset.lengths = dataset.lengths[keep]
    codes = encode_items(dataset, pipeline.vq, pipeline.device)  # (N, W, Q)
    lens = (dataset.lengths // 4).clamp(max=49)
    ids = torch.zeros(len(keep), 49, dtype=torch.long)
    width = min(49, codes.shape[1])
    ids[:, :width] = codes[:, :width, 0].long().clamp(min=0)
    return TokenPool(ids, lens)


def apply_esd(
    pipeline,
    concept: Concept,
    params: ESDParams,
    data_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fine-tune the base transformer with negative guidance, in place -> the manifest result."""
    model, kind, dev = pipeline.base, pipeline.kind, pipeline.device
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    prompts = list(params.prompts) if params.prompts is not None else concept.erase_prompts()
    retain = list(params.retain_prompts) if params.retain_prompts is not None else list(PRESERVE_PROMPTS)
    gen = torch.Generator().manual_seed(params.seed)
    torch.manual_seed(params.seed)
    cond_all = pipeline.encode_text(prompts)
    anchor = pipeline.encode_text([params.target])[0] if params.target else None
    pool = (
        data_pool(pipeline, concept, data_dir)
        if params.x_source == "data"
        else generated_pool(pipeline, prompts, params, gen)
    )
    # A fixed retain probe: pool sequences paired with retain prompts.
    probe_gen = torch.Generator().manual_seed(params.seed + 1)
    probe_x, probe_pad, probe_pos = pool.batch(model, kind, max(len(retain), params.batch_size), probe_gen)
    probe_cond = pipeline.encode_text([retain[i % len(retain)] for i in range(len(probe_x))])
    probe_x, probe_pad, probe_pos = probe_x.to(dev), probe_pad.to(dev), probe_pos.to(dev)
    with torch.no_grad():
        probe_ref = F.log_softmax(outputs(frozen, kind, probe_x, probe_cond, probe_pad, "logits"), -1)

    def retain_drift() -> float:
        with torch.no_grad():
            cur = F.log_softmax(outputs(model, kind, probe_x, probe_cond, probe_pad, "logits"), -1)
            kl = (probe_ref.exp() * (probe_ref - cur)).sum(-1)
            return float(kl[probe_pos].mean())

    params_list = trainable_parameters(model, params.scope, params.train_token_emb)
    optimizer = torch.optim.Adam(params_list, lr=params.lr)
    model.eval()  # no dropout and no condition dropping: the conditional branch must stay conditional
    good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    stopped_at = None
    for step in range(params.steps):
        if params.x_source == "generate" and step and step % params.refresh_every == 0:
            pool = generated_pool(pipeline, prompts, params, gen)
        x, pad, pos = (t.to(dev) for t in pool.batch(model, kind, params.batch_size, gen))
        cond = cond_all[torch.randint(len(prompts), (params.batch_size,), generator=gen).to(dev)]
        with torch.no_grad():
            cond_out = outputs(frozen, kind, x, cond, pad, params.space)
            if anchor is None:
                base_out = outputs(frozen, kind, x, cond, pad, params.space, force_mask=True)
            else:
                base_out = outputs(frozen, kind, x, anchor.expand_as(cond), pad, params.space)
            target = base_out - params.eta * (cond_out - base_out)
        pred = outputs(model, kind, x, cond, pad, params.space)
        loss = F.mse_loss(pred[pos], target[pos])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss = loss.detach()
        if (step + 1) % params.eval_every == 0 or step + 1 == params.steps:
            drift = retain_drift()
            history.append({"step": step + 1, "loss": float(loss), "retain_kl": drift})
            if params.max_retain_drift is not None and drift > params.max_retain_drift:
                model.load_state_dict(good_state)
                stopped_at = step + 1
                break
            good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress((step + 1) / params.steps, f"ESD step {step + 1}/{params.steps}: loss {float(loss):.4g}")
    model.requires_grad_(False).eval()
    return {
        "prompts": prompts,
        "retain_prompts": retain,
        "history": history,
        "early_stopped_at": stopped_at,
        "trainable_parameters": sum(p.numel() for p in params_list),
        "final_retain_kl": retain_drift(),
    }
