"""A small VQ autoencoder for latent diffusion, trained once per dataset and cached.

DiffSDA runs its diffusion at 256 px on the latents of a VQ autoencoder (seed 003 sec. 4.2 and
app. A.2: LDM's VQ-f8 with ``Z = 256`` codes of ``d = 4`` channels, ``3x256x256 -> 4x32x32``). The
pretrained LDM weights cannot be shipped, so seqbench trains a small one per dataset:

* encoder: the ADM residual stack (:class:`~seqbench.nn.unet.UNetEncoder`), downsampling by
  ``f = 2^(levels - 1)`` (4 or 8), ending in a conv to ``embed_dim`` channels;
* quantizer: :class:`~seqbench.nn.quantize.VectorQuantizer` (EMA codebook, commitment loss);
* decoder: the mirrored residual stack with nearest-neighbour upsampling.

As in LDM's VQ-regularised models the quantizer belongs to the *decoder*: :meth:`VQAutoencoder.encode`
returns the continuous pre-quantisation latent that diffusion models, and :meth:`decode`
quantises before decoding. The loss is pixel MSE plus the VQ loss; LDM's perceptual (LPIPS) and
patch-GAN terms are left out because their pretrained weights are not available offline, so
reconstructions are blurrier than LDM's at equal size (stated wherever results are reported).

:func:`load_or_train_vqae` keeps the weights in the model store (:mod:`seqbench.model_store`, kind
``vqae``) under a hash of the dataset fingerprint and the autoencoder config, like the judges.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attention import group_norm
from .quantize import QuantizerOutput, VectorQuantizer
from .unet import ResBlock, Upsample, UNetEncoder

__all__ = ["VQAEConfig", "VQAutoencoder", "train_vqae", "load_or_train_vqae", "vqae_key"]

log = logging.getLogger(__name__)

VQAE_VERSION = "1"


@dataclass(frozen=True)
class VQAEConfig:
    """Architecture and training run of the autoencoder (defaults: LDM's f=8, Z=256, d=4, narrowed)."""

    factor: int = 8  # spatial downsampling, 4 or 8
    base: int = 64
    num_res_blocks: int = 1
    embed_dim: int = 4
    num_codes: int = 256
    beta: float = 0.25
    steps: int = 4000
    batch_size: int = 32  # frames per step
    lr: float = 2e-4
    seed: int = 0

    def channel_mult(self) -> tuple[int, ...]:
        if self.factor not in (2, 4, 8, 16):
            raise ValueError(f"VQ autoencoder factor must be 2, 4, 8 or 16, got {self.factor}")
        levels = int(np.log2(self.factor)) + 1
        return tuple(min(2 ** i, 4) for i in range(levels))


class _Decoder(nn.Module):
    def __init__(self, embed_dim: int, out_channels: int, base: int, channel_mult: Sequence[int], num_res_blocks: int):
        super().__init__()
        ch = base * channel_mult[-1]
        layers: list[nn.Module] = [nn.Conv2d(embed_dim, ch, 3, 1, 1), ResBlock(ch, ch), ResBlock(ch, ch)]
        for level in reversed(range(len(channel_mult))):
            for _ in range(num_res_blocks + 1):
                layers.append(ResBlock(ch, base * channel_mult[level]))
                ch = base * channel_mult[level]
            if level:
                layers.append(Upsample(ch))
        layers += [group_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, 1, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class VQAutoencoder(nn.Module):
    """``[N, C, H, W]`` in [-1, 1] <-> continuous latents ``[N, embed_dim, H/f, W/f]``."""

    def __init__(self, in_channels: int, config: VQAEConfig = VQAEConfig()):
        super().__init__()
        self.config, self.in_channels = config, in_channels
        mult = config.channel_mult()
        self.encoder = UNetEncoder(in_channels, config.embed_dim, base=config.base, channel_mult=mult,
                                   num_res_blocks=config.num_res_blocks, attn_levels=(), resblock_updown=False)
        self.quantizer = VectorQuantizer(config.num_codes, config.embed_dim, beta=config.beta, ema=True)
        self.decoder = _Decoder(config.embed_dim, in_channels, config.base, mult, config.num_res_blocks)

    @property
    def factor(self) -> int:
        return self.config.factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation latents (what latent diffusion models)."""
        return self.encoder(x)

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        return self.quantizer(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Quantise ``z`` then decode to pixels (the quantizer is part of the decoder, as in LDM)."""
        return self.decoder(self.quantizer(z).quantized)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        q = self.quantizer(self.encoder(x))
        return self.decoder(q.quantized), q


def _frames(split, rows: np.ndarray, frame_idx: np.ndarray, value_range: tuple[float, float]) -> torch.Tensor:
    clips = split.clips(rows)
    picked = clips[torch.arange(len(rows)), torch.from_numpy(frame_idx)]
    lo, hi = value_range
    return (picked - lo) / (hi - lo) * 2 - 1


def train_vqae(split, config: VQAEConfig, *, device: torch.device | str = "cpu",
               value_range: tuple[float, float] = (0.0, 1.0), progress: bool = False) -> VQAutoencoder:
    """Train a :class:`VQAutoencoder` on random frames of ``split`` (a :class:`~seqbench.data.SplitData`).

    Frames are mapped from ``value_range`` to [-1, 1]; Adam on MSE + VQ loss for ``config.steps``
    steps of ``config.batch_size`` frames; deterministic given ``config.seed``.
    """
    model = _untrained(split.x.shape[2], config)
    _train_in_place(model, split, config, device, value_range, progress)
    return model.eval()


def _untrained(channels: int, config: VQAEConfig) -> VQAutoencoder:
    """The initial weights, drawn from ``config.seed`` (not from the caller's RNG state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return VQAutoencoder(channels, config)


def _train_in_place(model: VQAutoencoder, split, config: VQAEConfig, device: torch.device | str,
                    value_range: tuple[float, float], progress: bool = False) -> dict[str, float]:
    """Adam on MSE + VQ loss through the framework's training loop (:func:`seqbench.trainer.fit_model`,
    no validation: the last weights are kept). Each step decodes ``batch_size`` random frames of random
    clips drawn from ``config.seed`` (with replacement, as since version 1)."""
    from ..trainer import FitConfig, fit_model

    rng = np.random.default_rng(config.seed)
    frames = split.x.shape[1]
    device = torch.device(device)

    def random_frames(train, index: np.ndarray) -> torch.Tensor:
        rows = np.sort(rng.integers(0, len(train), config.batch_size))
        return _frames(train, rows, rng.integers(0, frames, config.batch_size), value_range).to(device)

    def loss_fn(m: VQAutoencoder, x: torch.Tensor) -> torch.Tensor:
        x_hat, q = m(x)
        return F.mse_loss(x_hat, x) + q.loss

    fit = fit_model(model, loss_fn, None, split,
                    FitConfig(lr=config.lr, betas=(0.5, 0.9), batch_size=config.batch_size, max_steps=config.steps,
                              val_every=config.steps, val_fraction=0.0, seed=config.seed),
                    device, desc="VQ autoencoder", log=log.info if progress else None, make_batch=random_frames)
    log.info("trained VQ autoencoder in %.1fs", fit.wall_s)
    return {"steps": fit.steps, "final_loss": fit.final_loss, "wall_s": fit.wall_s}


def vqae_key(fingerprint: str, channels: int, config: VQAEConfig) -> dict:
    """Everything that determines the trained autoencoder: the dataset, its channels, the config."""
    return {"fingerprint": fingerprint, "channels": channels, "config": asdict(config), "version": VQAE_VERSION}


def load_or_train_vqae(split, fingerprint: str, config: VQAEConfig, *, device: torch.device | str = "cpu",
                       value_range: tuple[float, float] = (0.0, 1.0)) -> VQAutoencoder:
    """The autoencoder for this dataset and config from the model store (:mod:`seqbench.model_store`:
    ``<cache>/vqae/<hash>/``), training and storing it on a miss."""
    from ..model_store import cached_model

    channels = split.x.shape[2]
    model, _ = cached_model("vqae", vqae_key(fingerprint, channels, config), lambda: _untrained(channels, config),
                            lambda m: _train_in_place(m, split, config, device, value_range))
    return model.to(device).eval()
