"""MoMask base-layer masked transformer: iterative masked decoding of RVQ layer-0 tokens."""

from __future__ import annotations

import torch
from torch import nn

from models.common.heads import OutputProcess
from models.common.losses import ce_and_accuracy
from models.common.masks import check_token_lens, lengths_to_mask
from models.common.sampling import (
    Generators,
    categorical_sample,
    cfg_combine,
    cosine_schedule,
    gumbel_sample,
    lowest_k_mask,
    num_masked,
    top_k_filter,
    uniform,
)
from models.common.sampling_config import SamplingConfig
from models.common.transformer import CondTransformerBase, eval_mode, init_weights
from models.common.transformer_config import TransformerConfig

# Sampling defaults of the official generation script (momask-inference.md §6).
DEFAULT_SAMPLING = SamplingConfig(timesteps=18, cond_scale=4.0, temperature=1.0, topk_filter_thres=0.9, gsample=False)


class MaskTransformer(CondTransformerBase):
    """Vocabulary: codes 0..num_tokens-1, mask_id = num_tokens, pad_id = num_tokens + 1.

    Sequence (sequence-first): [cond_emb(text) ; PE(poseEmbedding(token_emb(ids)))], key-padding mask on
    pads; the head predicts the num_tokens real codes.
    """

    def __init__(self, cfg: TransformerConfig | None = None):
        cfg = cfg or TransformerConfig()
        super().__init__(cfg)
        self.num_tokens = cfg.num_tokens
        self.mask_id = cfg.num_tokens
        self.pad_id = cfg.num_tokens + 1
        self.output_process = OutputProcess(cfg.latent_dim, cfg.num_tokens)
        self.token_emb = nn.Embedding(cfg.num_tokens + 2, cfg.code_dim)
        self.apply(init_weights)
        self.add_code_suppression(cfg.num_tokens)

    # ------------------------------------------------------------------ forward
    def forward_logits(self, ids: torch.Tensor, cond: torch.Tensor, padding_mask: torch.Tensor,
                       force_mask: bool = False, generator: Generators = None) -> torch.Tensor:
        """ids (B, L) in [0, num_tokens + 1], cond (B, cond_dim), padding_mask (B, L) True at pads
        -> logits (B, L, num_tokens). In training mode the condition is dropped with cond_drop_prob."""
        c = self.cond_token(cond, force_mask, generator)                    # (1, B, latent)
        x = self.position_enc(self.input_process(self.token_emb(ids)))     # (L, B, latent)
        key_pad = torch.cat([padding_mask.new_zeros(ids.shape[0], 1), padding_mask], dim=1)
        h = self.encode(torch.cat([c, x], dim=0), key_pad)[1:]
        return self.output_process(h)

    def forward_with_cond_scale(self, ids: torch.Tensor, cond: torch.Tensor, padding_mask: torch.Tensor,
                                cond_scale: float = 3.0, force_mask: bool = False) -> torch.Tensor:
        """Classifier-free guidance l_u + s (l_c - l_u); s == 1 skips the unconditional pass, force_mask returns
        the unconditional logits only. -> (B, L, num_tokens).

        The official code runs two forward passes; here both run as one forward of the doubled batch
        (conditional rows first, zero-condition rows second: `cond_emb(0)` is the unconditional token, as in
        `force_mask`). The same logits up to float rounding, half the kernel launches and larger GEMMs. Meant
        for eval mode (in training mode the doubled rows would draw their own condition dropout).
        """
        if force_mask:
            return self.forward_logits(ids, cond, padding_mask, force_mask=True)
        if cond_scale == 1:
            return self.forward_logits(ids, cond, padding_mask)
        both = self.forward_logits(ids.repeat(2, 1), torch.cat([cond, torch.zeros_like(cond)]),
                                   padding_mask.repeat(2, 1))
        return cfg_combine(*both.chunk(2), cond_scale)

    # --------------------------------------------------------------- generation
    @eval_mode
    def generate(self, cond: torch.Tensor, token_lens: torch.Tensor, sampling: SamplingConfig | None = None,
                 force_mask: bool = False, generator: Generators = None) -> torch.Tensor:
        """Iterative masked decoding (momask-inference.md §3) -> ids (B, max(token_lens)), -1 at pads.

        sampling: timesteps, cond_scale, temperature, topk_filter_thres, gsample (unset: `DEFAULT_SAMPLING`).
        generator: one torch.Generator, or one per row (then a row's result does not depend on its
        batch neighbours); draws are made on the generator's device.
        """
        self.check_cond(cond)
        token_lens = check_token_lens(token_lens, cond.shape[0]).to(cond.device)
        pad = ~lengths_to_mask(token_lens, int(token_lens.max()))
        ids = torch.where(pad, self.pad_id, self.mask_id)
        return self._decode(ids, ~pad, pad, cond, _resolved(sampling), force_mask, generator)

    @eval_mode
    def edit(self, ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor,
             edit_mask: torch.Tensor | None = None, sampling: SamplingConfig | None = None,
             force_mask: bool = False, generator: Generators = None) -> torch.Tensor:
        """Temporal inpainting (momask-inference.md §7): regenerate the base tokens inside `edit_mask`.

        ids (B, L) source tokens; edit_mask (B, L) bool (True = regenerate); None = mask-free mode
        (a fixed 16 % of the valid tokens is re-masked each step). -> ids (B, L), -1 at pads.
        """
        self.check_ids_and_cond(ids, cond)
        token_lens = check_token_lens(token_lens, ids.shape[0], ids.shape[1]).to(ids.device)
        pad = ~lengths_to_mask(token_lens, ids.shape[1])
        sampling = _resolved(sampling)
        if edit_mask is None:
            ids = torch.where(pad, self.pad_id, ids)
            return self._decode(ids, ~pad, pad, cond, sampling, force_mask, generator, fixed_ratio=0.16)
        if edit_mask.shape != ids.shape or edit_mask.dtype != torch.bool:
            raise ValueError(f"edit_mask must be a bool tensor of shape {tuple(ids.shape)}")
        edit_mask = edit_mask & ~pad
        if not bool(edit_mask.any(dim=1).all()):
            raise ValueError("edit_mask selects no valid token position for at least one sample")
        ids = torch.where(edit_mask, self.mask_id, ids.clamp(0, self.pad_id))
        return self._decode(ids, edit_mask, pad, cond, sampling, force_mask, generator)

    def _decode(self, ids: torch.Tensor, edit_mask: torch.Tensor, pad: torch.Tensor, cond: torch.Tensor,
                sampling: SamplingConfig, force_mask: bool, generator: Generators,
                fixed_ratio: float | None = None) -> torch.Tensor:
        """Shared loop: each step re-masks the n_mask lowest-confidence positions of `edit_mask`.

        sampling: a resolved config (every knob set).
        """
        timesteps, cond_scale = int(sampling.timesteps), float(sampling.cond_scale)
        temperature, topk_filter_thres = float(sampling.temperature), float(sampling.topk_filter_thres)
        sample = gumbel_sample if bool(sampling.gsample) else categorical_sample
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        edit_len = edit_mask.sum(dim=-1)
        valid_len = (~pad).sum(dim=-1).tolist()  # random draws per row cover its valid prefix only
        scores = torch.where(edit_mask, 0.0, 1e5)
        for t in torch.linspace(0, 1, timesteps, device=ids.device):
            ratio = cosine_schedule(t) if fixed_ratio is None else fixed_ratio
            is_mask = lowest_k_mask(scores, num_masked(ratio, edit_len))
            ids = torch.where(is_mask, self.mask_id, ids)
            logits = self.suppress(self.forward_with_cond_scale(ids, cond, pad, cond_scale, force_mask), cond)
            pred = sample(top_k_filter(logits, topk_filter_thres), temperature, generator, valid_len)
            ids = torch.where(is_mask, pred, ids)
            # confidence of the sampled token under the un-filtered, un-tempered guided distribution
            scores = logits.softmax(dim=-1).gather(-1, pred.unsqueeze(-1)).squeeze(-1)
            scores = scores.masked_fill(~(is_mask if fixed_ratio is None else edit_mask), 1e5)
        return torch.where(pad, -1, ids)

    # ----------------------------------------------------------------- training
    def loss(self, ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor,
             generator: Generators = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked-token objective (momask-architecture.md §3.5): ids (B, L) base codes -> (CE loss, accuracy).

        Mask ratio cos(pi/2 u), u ~ U(0,1) per sample, count rounded on the padded length; of the masked
        positions 10 % get a random code, 88 % of the rest mask_id, the others stay unchanged.
        Dropout uses the global RNG; everything else is drawn from `generator`.
        """
        self.check_ids_and_cond(ids, cond)
        b, n = ids.shape
        dev = ids.device
        valid = lengths_to_mask(check_token_lens(token_lens, b, n).to(dev), n)
        ids = torch.where(valid, ids, self.pad_id)
        if bool(((ids < 0) | (ids >= self.num_tokens))[valid].any()):
            raise ValueError(f"ids at valid positions must lie in [0, {self.num_tokens - 1}]")

        counts = num_masked(cosine_schedule(uniform((b,), generator, dev)), torch.full((b,), n, device=dev))
        perm = uniform((b, n), generator, dev).argsort(dim=-1)  # a random permutation per row
        mask = (perm < counts.unsqueeze(-1)) & valid
        labels = torch.where(mask, ids, self.mask_id)

        rand_ids = (uniform((b, n), generator, dev) * self.num_tokens).long().clamp(max=self.num_tokens - 1)
        replace = mask & (uniform((b, n), generator, dev) < 0.1)
        x = torch.where(replace, rand_ids, ids)
        to_mask = mask & ~replace & (uniform((b, n), generator, dev) < 0.88)
        x = torch.where(to_mask, self.mask_id, x)

        logits = self.forward_logits(x, cond, ~valid, generator=generator)  # (B, L, K)
        return ce_and_accuracy(logits, labels, self.mask_id)



def _resolved(sampling: SamplingConfig | None) -> SamplingConfig:
    """`sampling`'s knobs where set, the official defaults elsewhere."""
    return (sampling or SamplingConfig()).over(DEFAULT_SAMPLING)
