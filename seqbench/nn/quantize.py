"""Vector quantizers with code-usage statistics.

* :class:`VectorQuantizer` - nearest-neighbour quantisation with the straight-through gradient
  (van den Oord et al. 2017, VQ-VAE eq. 3): the codebook learns either from the codebook loss
  ``||sg(z) - e||^2`` or, with ``ema=True``, from exponential moving averages of the assigned
  encoder outputs (VQ-VAE app. A.1, Razavi et al. 2019); the encoder always pays the commitment
  loss ``beta ||z - sg(e)||^2``.
* :class:`GumbelQuantizer` - a differentiable relaxation: logits over the codebook, a
  Gumbel-softmax sample (Jang et al. 2017) mixes code vectors; a KL term to the uniform prior keeps
  usage spread. ``groups > 1`` splits the vector into independently quantised groups (a group VQ,
  the low-bitrate bottleneck of BCD-style motion codes).

Both return a :class:`QuantizerOutput` with the codebook perplexity ``exp(H(usage))`` of the batch
(1 = collapse to one code, ``num_codes`` = uniform use), which methods log through
``train_statistics``. Vectors live on ``dim`` (1 for ``[N, C, H, W]`` feature maps, -1 for tokens).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["QuantizerOutput", "codebook_perplexity", "VectorQuantizer", "GumbelQuantizer"]


class QuantizerOutput(NamedTuple):
    """``quantized`` has the input's shape; ``indices`` drops the vector dimension (adds a group
    dimension last for grouped quantizers); ``loss`` is the scalar to add to the training loss."""

    quantized: torch.Tensor
    loss: torch.Tensor
    indices: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor  # [num_codes] fraction of vectors assigned to each code in this batch


def codebook_perplexity(indices: torch.Tensor, num_codes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(exp(entropy of code usage), usage)`` of integer code ``indices`` of any shape."""
    usage = torch.bincount(indices.reshape(-1), minlength=num_codes).float()
    usage = usage / usage.sum().clamp(min=1)
    entropy = -(usage * (usage + 1e-10).log()).sum()
    return entropy.exp(), usage


def _to_last(z: torch.Tensor, dim: int) -> torch.Tensor:
    return z.movedim(dim, -1)


def _from_last(z: torch.Tensor, dim: int) -> torch.Tensor:
    return z.movedim(-1, dim)


class VectorQuantizer(nn.Module):
    """Straight-through nearest-code quantizer with a commitment loss and optional EMA codebook.

    ``beta`` weighs the commitment term (0.25 in VQ-VAE). With ``ema=True`` the codebook is a
    buffer updated in training as ``N_k <- d N_k + (1-d) n_k``, ``m_k <- d m_k + (1-d) sum z``,
    ``e_k = m_k / N_k`` (Laplace-smoothed), and the loss is the commitment term alone.
    ``groups = G > 1`` quantises a vector of width ``G * dim`` as G sub-vectors against one shared
    codebook (a group / product VQ): ``indices`` gain a trailing group dimension and the rate is
    :attr:`bits` ``= G log2(num_codes)`` per vector. ``dead_threshold > 0`` (EMA codebook only)
    restarts codes whose running assignment count ``N_k`` falls below it at a random vector of the
    current batch (the random-restart remedy for codebook collapse of Dhariwal et al. 2020, Jukebox),
    which small codebooks trained from scratch otherwise suffer.
    """

    def __init__(self, num_codes: int, dim: int, *, beta: float = 0.25, ema: bool = True, decay: float = 0.99,
                 eps: float = 1e-5, channel_dim: int = 1, groups: int = 1, dead_threshold: float = 0.0):
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups={groups}: must be a positive integer")
        self.num_codes, self.dim, self.beta, self.ema, self.groups = num_codes, dim, beta, ema, groups
        self.decay, self.eps, self.channel_dim, self.dead_threshold = decay, eps, channel_dim, dead_threshold
        init = torch.randn(num_codes, dim) / dim ** 0.5
        if ema:
            self.register_buffer("codebook", init.clone())
            self.register_buffer("cluster_size", torch.ones(num_codes))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean) for every row of ``flat`` ``[M, dim]``."""
        book = self.codebook.float()
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1)[None]
        return dist.argmin(1)

    @property
    def bits(self) -> float:
        """Bits per quantised vector: ``groups * log2(num_codes)``."""
        return self.groups * math.log2(self.num_codes)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors for integer ``indices`` (vector dimension appended last; with groups the
        trailing group dimension is folded into it, giving ``groups * dim``)."""
        out = F.embedding(indices, self.codebook)
        return out.flatten(-2) if self.groups > 1 else out

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z_last = _to_last(z, self.channel_dim)
        flat = z_last.reshape(-1, self.dim).float()
        indices = self.nearest(flat)
        quantized = F.embedding(indices, self.codebook).to(flat.dtype)
        if self.ema and self.training:
            self._ema_update(flat.detach(), indices)
        commitment = F.mse_loss(flat, quantized.detach())
        loss = self.beta * commitment
        if not self.ema:
            loss = loss + F.mse_loss(quantized, flat.detach())
        quantized = flat + (quantized - flat).detach()  # straight-through estimator
        perplexity, usage = codebook_perplexity(indices, self.num_codes)
        out = _from_last(quantized.reshape(z_last.shape).to(z.dtype), self.channel_dim)
        index_shape = (*z_last.shape[:-1], self.groups) if self.groups > 1 else z_last.shape[:-1]
        return QuantizerOutput(out, loss, indices.reshape(index_shape), perplexity, usage)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.num_codes).type(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if self.dead_threshold > 0 and dead.any():
            picks = flat[torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)]
            self.codebook[dead] = picks
            self.embed_sum[dead] = picks
            self.cluster_size[dead] = 1.0


class GumbelQuantizer(nn.Module):
    """Gumbel-softmax quantizer: ``in_dim`` features -> ``groups`` codes of ``num_codes`` each.

    Logits come from a linear map (a 1x1 conv on feature maps); in training a (hard, straight-through
    when ``hard``) Gumbel-softmax sample at temperature ``tau`` mixes the ``code_dim``-d code vectors,
    in eval the argmax code is used. ``kl_weight * KL(softmax(logits) || uniform)`` is the loss.
    Output width is ``groups * code_dim``.
    """

    def __init__(self, in_dim: int, num_codes: int, code_dim: int, *, groups: int = 1, tau: float = 1.0,
                 hard: bool = True, kl_weight: float = 5e-4, channel_dim: int = 1):
        super().__init__()
        self.num_codes, self.code_dim, self.groups = num_codes, code_dim, groups
        self.tau, self.hard, self.kl_weight, self.channel_dim = tau, hard, kl_weight, channel_dim
        self.to_logits = nn.Linear(in_dim, groups * num_codes)
        self.codebook = nn.Parameter(torch.randn(groups, num_codes, code_dim) / code_dim ** 0.5)

    @property
    def bits(self) -> float:
        """Bits per quantised vector: ``groups * log2(num_codes)``."""
        return self.groups * math.log2(self.num_codes)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors ``[..., groups * code_dim]`` for ``indices`` ``[..., groups]`` (one table per group)."""
        picked = self.codebook[torch.arange(self.groups, device=indices.device), indices]
        return picked.flatten(-2)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z_last = _to_last(z, self.channel_dim)
        lead = z_last.shape[:-1]
        logits = self.to_logits(z_last).float().reshape(*lead, self.groups, self.num_codes)
        if self.training:
            weights = F.gumbel_softmax(logits, tau=self.tau, hard=self.hard, dim=-1)
        else:
            weights = F.one_hot(logits.argmax(-1), self.num_codes).float()
        quantized = torch.einsum("...gk,gkd->...gd", weights, self.codebook.float())
        probs = logits.softmax(-1)
        kl = (probs * (probs * self.num_codes + 1e-10).log()).sum(-1).mean()
        indices = logits.argmax(-1)
        perplexity, usage = codebook_perplexity(indices, self.num_codes)
        out = _from_last(quantized.reshape(*lead, self.groups * self.code_dim).to(z.dtype), self.channel_dim)
        return QuantizerOutput(out, self.kl_weight * kl, indices, perplexity, usage)
