"""Per-frame encoders and decoders: the backbone most sequential-disentanglement methods share.

C-DSVAE, SPYL, DBSE and the Sprites/MUG judges all embed each frame with the same DCGAN-style
convolutional encoder and decode with its transposed mirror; only the temporal modelling
differs. These modules map one frame to one vector (and back) and fold time into the batch, so a
method can hand them ``[B, T, C, H, W]`` clips directly. Audio datasets store one feature vector
per step as ``[T, C=bins, 1, 1]``; the MLP variants let the same methods run on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ..errors import ConfigError
from ..types import DataSpec

__all__ = [
    "DCGAN_SIZES", "DCGANDown", "DCGANFrameDecoder", "DCGANFrameEncoder", "DCGANUp", "MLPFrameDecoder",
    "MLPFrameEncoder",
    "OutputActivation", "PooledFrameEncoder", "fold_time", "frame_decoder", "frame_encoder", "output_activation",
    "unfold_time",
]

OutputActivation = Literal["sigmoid", "tanh", "linear"]

#: Square frame sizes the DCGAN stacks support: stride-2 stages down to a 4x4 map, at least two
#: stages (below 16 px there is nothing left to downsample) and at most five (beyond 128 px the
#: per-frame vector bottleneck is too narrow to be a sensible backbone).
DCGAN_SIZES: tuple[int, ...] = (16, 32, 64, 128)


def fold_time(x: torch.Tensor, event_dims: int) -> tuple[torch.Tensor, torch.Size]:
    """Merge all leading dimensions before the last ``event_dims`` into one batch dimension.

    Returns the folded tensor and the leading shape so :func:`unfold_time` can restore it;
    ``[B, T, C, H, W]`` and ``[N, C, H, W]`` both become ``[B*T | N, C, H, W]``.
    """
    if x.dim() < event_dims + 1:
        raise ValueError(f"expected at least {event_dims + 1} dimensions (batch + {event_dims}), got shape {tuple(x.shape)}")
    lead = x.shape[: x.dim() - event_dims]
    return x.reshape(-1, *x.shape[x.dim() - event_dims:]), lead


def unfold_time(y: torch.Tensor, lead: torch.Size) -> torch.Tensor:
    """Inverse of :func:`fold_time`: split the batch dimension of ``y`` back into ``lead``."""
    return y.reshape(*lead, *y.shape[1:])


def output_activation(name: OutputActivation) -> nn.Module:
    """The decoder's last non-linearity: sigmoid for data in [0, 1], tanh for [-1, 1], linear otherwise."""
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "linear":
        return nn.Identity()
    raise ConfigError(f"unknown decoder output {name!r}; choose sigmoid, tanh or linear")


def _dcgan_channels(size: int, base: int, max_channels: int) -> list[int]:
    if size not in DCGAN_SIZES:
        raise ConfigError(f"DCGAN frame networks need square frames of {', '.join(map(str, DCGAN_SIZES))} pixels "
                          f"(32 and 64 are the benchmark sizes); got {size}. Resize the dataset to one of these.")
    stages = int(math.log2(size)) - 2  # each stage halves the map; the last map is 4x4
    return [min(base * 2 ** i, max_channels) for i in range(stages)]


class DCGANDown(nn.Sequential):
    """Conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2): halves the map (DCGAN discriminator stage)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True))


class DCGANUp(nn.Sequential):
    """Transposed conv 4x4 stride 2 + BatchNorm + LeakyReLU(0.2): doubles the map (mirror of DCGANDown)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True))


class DCGANFrameEncoder(nn.Module):
    """Frame -> vector in (-1, 1)^out_dim, the C-DSVAE / DBSE / judge frame encoder.

    ``log2(size) - 2`` stride-2 stages with channels ``base, 2*base, ...`` (64-128-256-512 at 64 px)
    bring the map to 4x4; a 4x4 valid conv with BatchNorm and Tanh then gives the frame vector.
    The bounded Tanh output matters to methods that subtract frame vectors (DBSE's residuals).
    Accepts ``[B, T, C, H, W]`` (returns ``[B, T, out_dim]``) or ``[N, C, H, W]`` (``[N, out_dim]``).
    """

    def __init__(self, in_channels: int, size: int, out_dim: int, base: int = 64, max_channels: int = 512):
        super().__init__()
        channels = _dcgan_channels(size, base, max_channels)
        self.in_channels, self.size, self.out_dim = in_channels, size, out_dim
        stages, prev = [], in_channels
        for ch in channels:
            stages.append(DCGANDown(prev, ch))
            prev = ch
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Conv2d(prev, out_dim, 4, 1, 0, bias=False), nn.BatchNorm2d(out_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, lead = fold_time(x, 3)
        if flat.shape[1:] != (self.in_channels, self.size, self.size):
            raise ValueError(f"{type(self).__name__} expects frames {(self.in_channels, self.size, self.size)}, "
                             f"got {tuple(flat.shape[1:])}")
        return unfold_time(self.head(self.stages(flat)).flatten(1), lead)


class DCGANFrameDecoder(nn.Module):
    """Vector -> frame: the transposed mirror of :class:`DCGANFrameEncoder`.

    A 4x4 transposed conv lifts the vector to a 4x4 map, stride-2 stages double it back to
    ``size``, and the last transposed conv emits ``out_channels`` through ``output``
    (sigmoid by default, so frames land in [0, 1] like the judges expect).
    Accepts ``[B, T, in_dim]`` (returns ``[B, T, C, H, W]``) or ``[N, in_dim]``.
    """

    def __init__(self, in_dim: int, out_channels: int, size: int, base: int = 64,
                 output: OutputActivation = "sigmoid", max_channels: int = 512):
        super().__init__()
        channels = _dcgan_channels(size, base, max_channels)
        self.in_dim, self.out_channels, self.size = in_dim, out_channels, size
        self.stem = nn.Sequential(nn.ConvTranspose2d(in_dim, channels[-1], 4, 1, 0, bias=False),
                                  nn.BatchNorm2d(channels[-1]), nn.LeakyReLU(0.2, inplace=True))
        self.stages = nn.Sequential(*[DCGANUp(channels[i], channels[i - 1]) for i in range(len(channels) - 1, 0, -1)])
        self.head = nn.Sequential(nn.ConvTranspose2d(channels[0], out_channels, 4, 2, 1), output_activation(output))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        flat, lead = fold_time(h, 1)
        out = self.head(self.stages(self.stem(flat[:, :, None, None])))
        return unfold_time(out, lead)


def _mlp(dims: Sequence[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.LeakyReLU(0.2, inplace=True)]
    return layers


class MLPFrameEncoder(nn.Module):
    """Feature vector -> vector in (-1, 1)^out_dim: the audio counterpart of the DCGAN encoder.

    Audio steps are stored as ``[C=bins, 1, 1]``; hidden Linear + BatchNorm + LeakyReLU layers and
    a Linear + BatchNorm + Tanh head keep the output scale identical to the video encoder, so a
    method's temporal model and residual arithmetic need no modality switch.
    """

    def __init__(self, in_features: int, out_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.in_features, self.out_dim = in_features, out_dim
        dims = [in_features, *hidden]
        self.body = nn.Sequential(*_mlp(dims))
        self.head = nn.Sequential(nn.Linear(dims[-1], out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, lead = fold_time(x, 3)
        flat = flat.flatten(1)
        if flat.shape[1] != self.in_features:
            raise ValueError(f"MLPFrameEncoder expects {self.in_features} features per step, got {flat.shape[1]}")
        return unfold_time(self.head(self.body(flat)), lead)


class MLPFrameDecoder(nn.Module):
    """Vector -> feature vector ``[C, H, W]`` (``H = W = 1`` for audio): mirror of :class:`MLPFrameEncoder`.

    Linear output by default: audio features (log spectra, standardised bins) are not bounded.
    """

    def __init__(self, in_dim: int, out_channels: int, height: int = 1, width: int = 1,
                 hidden: Sequence[int] = (256, 256), output: OutputActivation = "linear"):
        super().__init__()
        self.in_dim, self.frame_shape = in_dim, (out_channels, height, width)
        dims = [in_dim, *reversed(tuple(hidden))]
        self.body = nn.Sequential(*_mlp(dims))
        self.head = nn.Sequential(nn.Linear(dims[-1], out_channels * height * width), output_activation(output))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        flat, lead = fold_time(h, 1)
        out = self.head(self.body(flat)).reshape(-1, *self.frame_shape)
        return unfold_time(out, lead)


class PooledFrameEncoder(nn.Module):
    """Frame ``[..., C, H, W]`` -> vector that cannot say *where* anything is in the frame.

    Convolutions with a ``kernel_size`` receptive field (``1``: each pixel alone) and GELUs, then the
    mean over all positions: a learned soft histogram of local appearance. Why: a static code read
    from a frame through a spatial layer also holds the pose and the facing direction of that frame,
    which are motion; pooled local features keep colours and textures (and their areas) but lose the
    layout. With ``kernel_size=1`` the output is exactly invariant to any permutation of the pixels,
    mirroring included; wider kernels see which colours border which (hair above a face) but also the
    local shape of a profile, so ``mirror_invariant`` averages the summary of the frame and of its
    horizontal mirror, which keeps left and right out exactly at any kernel size.

    ``pool="rows"`` averages over each row only (output ``width * height``): colours stay bound to
    their height in the frame (hair above the top above the bottom), which a frame-wide mean cannot
    say when two attributes share a colour, while the summary still cannot tell left from right
    (exactly, at ``kernel_size=1``; with ``mirror_invariant`` at any kernel size).

    ``reduce="max"`` takes the maximum instead of the mean: *which* features occur (in the frame or in
    each row), not over how many pixels - the area of a colour, which says how wide the figure is and
    so whether it faces the viewer or turns sideways, drops out.
    """

    def __init__(self, in_channels: int, width: int = 128, *, kernel_size: int = 1, depth: int = 2,
                 mirror_invariant: bool = False, pool: Literal["frame", "rows"] = "frame", height: int | None = None,
                 reduce: Literal["mean", "max"] = "mean"):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"PooledFrameEncoder kernel_size={kernel_size}: must be a positive odd integer")
        if depth < 1 or width < 1:
            raise ConfigError(f"PooledFrameEncoder depth={depth}, width={width}: both must be positive")
        if pool not in ("frame", "rows"):
            raise ConfigError(f"PooledFrameEncoder pool={pool!r}: choose 'frame' or 'rows'")
        if reduce not in ("mean", "max"):
            raise ConfigError(f"PooledFrameEncoder reduce={reduce!r}: choose 'mean' or 'max'")
        if pool == "rows" and (height is None or height < 1):
            raise ConfigError(f"PooledFrameEncoder pool='rows' needs the frame height (got height={height})")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, kernel_size, padding=kernel_size // 2), nn.GELU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 1), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.pool, self.reduce, self.mirror_invariant = pool, reduce, mirror_invariant
        self.out_dim = width if pool == "frame" else width * int(height)  # type: ignore[arg-type]

    def _summary(self, frames: torch.Tensor) -> torch.Tensor:
        features = self.body(frames)
        dims = (-2, -1) if self.pool == "frame" else -1
        summary = features.mean(dim=dims) if self.reduce == "mean" else features.amax(dim=dims)
        return summary.flatten(1)  # [N, width] or [N, width * height]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, lead = fold_time(x, 3)
        summary = self._summary(flat)
        if self.mirror_invariant:
            summary = (summary + self._summary(flat.flip(-1))) / 2
        return unfold_time(summary, lead)


def _video_size(spec: DataSpec) -> int:
    if spec.height != spec.width:
        raise ConfigError(f"dataset {spec.name!r} has {spec.height}x{spec.width} frames; the DCGAN frame networks "
                          f"need square frames of {', '.join(map(str, DCGAN_SIZES))} pixels")
    _dcgan_channels(spec.height, 1, 1)  # validates the size with a helpful message
    return spec.height


def frame_encoder(spec: DataSpec, out_dim: int, *, base: int = 64,
                  hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """The per-frame encoder for a dataset: DCGAN for video, MLP for audio feature vectors."""
    if spec.modality == "audio":
        return MLPFrameEncoder(spec.channels * spec.height * spec.width, out_dim, hidden)
    return DCGANFrameEncoder(spec.channels, _video_size(spec), out_dim, base=base)


def frame_decoder(spec: DataSpec, in_dim: int, *, output: OutputActivation = "sigmoid", base: int = 64,
                  hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """The per-frame decoder matching :func:`frame_encoder` for ``spec``, ending in ``output``."""
    if spec.modality == "audio":
        return MLPFrameDecoder(in_dim, spec.channels, spec.height, spec.width, hidden, output)
    return DCGANFrameDecoder(in_dim, spec.channels, _video_size(spec), base=base, output=output)
