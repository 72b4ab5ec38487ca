"""Noise-level embeddings shared by every denoiser (U-Net, MLP denoisers, latent priors).

A diffusion network is told *how noisy* its input is through a vector built from a scalar:
the integer step ``t`` of a DDPM, or EDM's ``c_noise = ln(sigma) / 4``. Both go through the same
sinusoidal features (Vaswani et al. 2017, as used by DDPM/ADM and by EDM's ADM variant) followed by
a two-layer MLP, so a method only chooses which scalar to feed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["sinusoidal_embedding", "TimestepEmbedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """``[N] -> [N, dim]`` features ``[cos(t * f_i), sin(t * f_i)]`` with ``f_i = max_period^(-i / half)``.

    Accepts integer steps or continuous noise labels; an odd ``dim`` gets one zero column.
    Computed in float32 whatever the input dtype, so bf16 autocast cannot quantise the phases.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float().reshape(-1, 1) * freqs[None]
    out = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        out = torch.cat([out, torch.zeros_like(out[:, :1])], dim=-1)
    return out


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of the noise label, then Linear-SiLU-Linear (the ADM time MLP).

    ``freq_dim`` is the width of the sinusoidal features, ``dim`` the output width (ADM uses
    ``4 * base_channels``); ``max_period`` sets the slowest frequency.
    """

    def __init__(self, freq_dim: int, dim: int, max_period: float = 10_000.0):
        super().__init__()
        self.freq_dim, self.dim, self.max_period = freq_dim, dim, max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = sinusoidal_embedding(t, self.freq_dim, self.max_period)
        return self.mlp(features.to(self.mlp[0].weight.dtype))
