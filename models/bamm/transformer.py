"""BAMM base-layer transformer: bidirectional autoregressive generation of RVQ layer-0 tokens.

Facts from bamm-differences.md. Vocabulary: codes 0..K-1, end_id = K, pad_id = K+1, mask_id = K+2
(mask_id has an embedding row but is never used). The head predicts K+1 classes (codes + end).
Sequence (sequence-first): [cond_emb(text) ; poseEmbedding(token_emb(ids))] + PE over all L+1
positions; no key-padding mask, only the causal/condition attention mask of `models.bamm.attention`.
The distribution of token k is read at sequence position k (the text token acts as BOS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.bamm.attention import attention_allowed, blocked_per_head, condition_positions
from models.common.heads import OutputProcess
from models.common.kv_cache import CachedCausalEncoder
from models.common.masks import check_token_lens, lengths_to_mask
from models.common.sampling import Generators, categorical_sample, cfg_combine, lowest_k_mask, num_masked, uniform
from models.common.sampling_config import SamplingConfig
from models.common.transformer import CondTransformerBase, eval_mode, init_weights
from models.common.transformer_config import TransformerConfig

# Base-layer sampling of the official generation script (bamm-differences.md §5.1).
DEFAULT_SAMPLING = SamplingConfig(cond_scale=4.0)
MAX_TOKENS = 49  # 196 frames // 4: BAMM always decodes 49 token slots (+ one spare slot for the end token)


class BAMMTransformer(CondTransformerBase):
    """BAMM's MaskTransformer: same modules and key names as MoMask's, with token_emb (K+3, code_dim) and
    output_process.poseFinal (K+1 classes). `cfg.trans` picks the encoder stack: "official"
    (`seqTransEncoder.layers.*`) or "t2mgpt" (pre-norm GPT blocks, `seqTransEncoder.blocks.*`)."""

    stacks = ("official", "t2mgpt")

    def __init__(self, cfg: TransformerConfig | None = None):
        cfg = cfg or TransformerConfig()
        super().__init__(cfg)
        k = cfg.num_tokens
        self.num_tokens, self.end_id, self.pad_id, self.mask_id = k, k, k + 1, k + 2
        self.num_heads = cfg.num_heads
        self.max_tokens = MAX_TOKENS
        self.output_process = OutputProcess(cfg.latent_dim, cfg.num_tokens + 1)
        self.token_emb = nn.Embedding(cfg.num_tokens + 3, cfg.code_dim)
        self.apply(init_weights)
        self.add_code_suppression(cfg.num_tokens + 1)

    # ------------------------------------------------------------------ forward
    def forward_logits(self, ids: torch.Tensor, cond: torch.Tensor, cond_idx: torch.Tensor | None = None,
                       force_mask: bool = False, generator: torch.Generator | None = None,
                       at: int | None = None) -> torch.Tensor:
        """ids (B, L) in [0, K+2], cond (B, cond_dim), cond_idx (B, L) (pad_id = not a condition) or None
        -> logits (B, L+1, K+1) over every sequence position, or (B, 1, K+1) at sequence position `at` only.
        Training mode drops cond with cond_drop_prob."""
        b, n = ids.shape
        c = self.cond_token(cond, force_mask, generator)                               # (1, B, latent)
        h = self.position_enc(torch.cat([c, self.input_process(self.token_emb(ids))]))  # (L+1, B, latent)
        cond_pos = condition_positions(cond_idx, self.pad_id, b, n, ids.device)          # (B, L+1)
        mask = blocked_per_head(attention_allowed(cond_pos), self.num_heads)             # (B*H, L+1, L+1)
        h = self.encode(h, mask=mask)
        return self.output_process(h if at is None else h[at:at + 1])

    def forward_with_cond_scale(self, ids: torch.Tensor, cond: torch.Tensor,
                                cond_idx: torch.Tensor | None = None, cond_scale: float = 3.0,
                                force_mask: bool = False, at: int | None = None) -> torch.Tensor:
        """Classifier-free guidance by batch doubling (conditional half first, zero-condition half second),
        l_u + s (l_c - l_u) with no s == 1 shortcut; force_mask -> unconditional logits only.
        Meant for eval mode. -> (B, L+1, K+1), or (B, 1, K+1) at sequence position `at`."""
        if force_mask:
            return self.forward_logits(ids, cond, cond_idx, force_mask=True, at=at)
        both_cond = torch.cat([cond, torch.zeros_like(cond)])
        both_idx = None if cond_idx is None else cond_idx.repeat(2, 1)
        cond_logits, uncond_logits = self.forward_logits(ids.repeat(2, 1), both_cond, both_idx, at=at).chunk(2)
        return cfg_combine(cond_logits, uncond_logits, cond_scale)

    # --------------------------------------------------------------- generation
    def _autoregress(self, ids: torch.Tensor, cond: torch.Tensor, cond_idx: torch.Tensor | None,
                     cond_scale: float, allow_end: bool, generator: Generators,
                     active_until: torch.Tensor | None, force_mask: bool = False) -> torch.Tensor:
        """Official `gen_one`: for k = 0, 1, ... sample token k from the guided logits at sequence
        position k and write it into ids[:, k] (every position, condition positions included).

        active_until (B,): row b samples tokens k < active_until[b] only (later slots of a row are never
        read: they lie after its end token). None (length prediction): a row samples until it draws the end
        class. A row draws exactly one uniform per token it samples, so its result does not depend on its
        batch neighbours, and the loop stops at the last active row instead of running all 49 slots.

        Without token conditions (pass 1) the mask is causal: position k only depends on the text and
        ids[:, :k], so the encoder runs one new position per step with a key/value cache
        (`CachedCausalEncoder`; same result as the full sequence, up to float rounding).
        """
        ids = ids.clone()
        steps = ids.shape[1] - 1 if active_until is None else int(active_until.max())
        ended = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        step_logits = (self._cached_causal_logits(cond, cond_scale, force_mask, steps) if cond_idx is None
                       else None)
        for k in range(steps):
            active = ~ended if active_until is None else active_until > k   # (B,)
            if not bool(active.any()):
                break
            if step_logits is None:
                logits = self.forward_with_cond_scale(ids, cond, cond_idx, cond_scale, force_mask, at=k)[:, 0]
            else:
                logits = step_logits(ids[:, k - 1] if k else None)                           # (B, K+1)
            logits = self.suppress(logits, cond)
            if not allow_end:
                logits = logits[:, :self.end_id]
            drawn = categorical_sample(logits.unsqueeze(1), 1.0, generator, active.long()).squeeze(1)
            ids[:, k] = torch.where(active, drawn, ids[:, k])
            if active_until is None:
                ended |= active & (drawn >= self.end_id)
        return ids

    def _cached_causal_logits(self, cond: torch.Tensor, cond_scale: float, force_mask: bool, steps: int):
        """A function: previous token ids (B,) (None at the first step) -> guided logits (B, K+1) of the next
        sequence position under the causal mask, run incrementally (CFG by batch doubling, as above)."""
        doubled = not force_mask
        both = torch.cat([cond, torch.zeros_like(cond)]) if doubled else cond
        cache = CachedCausalEncoder(self.seqTransEncoder, both.shape[0], steps + 1)
        first = self.cond_token(both, force_mask)                                    # (1, B', latent)

        def next_logits(prev: torch.Tensor | None) -> torch.Tensor:
            if prev is None:
                x = first
            else:
                prev = prev.repeat(2) if doubled else prev
                x = self.input_process(self.token_emb(prev).unsqueeze(1))           # (1, B', latent)
            x = self.position_enc(x, offset=cache.length)
            logits = self.output_process(cache.step(x[0]).unsqueeze(0))[:, 0]       # (B', K+1)
            return cfg_combine(*logits.chunk(2), cond_scale) if doubled else logits

        return next_logits

    def _predicted_lengths(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Length = index of the first id >= end_id; an end at position 0 becomes code 0 + end at 1
        (forces length >= 1). The last slot is always pad, so every row has an end. -> (ids, lens)."""
        ids = ids.clone()
        end_first = ids[:, 0] >= self.end_id
        ids[end_first, 0] = 0
        ids[end_first, 1] = self.end_id
        return ids, (ids >= self.end_id).int().argmax(dim=1)

    @eval_mode
    def generate(self, cond: torch.Tensor, token_lens: torch.Tensor | None = None,
                 sampling: SamplingConfig | None = None, second_pass_scale: float = 3.0,
                 generator: Generators = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-pass BAMM generation (bamm-differences.md §5) -> (ids (B, max(lens)) with -1 from each
        row's length on, token lengths (B,)).

        sampling: only `cond_scale` applies (unset: `DEFAULT_SAMPLING`, 4).
        Pass 1: left-to-right draft (up to 49 slots) with CFG scale `cond_scale`; if token_lens is None the
        end class is allowed and the length is where the first end token appears (>= 1), else the end
        class is dropped and token_lens (each in 1..49) is used. Each row stops at its own end: slots after
        it are never read, so they are not sampled (the official loop always runs 49 steps).
        Pass 2: n = max(1, round(len / 2)) of the len valid positions are re-sampled left to right with
        scale `second_pass_scale` (official: 3); the other valid positions and the end token are
        conditions (seen bidirectionally) and are restored at the end. As in the official code, every
        slot before the row's end is re-sampled and written during the pass, condition slots included,
        before that restore.

        Which positions pass 2 re-samples: officially the unstable tie order of argsort over equal scores
        (implementation- and device-defined). Here: a uniformly random subset of size n, drawn from
        `generator` (per row for a list), so the choice is reproducible, device-independent, free of the
        positional bias an arbitrary tie order has, and keeps the official meaning (a random-looking half).

        generator: one torch.Generator for the batch, or one per row (row b then only uses generator[b],
        so its result does not depend on the other rows). Categorical sampling, no top-k/temperature.
        """
        self.check_cond(cond)
        cond_scale = float((sampling or SamplingConfig()).over(DEFAULT_SAMPLING).cond_scale)
        b, dev, n = cond.shape[0], cond.device, self.max_tokens
        _check_generators(generator, b)
        predict_len = token_lens is None
        if not predict_len:
            token_lens = check_token_lens(token_lens, b, n).to(dev)

        ids = torch.full((b, n + 1), self.pad_id, dtype=torch.long, device=dev)
        ids = self._autoregress(ids, cond, None, cond_scale, predict_len, generator, token_lens)
        if predict_len:
            ids, token_lens = self._predicted_lengths(ids)

        # slots after the end hold pads (the official given-length path leaves draft codes there; no valid
        # position attends to them, so the output is the same)
        pos = torch.arange(n + 1, device=dev).unsqueeze(0)   # (1, n+1)
        lens = token_lens.unsqueeze(1)                         # (B, 1)
        valid = pos < lens
        ids = torch.where(valid, ids, self.pad_id).masked_fill(pos == lens, self.end_id)

        scores = uniform((b, n + 1), generator, dev).masked_fill(~valid, 2.0)  # pads rank last
        resample = lowest_k_mask(scores, num_masked(0.5, token_lens))
        keep = (valid & ~resample) | (pos == lens)
        cond_idx = torch.where(keep, ids, self.pad_id)
        # slots after a row's end token are pads, which no valid position attends to: pass 2 runs on the
        # first max(len) + 1 slots only (the longest row's end token included)
        m = int(token_lens.max()) + 1
        ids = self._autoregress(ids[:, :m], cond, cond_idx[:, :m], second_pass_scale, False, generator, token_lens)
        ids = torch.where(keep[:, :m], cond_idx[:, :m], ids)
        return torch.where(valid[:, :m], ids, -1)[:, : m - 1], token_lens

    @eval_mode
    def edit(self, cond_tokens: torch.Tensor, cond: torch.Tensor | None = None, cond_scale: float = 3.0,
             generator: Generators = None) -> torch.Tensor:
        """Conditional completion (official `edit2`, with its bugs fixed): one left-to-right pass over all
        L positions, the given tokens acting as (bidirectional) conditions and re-imposed after each step.

        cond_tokens (B, L): ids in [0, K] at given positions (K = end_id), -1 at positions to generate.
        cond (B, cond_dim) uses CFG with `cond_scale`; None -> unconditional. End class never sampled.
        -> (B, L) ids.
        """
        if cond_tokens.dim() != 2 or cond_tokens.is_floating_point():
            raise ValueError(f"cond_tokens must be an integer tensor (B, L), got {tuple(cond_tokens.shape)}")
        b, n = cond_tokens.shape
        if n < 1 or n >= self.position_enc.pe.shape[0]:
            raise ValueError(f"cond_tokens length must be in 1..{self.position_enc.pe.shape[0] - 1}, got {n}")
        if bool(((cond_tokens < -1) | (cond_tokens > self.end_id)).any()):
            raise ValueError(f"cond_tokens must hold -1 (free) or ids in [0, {self.end_id}]")
        force_mask = cond is None
        if cond is None:
            cond = torch.zeros(b, self.cond_emb.in_features, device=cond_tokens.device)
        self.check_cond(cond)
        if cond.shape[0] != b:
            raise ValueError(f"cond has {cond.shape[0]} rows for {b} rows of cond_tokens")
        _check_generators(generator, b)

        free = cond_tokens < 0
        cond_idx = cond_tokens.masked_fill(free, self.pad_id).long()
        ids = cond_idx.clone()
        for k in range(n):
            logits = self.forward_with_cond_scale(ids, cond, cond_idx, cond_scale, force_mask)[:, k]
            ids[:, k] = categorical_sample(logits[:, :self.end_id], 1.0, generator)
            ids = torch.where(free, ids, cond_idx)
        return ids

    @eval_mode
    def infill(self, cond: torch.Tensor, token_lens: torch.Tensor, known_ids: torch.Tensor,
               sampling: SamplingConfig | None = None, second_pass_scale: float = 3.0,
               generator: Generators = None) -> torch.Tensor:
        """Token in-filling with BAMM's two passes: known_ids (B, L) codes, -1 at positions to generate
        (only positions < token_lens count) -> ids (B, L), -1 from each row's length on; known codes unchanged.

        Pass 1 drafts the free positions left to right with CFG scale `cond_scale`. When every row's known
        positions form a prefix (a continuation, as in timelines) this is the causal autoregressive mode with
        the prefix fed in (key/value cache, as `generate`'s first pass); otherwise the known codes and the end
        token at the row's length are conditions that every position sees (bidirectional, official `edit2`).
        Pass 2 (as in `generate`) re-samples a random half of the free positions with `second_pass_scale`,
        the known codes, the other drafted codes and the end token being conditions. The end class is never
        sampled; categorical sampling, per-row generators as in `generate`.
        """
        self.check_cond(cond)
        if known_ids.dim() != 2 or known_ids.is_floating_point() or known_ids.shape[0] != cond.shape[0]:
            raise ValueError(f"known_ids must be an integer tensor (B, L) matching cond, got {tuple(known_ids.shape)}")
        b, n = known_ids.shape
        if not 1 <= n <= self.max_tokens:
            raise ValueError(f"known_ids length must be in 1..{self.max_tokens}, got {n}")
        if bool(((known_ids < -1) | (known_ids >= self.num_tokens)).any()):
            raise ValueError(f"known_ids must hold -1 (free) or codes in [0, {self.num_tokens - 1}]")
        _check_generators(generator, b)
        dev = cond.device
        lens = check_token_lens(token_lens, b, n).to(dev)
        cond_scale = float((sampling or SamplingConfig()).over(DEFAULT_SAMPLING).cond_scale)
        pos = torch.arange(n + 1, device=dev).unsqueeze(0)
        valid, end = pos < lens.unsqueeze(1), pos == lens.unsqueeze(1)
        padded = torch.cat([known_ids.to(dev).long(), known_ids.new_full((b, 1), -1).to(dev)], dim=1)
        known = valid & (padded >= 0)
        free = valid & ~known
        ids = torch.where(known, padded, self.pad_id).masked_fill(end, self.end_id)
        prefix = bool((known == (pos < known.sum(dim=1, keepdim=True))).all())
        cond_idx = None if prefix else torch.where(known | end, ids, self.pad_id)
        ids = self._fill(ids, cond, cond_idx, free, cond_scale, generator)

        scores = uniform((b, n + 1), generator, dev).masked_fill(~free, 2.0)
        resample = lowest_k_mask(scores, num_masked(0.5, free.sum(dim=1))) & free
        cond_idx = torch.where((valid & ~resample) | end, ids, self.pad_id)
        ids = self._fill(ids, cond, cond_idx, resample, second_pass_scale, generator)
        return torch.where(valid, ids, -1)[:, :n]

    def _fill(self, ids: torch.Tensor, cond: torch.Tensor, cond_idx: torch.Tensor | None, free: torch.Tensor,
              cond_scale: float, generator: Generators) -> torch.Tensor:
        """Sample the `free` slots (B, L+1) of ids left to right (end class dropped), everything else kept.
        cond_idx None: causal mask, run with the key/value cache over every slot up to the last free one."""
        ids = ids.clone()
        columns = free.any(dim=0).nonzero().flatten().tolist()
        if not columns:
            return ids
        last = columns[-1]
        step = None if cond_idx is not None else self._cached_causal_logits(cond, cond_scale, False, last + 1)
        for k in range(last + 1):
            row_free = free[:, k]
            if step is not None:
                logits = step(ids[:, k - 1] if k else None)
            elif bool(row_free.any()):
                logits = self.forward_with_cond_scale(ids, cond, cond_idx, cond_scale, at=k)[:, 0]
            else:
                continue
            if not bool(row_free.any()):
                continue
            drawn = categorical_sample(logits[:, :self.end_id].unsqueeze(1), 1.0, generator, row_free.long())
            ids[:, k] = torch.where(row_free, drawn.squeeze(1), ids[:, k])
        return ids

    # ----------------------------------------------------------------- training
    def loss(self, ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """BAMM objective (bamm-differences.md §4): ids (B, n) base codes -> (CE loss, accuracy).

        Targets: codes before len, end_id at len, pad after. With probability 0.5 a rate r ~ U(0, 0.5)
        (else 0) marks each position <= len as a condition with probability r; each position < len of
        the input is replaced by a random code with probability p ~ U(0, 0.5) (r, p once per batch).
        CE on every position <= len, per-sample mean then batch mean; accuracy pooled over those positions.
        Dropout uses the global RNG; everything else is drawn from `generator`.
        """
        self.check_ids_and_cond(ids, cond)
        b, n = ids.shape
        dev = ids.device
        lens = check_token_lens(token_lens, b, n).to(dev)
        valid = lengths_to_mask(lens, n + 1)          # (B, n+1) positions < len
        with_end = lengths_to_mask(lens + 1, n + 1)   # positions <= len
        if bool(((ids < 0) | (ids >= self.num_tokens))[valid[:, :n]].any()):
            raise ValueError(f"ids at valid positions must lie in [0, {self.num_tokens - 1}]")
        labels = torch.cat([ids.long(), ids.new_full((b, 1), self.end_id, dtype=torch.long)], dim=1)
        labels = torch.where(valid, labels, self.pad_id).masked_fill(with_end & ~valid, self.end_id)

        occur, rate = uniform((2,), generator, dev).unbind()
        r = 0.5 * rate if occur < 0.5 else 0.0
        cond_pos = (uniform((b, n + 1), generator, dev) < r) & with_end
        cond_idx = torch.where(cond_pos, labels, self.pad_id)

        p = 0.5 * uniform((), generator, dev)
        replace = (uniform((b, n + 1), generator, dev) < p) & valid
        rand_ids = (uniform((b, n + 1), generator, dev) * self.num_tokens).long()  # uniform random codes
        rand_ids = rand_ids.clamp(max=self.num_tokens - 1)
        x = torch.where(replace, rand_ids, labels)

        logits = self.forward_logits(x, cond, cond_idx, generator=generator)[:, :-1]  # (B, n+1, K+1)
        ce = F.cross_entropy(logits.transpose(1, 2), labels.masked_fill(~with_end, 0), reduction="none")
        weights = with_end / (lens.unsqueeze(1) + 1) / b
        acc = (logits.argmax(dim=-1) == labels)[with_end].float().mean()
        return (ce * weights).sum(), acc


def _check_generators(generator: Generators, batch_size: int) -> None:
    """Raise a ValueError unless `generator` is None, a torch.Generator or one generator per row."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not all(isinstance(g, torch.Generator) for g in generator):
        raise ValueError("generator must be a torch.Generator, a list of them (one per row) or None")
    if len(generator) != batch_size:
        raise ValueError(f"got {len(generator)} generators for a batch of {batch_size}")
