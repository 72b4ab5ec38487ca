"""ADM-style U-Net (Dhariwal & Nichol 2021) with the two conditioning routes the diffusion methods use.

* **AdaGN** (DiffAE eq. 3, DiffSDA sec. 4.2): every residual block normalises, applies the
  noise-level scale/shift ``h * (1 + t_s) + t_b``, then a second scale/shift computed by a linear map
  of a conditioning vector (DiffSDA's ``a_t = (s, d_t)``). Pass ``cond_dim`` and ``cond=``.
* **Cross-attention** (LDM, DiViD sec. 4.1): at the chosen levels and in the middle block the
  attention layer is a :class:`~seqbench.nn.attention.SpatialTransformer` whose context is a short
  token sequence (DiViD's ``[static token, dynamic token_t]``). Pass ``context_dim`` and ``context=``.

Layout (ADM): stem conv; per level ``num_res_blocks`` residual blocks (+ attention at
``attn_levels``) and a resampling residual block ("learned up/downsampling", ``resblock_updown``)
or a strided conv; a middle block ResBlock-Attention-ResBlock; the mirrored decoder with skip
concatenations; GroupNorm-SiLU-conv head initialised at zero.

``attn_levels`` are level indices (0 = full resolution), so one setting works at any image size.
``patch_size > 1`` folds ``p x p`` pixel patches into channels before the stem and unfolds them
after the head (space-to-depth, lossless): a 64 px frame with ``patch_size=2`` is processed at
32 x 32, the cheap route to full-resolution outputs on CPU profiles. With patches the head's conv
also sees the patched input itself, so the per-pixel path (what a denoiser needs at low noise) is
not squeezed through ``base`` channels when ``C * p^2 > base``.

:class:`UNetEncoder` is the downsampling half without noise conditioning: the per-frame encoder of
DiffSDA (tail conv to 1 channel, flattened) and of DiViD (tail conv to 3 channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SelfAttention2d, SpatialTransformer, group_norm, zero_module
from .embeddings import TimestepEmbedding

__all__ = ["ResBlock", "Downsample", "Upsample", "UNet", "UNetEncoder"]


class Downsample(nn.Module):
    """Halve the map: 3x3 conv with stride 2 (learned) or 2x2 average pooling."""

    def __init__(self, channels: int, learned: bool = True):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, 2, 1) if learned else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the map: nearest-neighbour interpolation, then a 3x3 conv when ``learned``."""

    def __init__(self, channels: int, learned: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1) if learned else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    """Residual block with optional noise-level scale/shift and AdaGN conditioning.

    ``GN -> SiLU -> [resample] -> conv3x3 -> GN -> h*(1+t_s)+t_b -> h*(1+c_s)+c_b -> SiLU -> dropout -> conv3x3``,
    plus a (1x1-projected, resampled) skip. ``t_s, t_b`` come from ``emb`` (the time embedding),
    ``c_s, c_b`` from ``cond`` (a semantic vector); either may be absent. With ``up``/``down`` the
    block also resamples (BigGAN/ADM residual resampling), both branches with fixed ops.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, *, emb_dim: int | None = None,
                 cond_dim: int | None = None, dropout: float = 0.0, up: bool = False, down: bool = False):
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.resample: nn.Module = (Upsample(in_channels, learned=False) if up else
                                    Downsample(in_channels, learned=False) if down else nn.Identity())
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels) if emb_dim else None
        self.cond_proj = nn.Linear(cond_dim, 2 * out_channels) if cond_dim else None
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(out_channels, out_channels, 3, 1, 1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    @staticmethod
    def _modulate(h: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        scale, shift = params[:, :, None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(self.resample(F.silu(self.norm1(x))))
        x = self.resample(x)
        h = self.norm2(h)
        if self.emb_proj is not None:
            if emb is None:
                raise ValueError("this ResBlock was built with a time embedding; pass emb=")
            h = self._modulate(h, self.emb_proj(F.silu(emb)))
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError("this ResBlock was built with AdaGN conditioning; pass cond=")
            h = self._modulate(h, self.cond_proj(cond))
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class _Sequential(nn.ModuleList):
    """Runs blocks in order, handing each the conditioning it takes (ResBlock vs attention)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None, cond: torch.Tensor | None,
                context: torch.Tensor | None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, cond)
            elif isinstance(layer, (SelfAttention2d, SpatialTransformer)):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


def _attention(channels: int, context_dim: int | None, num_heads: int, head_channels: int | None,
               depth: int, dropout: float) -> nn.Module:
    if context_dim:
        return SpatialTransformer(channels, context_dim, num_heads, head_channels, depth, dropout)
    return SelfAttention2d(channels, num_heads, head_channels)


def _check_levels(attn_levels: Sequence[int], levels: int) -> None:
    bad = [lvl for lvl in attn_levels if not 0 <= lvl < levels]
    if bad:
        raise ValueError(f"attention levels {bad} are outside 0..{levels - 1} for {levels} resolution levels")


class UNet(nn.Module):
    """Noise-conditioned ADM U-Net ``F(x, noise_label, cond=, context=) -> [N, out_channels, H, W]``.

    ``noise_label`` ``[N]`` is the DDPM step or EDM's ``c_noise``; it is embedded with sinusoidal
    features and an MLP (width ``4 * base``) and modulates every residual block. ``cond``
    ``[N, cond_dim]`` (AdaGN) and ``context`` ``[N, M, context_dim]`` (cross-attention) are optional.
    """

    def __init__(self, in_channels: int, out_channels: int, *, base: int = 64,
                 channel_mult: Sequence[int] = (1, 2, 2, 2), num_res_blocks: int = 2,
                 attn_levels: Sequence[int] = (2,), cond_dim: int | None = None, context_dim: int | None = None,
                 num_heads: int = 4, head_channels: int | None = None, transformer_depth: int = 1,
                 dropout: float = 0.0, resblock_updown: bool = True, patch_size: int = 1,
                 noise_max_period: float = 10_000.0):
        super().__init__()
        _check_levels(attn_levels, len(channel_mult))
        self.in_channels, self.out_channels, self.patch_size = in_channels, out_channels, patch_size
        self.levels = len(channel_mult)
        emb_dim = 4 * base
        self.time_embed = TimestepEmbedding(base, emb_dim, noise_max_period)
        attn = lambda ch: _attention(ch, context_dim, num_heads, head_channels, transformer_depth, dropout)  # noqa: E731
        res = lambda i, o, **kw: ResBlock(i, o, emb_dim=emb_dim, cond_dim=cond_dim, dropout=dropout, **kw)  # noqa: E731

        self.stem = nn.Conv2d(in_channels * patch_size ** 2, base, 3, 1, 1)
        self.down = nn.ModuleList()
        skips, ch = [base], base
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                blocks = _Sequential([res(ch, base * mult)])
                ch = base * mult
                if level in attn_levels:
                    blocks.append(attn(ch))
                self.down.append(blocks)
                skips.append(ch)
            if level != self.levels - 1:
                self.down.append(_Sequential([res(ch, ch, down=True) if resblock_updown else Downsample(ch)]))
                skips.append(ch)
        self.middle = _Sequential([res(ch, ch), attn(ch), res(ch, ch)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                blocks = _Sequential([res(ch + skips.pop(), base * mult)])
                ch = base * mult
                if level in attn_levels:
                    blocks.append(attn(ch))
                if level and i == num_res_blocks:
                    blocks.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch))
                self.up.append(blocks)
        self.head_norm = nn.Sequential(group_norm(ch), nn.SiLU())
        skip = in_channels * patch_size ** 2 if patch_size > 1 else 0
        self.head = zero_module(nn.Conv2d(ch + skip, out_channels * patch_size ** 2, 3, 1, 1))

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, *, cond: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        factor = 2 ** (self.levels - 1) * self.patch_size
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"U-Net input {tuple(x.shape[-2:])} must be divisible by {factor} "
                             f"({self.levels} levels, patch {self.patch_size})")
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x, self.patch_size)
        emb = self.time_embed(noise_label.reshape(-1).expand(x.shape[0]) if noise_label.numel() == 1 else noise_label)
        h = self.stem(x)
        hs = [h]
        for blocks in self.down:
            h = blocks(h, emb, cond, context)
            hs.append(h)
        h = self.middle(h, emb, cond, context)
        for blocks in self.up:
            h = blocks(torch.cat([h, hs.pop()], dim=1), emb, cond, context)
        h = self.head_norm(h)
        if self.patch_size > 1:
            return F.pixel_shuffle(self.head(torch.cat([h, x], dim=1)), self.patch_size)
        return self.head(h)


class UNetEncoder(nn.Module):
    """The downsampling half of the U-Net, without noise conditioning: frame -> small feature map.

    ``[N, C, H, W] -> [N, out_channels, H / 2^(L-1) / p, W / 2^(L-1) / p]`` for ``L`` levels and patch ``p``;
    ``flatten=True`` returns ``[N, out_channels * h * w]`` (DiffSDA's "tail conv to 1 channel,
    flatten"). Accepts ``[B, T, C, H, W]`` too, folding time into the batch and back.
    """

    def __init__(self, in_channels: int, out_channels: int, *, base: int = 64,
                 channel_mult: Sequence[int] = (1, 2, 2, 2), num_res_blocks: int = 2,
                 attn_levels: Sequence[int] = (), num_heads: int = 4, head_channels: int | None = None,
                 dropout: float = 0.0, resblock_updown: bool = True, patch_size: int = 1, middle: bool = True,
                 flatten: bool = False):
        super().__init__()
        _check_levels(attn_levels, len(channel_mult))
        self.in_channels, self.out_channels, self.patch_size, self.flatten = in_channels, out_channels, patch_size, flatten
        self.levels = len(channel_mult)
        res = lambda i, o, **kw: ResBlock(i, o, dropout=dropout, **kw)  # noqa: E731
        layers: list[nn.Module] = [nn.Conv2d(in_channels * patch_size ** 2, base, 3, 1, 1)]
        ch = base
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers.append(res(ch, base * mult))
                ch = base * mult
                if level in attn_levels:
                    layers.append(SelfAttention2d(ch, num_heads, head_channels))
            if level != self.levels - 1:
                layers.append(res(ch, ch, down=True) if resblock_updown else Downsample(ch))
        if middle:
            layers += [res(ch, ch), SelfAttention2d(ch, num_heads, head_channels), res(ch, ch)]
        layers += [group_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, 1, 1)]
        self.body = nn.Sequential(*layers)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(channels, h, w)`` of the encoding of a ``height x width`` frame."""
        factor = 2 ** (self.levels - 1) * self.patch_size
        return self.out_channels, height // factor, width // factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x, self.patch_size)
        out = self.body(x)
        if self.flatten:
            out = out.flatten(1)
        return out.reshape(*lead, *out.shape[1:])
