"""Residual vector quantizer with EMA codebooks and dead-code reset (QuantizeEMAReset / ResidualVQ)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.common.sampling import gumbel_sample


class QuantizeEMAReset(nn.Module):
    """One codebook (buffer `codebook` (nb_code, code_dim)), updated by EMA in training, never by SGD.

    Training: the codebook is initialised from the first batch, codes are selected by Gumbel sampling
    on -distance (temperature `sample_temp`), and codes whose EMA count drops below 1 are reset to
    random current encoder outputs. Eval / `quantize`: argmin distance.
    """

    def __init__(self, nb_code: int, code_dim: int, mu: float):
        super().__init__()
        self.nb_code, self.code_dim, self.mu = nb_code, code_dim, mu
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.initialized = False  # plain attribute, as are the EMA statistics below
        self.code_sum: torch.Tensor | None = None
        self.code_count: torch.Tensor | None = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "codebook" in state_dict:  # a loaded codebook is not re-initialised by training
            self._start_ema(self.codebook)

    def _start_ema(self, codebook: torch.Tensor) -> None:
        self.codebook = codebook.clone()
        self.code_sum = codebook.clone()
        self.code_count = torch.ones(self.nb_code, device=codebook.device)
        self.initialized = True

    def _tile(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Repeat rows (+ noise of std 0.01/sqrt(code_dim)) until there are at least nb_code of them."""
        n = x.shape[0]
        if n >= self.nb_code:
            return x
        reps = math.ceil(self.nb_code / n)
        out = x.repeat(reps, 1)
        noise = torch.randn(out.shape, generator=generator, device=_gen_device(generator, x)).to(out)
        return out + noise * (0.01 / math.sqrt(self.code_dim))

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, code_dim) -> squared distances (N, nb_code)."""
        c = self.codebook
        return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ c.t() + c.pow(2).sum(-1)[None])

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest code: x (N, code_dim) -> ids (N,)."""
        return self.distances(x).argmin(dim=-1)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) -> vectors (..., code_dim); id -1 gives a zero vector."""
        vec = F.embedding(ids.clamp(min=0), self.codebook)
        return vec * (ids >= 0).unsqueeze(-1).to(vec.dtype)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, ids: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """EMA update with dead-code reset; returns the batch perplexity."""
        onehot = F.one_hot(ids, self.nb_code).to(x.dtype)  # (N, nb_code)
        batch_sum = onehot.t() @ x                          # (nb_code, code_dim)
        batch_count = onehot.sum(0)                         # (nb_code,)
        tiled = self._tile(x, generator)
        perm = torch.randperm(tiled.shape[0], generator=generator, device=_gen_device(generator, x))
        perm = perm[: self.nb_code].to(x.device)
        rand_codes = tiled[perm]
        self.code_sum = self.mu * self.code_sum + (1 - self.mu) * batch_sum
        self.code_count = self.mu * self.code_count + (1 - self.mu) * batch_count
        used = (self.code_count >= 1.0).unsqueeze(-1)
        ema_codes = self.code_sum / self.code_count.clamp(min=1e-12).unsqueeze(-1)
        self.codebook = torch.where(used, ema_codes, rand_codes)
        return _perplexity(batch_count)

    def forward(self, x: torch.Tensor, sample_temp: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                   torch.Tensor]:
        """x: (N, code_dim) -> (quantised (straight-through), ids (N,), commit loss, perplexity)."""
        if self.training and not self.initialized:
            with torch.no_grad():
                self._start_ema(self._tile(x.detach(), generator)[: self.nb_code])
        with torch.no_grad():
            neg_dist = -self.distances(x.detach())
            if self.training and sample_temp > 0:
                ids = gumbel_sample(neg_dist, sample_temp, generator)
            else:
                ids = neg_dist.argmax(dim=-1)
        x_d = self.dequantize(ids)  # looked up before the EMA update, as in the official code
        if self.training:
            perplexity = self._update(x.detach(), ids, generator)
        else:
            perplexity = _perplexity(torch.bincount(ids, minlength=self.nb_code).to(x.dtype))
        commit = F.mse_loss(x, x_d.detach())
        x_d = x + (x_d - x).detach()
        return x_d, ids, commit, perplexity


def _gen_device(generator: torch.Generator | None, x: torch.Tensor) -> torch.device:
    """Random draws happen on the generator's device (a CPU generator may drive a CUDA model)."""
    return x.device if generator is None else generator.device


def _perplexity(counts: torch.Tensor) -> torch.Tensor:
    prob = counts / counts.sum()
    return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())


class ResidualVQ(nn.Module):
    """`num_quantizers` quantizers applied to successive residuals; layers live in `layers.<q>`."""

    def __init__(self, num_quantizers: int, nb_code: int, code_dim: int, mu: float,
                 shared_codebook: bool = False, quantize_dropout_prob: float = 0.2):
        super().__init__()
        if shared_codebook:
            layer = QuantizeEMAReset(nb_code, code_dim, mu)
            self.layers = nn.ModuleList([layer] * num_quantizers)
        else:
            self.layers = nn.ModuleList(
                [QuantizeEMAReset(nb_code, code_dim, mu) for _ in range(num_quantizers)])
        self.num_quantizers = num_quantizers
        self.quantize_dropout_prob = quantize_dropout_prob

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Argmin residual quantisation: z (N, code_dim) -> ids (N, Q)."""
        residual, ids = z, []
        for layer in self.layers:
            i = layer.quantize(residual)
            residual = residual - layer.dequantize(i)
            ids.append(i)
        return torch.stack(ids, dim=-1)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (..., Q') with Q' <= Q (missing layers and -1 entries = zero vectors) -> (..., code_dim)."""
        q = ids.shape[-1]
        if q > self.num_quantizers:
            raise ValueError(f"got {q} quantizer layers of ids, the model has {self.num_quantizers}")
        return sum(self.layers[j].dequantize(ids[..., j]) for j in range(q))

    def forward(self, z: torch.Tensor, sample_temp: float = 0.5,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                   torch.Tensor]:
        """Training pass: z (N, code_dim) -> (quantised sum, ids (N, Q) with -1 for dropped layers,
        mean commit loss, mean perplexity). Quantizer dropout keeps layers 0..s only, s ~ U{0..Q-1}."""
        n_active = self.num_quantizers
        if self.training and self.quantize_dropout_prob > 0:
            dev = _gen_device(generator, z)
            if torch.rand((), generator=generator, device=dev).item() < self.quantize_dropout_prob:
                n_active = int(torch.randint(0, self.num_quantizers, (), generator=generator, device=dev)) + 1
        residual, out = z, torch.zeros_like(z)
        ids, losses, perplexities = [], [], []
        for j, layer in enumerate(self.layers):
            if j >= n_active:
                ids.append(torch.full(z.shape[:1], -1, dtype=torch.long, device=z.device))
                continue
            quantized, i, commit, perplexity = layer(residual, sample_temp, generator)
            residual = residual - quantized.detach()
            out = out + quantized
            ids.append(i)
            losses.append(commit)
            perplexities.append(perplexity)
        return out, torch.stack(ids, -1), torch.stack(losses).mean(), torch.stack(perplexities).mean()
