"""Token-level transformer pieces for the transformer-based methods (VidTwin-style, BCD).

* :func:`patchify` / :func:`unpatchify` - lossless ``p x p`` patch folding between frames
  ``[N, C, H, W]`` and token grids ``[N, h, w, C p^2]``; :class:`PatchEmbed` / :class:`PatchHead`
  add the linear maps to and from the model width (ViT's patch embedding and its inverse).
* :func:`relative_position_bucket` / :class:`RelativePositionBias` - T5's bucketed relative
  position bias (Raffel et al. 2020, sec. 2.1): exact buckets for short distances, logarithmic ones
  up to ``max_distance``, one learned scalar per (bucket, head), computed once and shared by every
  layer of a stack.
* :class:`PreNormBlock` / :class:`Transformer` - pre-norm residual blocks (self-attention with an
  optional additive bias, then the GEGLU feed-forward of T5 v1.1) with RMSNorm (T5) or LayerNorm;
  ``causal=True`` masks the future (an autoregressive prior).
* :class:`SpaceTimeTransformer` - a video transformer over ``[B, T, h, w, D]`` token grids, with
  joint attention over the whole clip or TimeSformer's divided (temporal, then spatial) attention.
* :class:`QFormer` - learnable queries that self-attend and cross-attend to a token set (BLIP-2's
  Q-Former, used by VidTwin over the frames at one spatial position).
* :class:`CausalCodePrior` - an autoregressive transformer over grouped discrete codes
  ``[B, T, G]`` (one token per frame, the G codes of a frame predicted together given the past).

The attention itself is :class:`~seqbench.nn.attention.CrossAttention` and the feed-forward
:class:`~seqbench.nn.attention.FeedForward`, shared with the U-Net's spatial transformers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CrossAttention, FeedForward, TransformerBlock

__all__ = ["patchify", "unpatchify", "PatchEmbed", "PatchHead", "relative_position_bucket", "RelativePositionBias",
           "causal_mask", "PreNormBlock", "Transformer", "DividedSpaceTimeBlock", "SpaceTimeTransformer", "QFormer",
           "CausalCodePrior"]


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[N, C, H, W] -> [N, H/p, W/p, C p^2]`` (space-to-depth, channel-major inside a patch)."""
    if x.shape[-1] % patch or x.shape[-2] % patch:
        raise ValueError(f"frame {tuple(x.shape[-2:])} is not divisible into {patch}x{patch} patches")
    return F.pixel_unshuffle(x, patch).permute(0, 2, 3, 1)


def unpatchify(tokens: torch.Tensor, patch: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[N, h, w, C p^2] -> [N, C, h p, w p]``."""
    return F.pixel_shuffle(tokens.permute(0, 3, 1, 2), patch)


class PatchEmbed(nn.Module):
    """Frames ``[N, C, H, W]`` -> token grid ``[N, H/p, W/p, dim]`` (a linear map of each patch)."""

    def __init__(self, channels: int, patch: int, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(channels * patch * patch, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(patchify(x, self.patch))


class PatchHead(nn.Module):
    """Token grid ``[N, h, w, dim]`` -> frames ``[N, C, h p, w p]`` (norm, linear map, unpatchify)."""

    def __init__(self, dim: int, channels: int, patch: int):
        super().__init__()
        self.patch = patch
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, channels * patch * patch)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return unpatchify(self.proj(self.norm(tokens)), self.patch)


def relative_position_bucket(relative: torch.Tensor, *, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """T5's bucket of ``relative = key_position - query_position``.

    Half the buckets (all of them when not ``bidirectional``, where only the past is seen) cover
    one sign; inside that half the first ``n/2`` distances have a bucket each and the rest share
    logarithmically spaced buckets up to ``max_distance`` (farther ones share the last bucket).
    """
    buckets = torch.zeros_like(relative)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets = buckets + (relative > 0).long() * n
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = max(1, n // 2)
    log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(max(max_distance / exact, 1.0 + 1e-6))
    far = (exact + log_ratio * (n - exact)).long().clamp(max=n - 1)
    return buckets + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    """One learned scalar per (bucket, head), added to the attention logits: ``[1, heads, Lq, Lk]``."""

    def __init__(self, num_heads: int, *, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, length: int, key_length: int | None = None) -> torch.Tensor:
        key_length = key_length or length
        device = self.embedding.weight.device
        relative = torch.arange(key_length, device=device)[None] - torch.arange(length, device=device)[:, None]
        bucket = relative_position_bucket(relative, bidirectional=self.bidirectional, num_buckets=self.num_buckets,
                                          max_distance=self.max_distance)
        return self.embedding(bucket).permute(2, 0, 1)[None]


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Additive mask ``[length, length]``: 0 on and below the diagonal, ``-inf`` above it."""
    return torch.full((length, length), float("-inf"), device=device).triu(1)


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "rms":
        return nn.RMSNorm(dim, eps=1e-6)
    if kind == "layer":
        return nn.LayerNorm(dim)
    raise ValueError(f"norm={kind!r}: choose 'rms' (T5) or 'layer'")


class PreNormBlock(nn.Module):
    """``x + Attn(Norm(x), bias)``, then ``x + FF(Norm(x))`` (pre-norm keeps deep stacks trainable)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_mult: int = 4, norm: str = "rms", dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn = _norm(norm, dim), CrossAttention(dim, None, num_heads)
        self.norm2, self.ff = _norm(norm, dim), FeedForward(dim, mult=mlp_mult, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), bias=bias))
        return x + self.ff(self.norm2(x))


class Transformer(nn.Module):
    """A stack of :class:`PreNormBlock` over ``[N, L, dim]`` with a final norm.

    ``relative_bias=True`` adds a T5 relative position bias shared by all layers (the sequence then
    needs no absolute positions); ``causal=True`` lets each position see only itself and the past.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, *, mlp_mult: int = 4, norm: str = "rms",
                 relative_bias: bool = False, causal: bool = False, num_buckets: int = 32, max_distance: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(PreNormBlock(dim, num_heads, mlp_mult=mlp_mult, norm=norm, dropout=dropout)
                                    for _ in range(depth))
        self.bias = (RelativePositionBias(num_heads, bidirectional=not causal, num_buckets=num_buckets,
                                          max_distance=max_distance) if relative_bias else None)
        self.norm = _norm(norm, dim)

    def attention_bias(self, length: int, device: torch.device) -> torch.Tensor | None:
        """The additive logits bias every layer uses: relative positions plus the causal mask."""
        bias = self.bias(length) if self.bias is not None else None
        if self.causal:
            mask = causal_mask(length, device)[None, None]
            bias = mask if bias is None else bias + mask
        return bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.attention_bias(x.shape[1], x.device)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)


class DividedSpaceTimeBlock(nn.Module):
    """TimeSformer's divided attention: temporal attention per position, spatial attention per frame,
    feed-forward; each pre-norm and residual. ``[B, T, h, w, D] -> [B, T, h, w, D]``."""

    def __init__(self, dim: int, num_heads: int, *, mlp_mult: int = 4, norm: str = "layer", dropout: float = 0.0):
        super().__init__()
        self.norm_t, self.attn_t = _norm(norm, dim), CrossAttention(dim, None, num_heads)
        self.norm_s, self.attn_s = _norm(norm, dim), CrossAttention(dim, None, num_heads)
        self.norm_ff, self.ff = _norm(norm, dim), FeedForward(dim, mult=mlp_mult, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, frames, h, w, d = x.shape
        xt = x.permute(0, 2, 3, 1, 4).reshape(b * h * w, frames, d)
        xt = xt + self.attn_t(self.norm_t(xt))
        xs = xt.reshape(b, h, w, frames, d).permute(0, 3, 1, 2, 4).reshape(b * frames, h * w, d)
        xs = xs + self.attn_s(self.norm_s(xs))
        xs = xs + self.ff(self.norm_ff(xs))
        return xs.reshape(b, frames, h, w, d)


class SpaceTimeTransformer(nn.Module):
    """A video transformer over token grids ``[B, T, h, w, D]`` with a final norm.

    ``attention="joint"`` attends over all ``T h w`` tokens at once (cost quadratic in the clip);
    ``"divided"`` alternates temporal and spatial attention (:class:`DividedSpaceTimeBlock`), the
    TimeSformer factorisation, ``T + h w`` instead of ``T h w`` keys per query.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, *, attention: str = "joint", mlp_mult: int = 4,
                 norm: str = "layer", dropout: float = 0.0):
        super().__init__()
        if attention not in ("joint", "divided"):
            raise ValueError(f"attention={attention!r}: choose 'joint' or 'divided'")
        self.attention = attention
        if attention == "joint":
            self.body = Transformer(dim, depth, num_heads, mlp_mult=mlp_mult, norm=norm, dropout=dropout)
        else:
            self.blocks = nn.ModuleList(DividedSpaceTimeBlock(dim, num_heads, mlp_mult=mlp_mult, norm=norm,
                                                              dropout=dropout) for _ in range(depth))
            self.norm = _norm(norm, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention == "joint":
            return self.body(x.flatten(1, 3)).reshape(x.shape)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class QFormer(nn.Module):
    """``num_queries`` learned queries read a token set: ``[N, M, context_dim] -> [N, Q, dim]``.

    Each layer is self-attention among the queries, cross-attention to the tokens and a
    feed-forward (:class:`~seqbench.nn.attention.TransformerBlock`); the queries summarise a
    variable-length set into a fixed number of slots.
    """

    def __init__(self, dim: int, num_queries: int, *, depth: int = 1, num_heads: int = 4,
                 context_dim: int | None = None):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, context_dim or dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q = self.queries[None].expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            q = block(q, tokens)
        return self.norm(q)


class CausalCodePrior(nn.Module):
    """Autoregressive prior ``p(c_t | c_<t)`` over grouped codes ``[B, T, G]`` in ``0..num_codes-1``.

    A frame's token is the sum of its G code embeddings (one table per group); a start token is
    prepended; a causal :class:`Transformer` with relative positions (so any length samples) predicts
    the next frame's G codes as independent categoricals given the past.
    """

    def __init__(self, num_codes: int, groups: int = 1, *, dim: int = 64, depth: int = 2, num_heads: int = 4,
                 mlp_mult: int = 4):
        super().__init__()
        self.num_codes, self.groups = num_codes, groups
        self.embed = nn.Embedding(groups * num_codes, dim)
        self.register_buffer("offsets", torch.arange(groups) * num_codes, persistent=False)
        self.start = nn.Parameter(torch.zeros(dim))
        self.transformer = Transformer(dim, depth, num_heads, mlp_mult=mlp_mult, relative_bias=True, causal=True)
        self.head = nn.Linear(dim, groups * num_codes)

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, T, G]`` codes -> ``[B, T, G, K]`` logits of frame ``t`` given frames ``< t``."""
        b, frames, _ = codes.shape
        tokens = self.embed(codes + self.offsets).sum(-2)
        inputs = torch.cat([self.start.expand(b, 1, -1), tokens[:, :frames - 1]], dim=1)
        return self.head(self.transformer(inputs)).reshape(b, frames, self.groups, self.num_codes)

    def loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per code) of the codes under the prior."""
        return F.cross_entropy(self.logits(codes).flatten(0, 2).float(), codes.reshape(-1))

    @torch.no_grad()
    def sample(self, n: int, frames: int, *, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``[n, frames, G]`` codes drawn frame by frame (on the generator's device, then moved)."""
        device = self.start.device
        codes = torch.zeros(n, 0, self.groups, dtype=torch.long, device=device)
        for t in range(frames):
            step = torch.cat([codes, codes.new_zeros(n, 1, self.groups)], dim=1)
            probs = (self.logits(step)[:, t].float() / max(temperature, 1e-6)).softmax(-1).flatten(0, 1)
            if generator is not None:
                probs = probs.to(generator.device)
            draw = torch.multinomial(probs, 1, generator=generator).to(device).reshape(n, 1, self.groups)
            codes = torch.cat([codes, draw], dim=1)
        return codes
