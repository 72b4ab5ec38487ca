"""Diagonal-Gaussian helpers shared by the VAE-style methods (DBSE, SPYL, C-DSVAE...).

Everything works on the last dimension as the latent dimension, so the same functions serve
static codes ``[B, S]`` and per-frame dynamic codes ``[B, T, D]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["GaussianHead", "kl_normal", "randn", "reparameterize", "gaussian_log_density"]


def randn(shape: Sequence[int], *, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
          generator: torch.Generator | None = None, per_item: bool = False) -> torch.Tensor:
    """Standard-normal noise that is reproducible under ``generator`` on any target device.

    Draws on the generator's own device (usually the CPU, so a seeded CPU generator gives the
    same numbers whether the model runs on CPU or CUDA), then moves the result to ``device``.
    Without a generator it draws directly on ``device`` from the global RNG.

    ``per_item`` draws item by item along the first dimension, so item ``i``'s noise depends on the
    generator and the items before it, never on how many items share the call: torch's vectorised
    normal sampler consumes the stream differently when a tensor's size is not a multiple of 16.
    DiffSDA's decoder draws its starting noise this way (its per-clip size on audio frames is not a
    multiple of 16), so evaluation may split clips into any batches
    (:attr:`seqbench.metric.EvalContext.decode_frames`). Where every item's size is a multiple of 16
    the numbers equal those of one draw.
    """
    dtype = dtype or torch.get_default_dtype()
    if generator is None:
        return torch.randn(*shape, device=device, dtype=dtype)
    if per_item and len(shape) > 1:
        items = [torch.randn(*shape[1:], generator=generator, device=generator.device, dtype=dtype)
                 for _ in range(shape[0])]
        noise = torch.stack(items) if items else torch.empty(*shape, device=generator.device, dtype=dtype)
    else:
        noise = torch.randn(*shape, generator=generator, device=generator.device, dtype=dtype)
    return noise.to(device) if device is not None else noise


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A differentiable sample ``mean + exp(logvar / 2) * eps`` (the reparameterization trick).

    Always samples: callers that want deterministic codes (evaluation) use ``mean`` directly,
    which keeps the choice visible at the call site instead of hidden in a training flag.
    """
    eps = randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_normal(mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor | None = None,
              logvar_p: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(N(mean_q, exp(logvar_q)) || N(mean_p, exp(logvar_p)))`` summed over the last dimension.

    The prior defaults to the standard normal. Leading dimensions are kept, so the caller
    decides how to reduce over batch and time (DBSE sums over time and averages over batch).
    """
    if mean_p is None:
        mean_p = torch.zeros_like(mean_q)
    if logvar_p is None:
        logvar_p = torch.zeros_like(logvar_q)
    var_ratio = torch.exp(logvar_q - logvar_p)
    mahalanobis = (mean_q - mean_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + mahalanobis - 1.0 - (logvar_q - logvar_p)).sum(dim=-1)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise ``log N(x; mean, exp(logvar))`` (not summed): the building block of MI estimators."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean).pow(2) * torch.exp(-logvar))


class GaussianHead(nn.Module):
    """Two parallel linear maps to the mean and log-variance of a diagonal Gaussian.

    Kept as one module so every method names its posterior heads the same way and a
    log-variance clamp (for numerical safety under mixed precision) lives in one place.
    """

    def __init__(self, in_dim: int, out_dim: int, *, logvar_clamp: tuple[float, float] = (-20.0, 10.0)):
        super().__init__()
        self.mean = nn.Linear(in_dim, out_dim)
        self.logvar = nn.Linear(in_dim, out_dim)
        self.logvar_clamp = logvar_clamp

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(h), self.logvar(h).clamp(*self.logvar_clamp)
