"""Attention blocks for image denoisers and token mixers.

* :class:`SelfAttention2d` - the ADM self-attention block over the pixels of a feature map.
* :class:`CrossAttention` / :class:`SpatialTransformer` - the latent-diffusion "spatial transformer"
  (Rombach et al. 2022): pixels attend to themselves, then to a small set of context tokens, then a
  GEGLU feed-forward. DiViD conditions its U-Net this way on ``[static token, dynamic token_t]``.
* :class:`TokenSelfAttention` - multi-head self-attention over a token sequence with residual and
  LayerNorm (DiViD's dynamic encoder; reusable by transformer-style methods).

All use :func:`torch.nn.functional.scaled_dot_product_attention`, which picks a fused kernel on
CUDA and a memory-lean one on CPU. Output projections start at zero so a freshly built block is the
identity (the ADM / LDM initialisation), which keeps deep U-Nets trainable from step 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["group_norm", "zero_module", "SelfAttention2d", "CrossAttention", "FeedForward", "TransformerBlock",
           "SpatialTransformer", "TokenSelfAttention"]


def group_norm(channels: int, max_groups: int = 32, eps: float = 1e-6) -> nn.GroupNorm:
    """GroupNorm with the largest group count ``<= max_groups`` that divides ``channels``.

    ADM uses 32 groups; narrow networks (CPU profiles) need fewer, so the count adapts rather than
    forcing every width to be a multiple of 32.
    """
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=eps)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` (output layers of residual branches start as the identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _heads(channels: int, num_heads: int, head_channels: int | None) -> int:
    if head_channels:
        if channels % head_channels:
            raise ValueError(f"{channels} channels do not split into heads of {head_channels}")
        return channels // head_channels
    if channels % num_heads:
        raise ValueError(f"{channels} channels do not split into {num_heads} heads")
    return num_heads


class SelfAttention2d(nn.Module):
    """Residual multi-head self-attention over the ``H * W`` positions of ``[N, C, H, W]`` (ADM)."""

    def __init__(self, channels: int, num_heads: int = 4, head_channels: int | None = None):
        super().__init__()
        self.heads = _heads(channels, num_heads, head_channels)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(n, c, h * w))  # [N, 3C, L]
        q, k, v = qkv.reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [N, heads, L, d]
        out = out.transpose(-1, -2).reshape(n, c, h * w)
        return x + self.proj(out).reshape(n, c, h, w)


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` ``[N, L, dim]`` over ``context`` ``[N, M, context_dim]``.

    With ``context=None`` it is self-attention. Keys and values are projected from the context's
    own width, so context tokens of any size (e.g. 256-d static/dynamic tokens) can steer any width.
    """

    def __init__(self, dim: int, context_dim: int | None = None, num_heads: int = 4, head_dim: int | None = None):
        super().__init__()
        head_dim = head_dim or dim // num_heads
        inner = head_dim * num_heads
        self.heads = num_heads
        context_dim = context_dim or dim
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """``bias`` is added to the attention logits (broadcast to ``[N, heads, L, M]``): a relative
        position bias, or ``-inf`` above the diagonal for causal attention."""
        context = x if context is None else context
        n = x.shape[0]
        split = lambda t: t.reshape(n, t.shape[1], self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        bias = None if bias is None else bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(n, x.shape[1], -1)
        return self.to_out(out)


class FeedForward(nn.Module):
    """GEGLU feed-forward (Shazeer 2020), the MLP of the latent-diffusion transformer block."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner = dim * mult
        self.proj_in = nn.Linear(dim, 2 * inner)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.out(h * F.gelu(gate))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to the context, feed-forward; each residual."""

    def __init__(self, dim: int, context_dim: int | None, num_heads: int, head_dim: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), CrossAttention(dim, None, num_heads, head_dim)
        self.norm2, self.attn2 = nn.LayerNorm(dim), CrossAttention(dim, context_dim, num_heads, head_dim)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim, dropout=dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Cross-attention conditioning of a feature map on context tokens (LDM's spatial transformer).

    ``[N, C, H, W]`` is normalised, projected to tokens, run through ``depth`` transformer blocks
    that attend to ``context`` ``[N, M, context_dim]``, projected back (zero-initialised) and added.
    The context tokens are layer-normalised first: their scale is set by an encoder trained jointly
    with the decoder, and unnormalised tokens drifted to magnitudes (12-46 vs 4.5 between DiViD's
    static and dynamic tokens) at which the keys of one token type swamp the other's.
    """

    def __init__(self, channels: int, context_dim: int, num_heads: int = 4, head_channels: int | None = None,
                 depth: int = 1, dropout: float = 0.0):
        super().__init__()
        heads = _heads(channels, num_heads, head_channels)
        self.norm = group_norm(channels)
        self.context_norm = nn.LayerNorm(context_dim)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.blocks = nn.ModuleList(TransformerBlock(channels, context_dim, heads, channels // heads, dropout)
                                    for _ in range(depth))
        self.proj_out = zero_module(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).reshape(n, c, h * w).transpose(1, 2)
        context = None if context is None else self.context_norm(context)
        for block in self.blocks:
            tokens = block(tokens, context)
        return x + self.proj_out(tokens.transpose(1, 2).reshape(n, c, h, w))


class TokenSelfAttention(nn.Module):
    """``LayerNorm(x + MHSA(x))`` over a sequence ``[B, T, dim]`` (post-norm, as DiViD sec. 4.1 states)."""

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attn(x, x, x, need_weights=False)
        return self.norm(x + out)
