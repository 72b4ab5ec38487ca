"""Noise-conditioned MLPs: the denoiser of vector data (audio frames, latent codes).

DiffSDA replaces its U-Net by an MLP for audio (seed 003 app. B, TIMIT column) and models its
latent prior with a 10-layer MLP "with LayerNorm, SiLU and input skips" (app. A.3, after DiffAE's
MLP skip-net). Both are this module: every hidden layer sees ``[h, x]`` (the input is concatenated
back in, so depth never loses it), LayerNorm, then the AdaGN-style modulation of :mod:`.unet`
(noise-level scale/shift, then an optional scale/shift from a conditioning vector), then SiLU.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import zero_module
from .embeddings import TimestepEmbedding

__all__ = ["MLPDenoiser"]


class _Layer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, emb_dim: int, cond_dim: int | None):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_dim)
        self.cond_proj = nn.Linear(cond_dim, 2 * out_dim) if cond_dim else None
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(self.linear(x))
        scale, shift = self.emb_proj(self.act(emb)).chunk(2, dim=-1)
        h = h * (1 + scale) + shift
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError("this MLP was built with a conditioning vector; pass cond=")
            scale, shift = self.cond_proj(cond).chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        return self.act(h)


class MLPDenoiser(nn.Module):
    """``F(x [N, in_dim], noise_label [N], cond=[N, cond_dim]) -> [N, out_dim]`` with input skips.

    ``depth`` hidden layers of width ``hidden``; the output layer starts at zero. Inputs with extra
    trailing dimensions (``[N, C, 1, 1]`` audio frames) are flattened and the output reshaped back.
    """

    def __init__(self, in_dim: int, out_dim: int | None = None, *, hidden: int = 512, depth: int = 4,
                 cond_dim: int | None = None, skip_input: bool = True, noise_max_period: float = 10_000.0):
        super().__init__()
        out_dim = out_dim or in_dim
        self.in_dim, self.out_dim, self.skip_input = in_dim, out_dim, skip_input
        emb_dim = hidden
        self.time_embed = TimestepEmbedding(min(hidden, 256), emb_dim, noise_max_period)
        layers = []
        for i in range(depth):
            width = in_dim if i == 0 else hidden + (in_dim if skip_input else 0)
            layers.append(_Layer(width, hidden, emb_dim, cond_dim))
        self.layers = nn.ModuleList(layers)
        self.out = zero_module(nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, *, cond: torch.Tensor | None = None) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(shape[0], -1)
        label = noise_label.reshape(-1)
        emb = self.time_embed(label.expand(shape[0]) if label.numel() == 1 else label)
        h = flat
        for i, layer in enumerate(self.layers):
            if i and self.skip_input:
                h = torch.cat([h, flat], dim=-1)
            h = layer(h, emb, cond)
        out = self.out(h)
        return out.reshape(shape) if self.out_dim == self.in_dim else out
