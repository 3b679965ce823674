"""MoMask residual transformer: predicts RVQ layers 1..Q-1 from the summed embeddings of lower layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.heads import OutputProcess
from models.common.losses import ce_and_accuracy
from models.common.masks import check_token_lens, lengths_to_mask
from models.common.sampling import Generators, cfg_combine, cosine_schedule, gumbel_sample, top_k_filter, uniform
from models.common.sampling_config import SamplingConfig
from models.common.transformer import CondTransformerBase, eval_mode, init_weights
from models.common.transformer_config import TransformerConfig

# Residual sampling of the official generation script: Gumbel, temperature 1, guidance 5, fixed top-k 0.9.
DEFAULT_SAMPLING = SamplingConfig(temperature=1.0, res_cond_scale=5.0)
TOPK_FILTER_THRES = 0.9


def _normal(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class ResidualTransformer(CondTransformerBase):
    """Vocabulary per layer: codes 0..num_tokens-1 and pad_id = num_tokens (K = num_tokens + 1 classes).

    Sequence: [cond_emb(text) ; quant_emb(one_hot(q)) ; PE(poseEmbedding(sum_{j<q} E_j[ids_j]))].
    Head: OutputProcess to code_dim, then logits = W[q-1] h (share_weight) or 2 W[q-1] h + b[q-1]
    (non-shared; the official `out += out + bias` quirk, kept for checkpoint fidelity).
    """

    def __init__(self, cfg: TransformerConfig | None = None):
        cfg = cfg or TransformerConfig(cond_drop_prob=0.2)
        if cfg.shared_codebook:
            raise ValueError("ResidualTransformer with shared_codebook=True is not supported "
                             "(the official variant does not store its tables in the state_dict)")
        super().__init__(cfg)
        q, k, d = cfg.num_quantizers, cfg.num_tokens + 1, cfg.code_dim
        self.num_tokens, self.num_quantizers = cfg.num_tokens, q
        self.pad_id = cfg.num_tokens
        if cfg.share_weight:
            self.embed_proj_shared_weight = _normal(q - 2, k, d)
            self.token_embed_weight_ = _normal(1, k, d)
            self.output_proj_weight_ = _normal(1, k, d)
            self.register_parameter("output_proj_bias", None)
        else:
            self.output_proj_weight = _normal(q - 1, k, d)
            self.output_proj_bias = nn.Parameter(torch.zeros(q, k))  # (Q, K): sized Q, rows 0..Q-2 used
            self.token_embed_weight = _normal(q - 1, k, d)
        self.quant_emb = nn.Linear(q, cfg.latent_dim)
        self.output_process = OutputProcess(cfg.latent_dim, d)
        self.apply(init_weights)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(token_embed (Q-1, K, code_dim), output_proj (Q-1, K, code_dim)); index j embeds layer j,
        index q-1 predicts layer q. With share_weight, layer j in 1..Q-2 uses one matrix for both."""
        if self.cfg.share_weight:
            shared = self.embed_proj_shared_weight
            return (torch.cat([self.token_embed_weight_, shared], dim=0),
                    torch.cat([shared, self.output_proj_weight_], dim=0))
        return self.token_embed_weight, self.output_proj_weight

    def embed_history(self, ids: torch.Tensor, upto: torch.Tensor) -> torch.Tensor:
        """Sum of embeddings of layers j < upto[b]: ids (B, L, Q'), upto (B,) -> (B, L, code_dim)."""
        embed, _ = self.tables()
        h = torch.zeros(*ids.shape[:2], self.cfg.code_dim, device=ids.device, dtype=embed.dtype)
        for j in range(min(ids.shape[-1], self.num_quantizers - 1)):
            use = (upto > j).to(embed.dtype).view(-1, 1, 1)
            h = h + F.embedding(ids[..., j], embed[j]) * use
        return h

    # ------------------------------------------------------------------ forward
    def forward_logits(self, history: torch.Tensor, qids: torch.Tensor | int, cond: torch.Tensor,
                       padding_mask: torch.Tensor, force_mask: bool = False,
                       generator: Generators = None, proj: torch.Tensor | None = None) -> torch.Tensor:
        """history (B, L, code_dim), qids (B,) target layers in 1..Q-1 (or one int for every row), cond
        (B, cond_dim), padding_mask (B, L) True at pads -> logits (B, L, num_tokens + 1).

        proj: the output tables (`tables()[1]`) when the caller already has them (generation assembles them
        once per call, not once per forward)."""
        b = history.shape[0]
        c = self.cond_token(cond, force_mask, generator)                               # (1, B, latent)
        if isinstance(qids, int):  # one target layer: one quant_emb row for the whole batch (the same values)
            one_hot = F.one_hot(torch.tensor([qids], device=history.device), self.num_quantizers)
            q = self.quant_emb(one_hot.to(history.dtype)).expand(b, -1).unsqueeze(0)
        else:
            q = self.quant_emb(F.one_hot(qids, self.num_quantizers).to(history.dtype)).unsqueeze(0)
        x = self.position_enc(self.input_process(history))                            # (L, B, latent)
        key_pad = torch.cat([padding_mask.new_zeros(b, 2), padding_mask], dim=1)
        h = self.encode(torch.cat([c, q, x], dim=0), key_pad)[2:]
        return self.output_project(self.output_process(h), qids, proj)

    def output_project(self, h: torch.Tensor, qids: torch.Tensor | int,
                       proj: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, L, code_dim) -> logits (B, L, K) with the projection of target layer qids (B,), or of one
        target layer `qids` (an int) for every row (one GEMM, no per-row copy of the table); proj: the output
        tables if already assembled (else `tables()` is called)."""
        proj = self.tables()[1] if proj is None else proj
        if isinstance(qids, int):
            logits = F.linear(h, proj[qids - 1])
            bias = None if self.output_proj_bias is None else self.output_proj_bias[qids - 1]
        else:
            logits = torch.einsum("bld,bkd->blk", h, proj[qids - 1])
            bias = None if self.output_proj_bias is None else self.output_proj_bias[qids - 1].unsqueeze(1)
        logits = logits.float()  # float32 logits also under bf16 autocast
        if bias is not None:
            logits = logits + (logits + bias)  # official 2x quirk
        return logits

    def forward_with_cond_scale(  # reason: the official arguments plus the pre-assembled output tables
            self, history: torch.Tensor, q: int, cond: torch.Tensor, padding_mask: torch.Tensor,
            cond_scale: float = 3.0, force_mask: bool = False, proj: torch.Tensor | None = None) -> torch.Tensor:
        """Classifier-free guidance for target layer q (same rules as MaskTransformer, one forward of the doubled
        batch); proj: `tables()[1]` if already assembled."""
        if force_mask or cond_scale == 1:
            return self.forward_logits(history, int(q), cond, padding_mask, force_mask=force_mask, proj=proj)
        both = self.forward_logits(history.repeat(2, 1, 1), int(q), torch.cat([cond, torch.zeros_like(cond)]),
                                   padding_mask.repeat(2, 1), proj=proj)
        return cfg_combine(*both.chunk(2), cond_scale)

    # --------------------------------------------------------------- generation
    @eval_mode
    def generate(self, base_ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor,
                 sampling: SamplingConfig | None = None, num_res_layers: int = -1, force_mask: bool = False,
                 generator: Generators = None) -> torch.Tensor:
        """Layer-by-layer Gumbel sampling (momask-inference.md §4): base_ids (B, L) (-1 allowed at pads)
        -> ids (B, L, 1 + num_res_layers) (all Q layers when -1), -1 at pads and where pad was sampled.

        In-filling: base_ids may be (B, L, Q') with known residual ids in layers 1..Q'-1 (-1 = sample it);
        a known id is kept (and seen by the higher layers) instead of the sampled one.
        sampling: temperature and res_cond_scale (unset: `DEFAULT_SAMPLING`); the top-k filter is fixed at 0.9.
        """
        known = None
        if base_ids.dim() == 3:
            base_ids, known = base_ids[..., 0], base_ids[..., 1:]
            if known.numel() and int(known.max()) >= self.num_tokens:
                raise ValueError(f"known residual ids must lie in [-1, {self.num_tokens - 1}]")
        sampling = (sampling or SamplingConfig()).over(DEFAULT_SAMPLING)
        temperature, cond_scale = float(sampling.temperature), float(sampling.res_cond_scale)
        self.check_ids_and_cond(base_ids, cond, "base_ids")
        if num_res_layers == -1:
            num_res_layers = self.num_quantizers - 1
        if not 0 <= num_res_layers <= self.num_quantizers - 1:
            raise ValueError(f"num_res_layers must be -1 or in [0, {self.num_quantizers - 1}], "
                             f"got {num_res_layers}")
        b, n = base_ids.shape
        token_lens = check_token_lens(token_lens, b, n).to(base_ids.device)
        pad = ~lengths_to_mask(token_lens, n)
        ids = torch.where(pad | (base_ids < 0), self.pad_id, base_ids.long())
        if bool((ids > self.pad_id).any()):
            raise ValueError(f"base_ids at valid positions must lie in [0, {self.num_tokens - 1}]")
        embed, proj = self.tables()  # assembled once per call
        history = torch.zeros(b, n, self.cfg.code_dim, device=ids.device, dtype=embed.dtype)
        layers = [ids]
        row_lens = token_lens.tolist()  # one host sync, not one per row and layer
        for q in range(1, num_res_layers + 1):
            history = history + F.embedding(ids, embed[q - 1])
            logits = self.forward_with_cond_scale(history, q, cond, pad, cond_scale, force_mask, proj)
            pred = gumbel_sample(top_k_filter(logits, TOPK_FILTER_THRES), temperature, generator, row_lens)
            if known is not None and q <= known.shape[-1]:
                pred = torch.where(known[..., q - 1] >= 0, known[..., q - 1].long(), pred)
            ids = torch.where(pad, self.pad_id, pred)
            layers.append(ids)
        out = torch.stack(layers, dim=-1)
        return torch.where(out == self.pad_id, -1, out)

    # ----------------------------------------------------------------- training
    def loss(self, all_ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor,
             generator: Generators = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective of momask-architecture.md §4.5: all_ids (B, L, Q) -> (CE loss, accuracy).

        Target layer q = round((1 - cos(pi/2 u)) (Q - 2)) + 1 per sample; pads are ignored.
        """
        self.check_cond(cond)
        q = self.num_quantizers
        if all_ids.dim() != 3 or all_ids.shape[-1] != q or all_ids.shape[0] != cond.shape[0]:
            raise ValueError(f"all_ids must be (B, L, {self.num_quantizers}) matching cond, "
                             f"got {tuple(all_ids.shape)}")
        b, n, _ = all_ids.shape
        dev = all_ids.device
        valid = lengths_to_mask(check_token_lens(token_lens, b, n).to(dev), n)
        all_ids = torch.where(valid.unsqueeze(-1), all_ids.long(), self.pad_id)
        if bool(((all_ids < 0) | (all_ids > self.pad_id)).any()):
            raise ValueError(f"all_ids at valid positions must lie in [0, {self.num_tokens - 1}]")
        u = uniform((b,), generator, dev)
        qids = torch.round((1 - cosine_schedule(u)) * (self.num_quantizers - 2)).long() + 1  # (B,) in 1..Q-1
        history = self.embed_history(all_ids, qids)
        target = all_ids.gather(-1, qids.view(b, 1, 1).expand(b, n, 1)).squeeze(-1)  # (B, L)
        logits = self.forward_logits(history, qids, cond, ~valid, generator=generator)
        return ce_and_accuracy(logits, target, self.pad_id)
