"""The training objective of our evaluator: contrastive text/motion loss, step and validation.

`models.train` runs it (`hmu train evaluator`, `hmu train default`) with its generic loop (`engine.fit`);
what is trained and how it is scored lives here, beside the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from models.data.datasets import EpochSampler, TextMotionDataset, generator_for, index_batches
from models.evaluator.our_evaluator import OurEvaluator, OurEvaluatorConfig, contrastive_loss

StepFn = Callable[[int, torch.Generator], tuple[torch.Tensor, dict[str, float]]]
ValFn = Callable[[], dict[str, float]]


def build_evaluator(dim_pose: int, text_dim: int, overrides: dict[str, Any]) -> OurEvaluator:
    """OurEvaluator for motions of `dim_pose` features and text features of `text_dim` (+ config overrides)."""
    return OurEvaluator(OurEvaluatorConfig(**{"dim_pose": dim_pose, "text_dim": text_dim, **overrides}))


def evaluator_objective(model: OurEvaluator, train: TextMotionDataset, val: TextMotionDataset, *, batch_size: int,
                        val_items: int, seed: int, device: torch.device) -> tuple[StepFn, ValFn]:
    """(step, validate) of the contrastive training: the step's logs carry the in-batch top-1 retrieval; the
    validation reports val_loss and val_top1 over the first `val_items` validation items."""
    sampler = EpochSampler(len(train), batch_size, seed)

    def loss_logs(batch, gen):
        cond = batch["cond"].to(device)
        t_emb = model.embed_text(cond)
        m_emb = model.embed_motion(batch["motion"].to(device), batch["m_lens"].to(device))
        loss, logs = contrastive_loss(t_emb, m_emb, model.cfg, text_features=cond, generator=gen)
        sim = t_emb @ m_emb.T
        logs["top1"] = float((sim.argmax(-1) == torch.arange(len(sim), device=device)).float().mean())
        return loss, logs

    def step(it: int, gen: torch.Generator):
        loss, logs = loss_logs(train.batch(sampler.indices(it), generator_for(seed, it, 3)), gen)
        return loss, {"top1": logs["top1"]}

    @torch.no_grad()
    def validate() -> dict[str, float]:
        n = min(len(val), val_items)
        data_gen, gen = generator_for(seed, 0, 5), generator_for(seed, 0, 6, device=device)
        sums, count = np.zeros(2), 0
        for idx in index_batches(n, batch_size):
            if len(idx) < 2:
                continue
            loss, logs = loss_logs(val.batch(idx, data_gen), gen)
            sums += np.array([float(loss), logs["top1"]]) * len(idx)
            count += len(idx)
        if count == 0:
            raise ValueError("the evaluator needs at least 2 validation items")
        return {"val_loss": sums[0] / count, "val_top1": sums[1] / count}

    return step, validate
