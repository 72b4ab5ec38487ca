"""DiffSDA: diffusion sequential disentanglement autoencoder ("From noise to factors", seed 003).

Re-implemented from the paper (sec. 4, app. A-B) and the facts in the project notes; no reference
code is copied. The method reads like the paper's sec. 4.2:

* **Sequential semantic encoder** (sec. 4.2, "Encoders"). Every frame goes through a U-Net encoder
  of residual blocks without time conditioning (:class:`~seqbench.nn.UNetEncoder`), a tail conv to
  ``enc_out_channels`` (1 in the paper) and a flatten, then a linear map; a bidirectional LSTM
  summarises the sequence into ``h^{1:V}``. The static factor is ``s = Linear([h_fwd^V, h_bwd^1])``
  (the end states), the dynamic factors ``d^t = Linear(LSTM_2(h^{1:V}))_t``. Codes are deterministic:
  there is no KL and no prior term (eq. 5 has no prior constraint).
* **Stochastic encoder / decoder** (eq. 7). A frame-wise EDM denoiser
  ``D(x^t; sigma, z^t) = c_skip x + c_out F(c_in x, z^t, c_noise)`` where ``F`` is an ADM U-Net whose
  residual blocks apply AdaGN (DiffAE eq. 3): the time scale/shift and a second scale/shift from
  ``Linear(z^t)``, ``z^t = (s, d^t)``. Frames are processed as a batch of ``B * V`` images.
* **Loss** (eq. 8). The EDM loss with weight ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` and a
  noise level drawn *independently for every frame*, ``ln sigma ~ N(P_mean, P_std^2)``
  (-1.2/1.2 in pixel space, -0.4/1.0 on VQ latents). Nothing else: disentanglement comes from the
  shared ``s`` and a narrow ``d``.
* **Sampling** (alg. 1): EDM Heun with ``S_churn = 0``; ``sampler_steps = 32`` is the paper's 63 NFE.
* **Latent space** (app. A.2): at 256 px the frames are first encoded by a VQ autoencoder
  (:mod:`seqbench.nn.vqae`, f = 8, 4 channels, trained per dataset and cached) and everything above
  runs on its latents, normalised globally to zero mean (and std ``sigma_data``); decoded samples are
  un-normalised and passed through the VQ decoder.
* **Audio** (app. B, TIMIT): an MLP replaces both U-Nets (:class:`~seqbench.nn.MLPDenoiser`).
* **Prior** (app. A.3): a latent DDPM (10-layer skip MLP, linear betas 1e-5..1e-2, 1000 steps) over
  ``(s, flatten(d^{1:V}))``, sampled with DDIM; :meth:`DiffSDA.sample` draws from it.

How the contract's verbs map onto the paper (interpretation choices, stated once here):

* ``decode(factors, generator=)`` starts from ``x_T ~ N(0, sigma_max^2 I)`` drawn from the generator
  (the paper's second option, sec. 4.2): a swap has no single source image to invert, and a
  decode must be a function of the factors and the generator only.
* ``reconstruct(x)`` is the paper's reconstruction: ``x_T`` from the deterministic ODE inversion of
  ``x`` itself (alg. 2) conditioned on ``x``'s codes, then alg. 1. :meth:`DiffSDA.swap` implements
  app. A.4's swap (invert the clip that supplies the dynamics, decode with the swapped codes).
  Metrics that call ``decode(encode(x))`` measure the unconditional-noise variant.
* **Training the prior in the same run.** The framework owns one training loop, so the latent
  prior is trained alongside the autoencoder on *detached* codes (its loss cannot move the encoder);
  its loss is added to ``loss`` and logged as ``prior``. The paper trains it afterwards on the final
  codes; here it tracks the codes as they converge.
* **Frames in the loss.** ``loss_frames = k`` draws ``k`` frames per clip for the denoising term (the
  encoder still reads all frames): an unbiased estimate of eq. 8 at ``k / V`` of the denoiser cost,
  used by the CPU profiles. ``None`` (paper) uses every frame.
* **Patches.** ``patch_size = p`` folds ``p x p`` pixel patches into channels before the U-Nets
  (lossless space-to-depth): the CPU profile runs 64 px frames at 16 x 16 with ``p = 4``.
* **Latent mode** needs the training split before training to fit (or load) the VQ autoencoder:
  :meth:`DiffSDA.prepare`, which the framework's trainer calls before the first step (the method
  refuses to train without it).

Version 2 (issue "Diffusion members that learn"; shared fixes with DiViD's version 2):

* **Standardised codes** (:class:`~seqbench.nn.FactorNorm` on ``s`` and ``d^t``): version 1's static
  code collapsed early (spread 0.465 -> 0.10 by step 50); the AdaGN conditioning reaches the
  encoder only through residual branches that start at zero, as DiViD's cross-attention does.
* **Training noise levels that cover the sampler.** Version 1's quick ``ln sigma ~ N(-0.6, 1.2^2)``
  put ~3% of the draws above sigma 5, where appearance is decided, while decoding starts at
  sigma 80. Half of the draws are now log-uniform over ``[sigma_min, sigma_max]``
  (``sigma_uniform = 0.5``; 15% above sigma 5 and 16% below 0.05). A log-normal shifted up instead
  (``N(0.8, 1.6^2)``) starved the lowest levels the last Heun steps visit.
* **The prior is clipped apart** (:meth:`DiffSDA.grad_clip_groups`): its gradient norm (1.8-3.4) set
  version 1's single clipping scale for the denoiser (0.3-0.6) and the encoder (0.04-0.06).
* **One-step decoding in the quick profile** (``sampler_steps = 1``: ``x_0 = D(sigma_max n; sigma_max,
  s, d)``, one network evaluation). A short-trained denoiser ignores its noisy input below the
  highest levels (at step 300 its ``x_0`` error at sigma 1-3 equalled that at 80, 0.06, and it left
  the input untouched below 0.1), so multi-step Heun decodes drift off the data: at step 300,
  Heun 1/2/3/4/6/8 steps gave MSE 0.0159/411/1.01/1.08/0.168/0.114 (mean clip 0.0149); two steps jump
  from sigma 80 to 0.002 in one correction and explode. The ODE inversion of :meth:`reconstruct` and
  :meth:`swap` needs several steps: pass ``--set diffsda.sampler_steps=8`` to measure that path.

Profiles: ``smoke`` checks the wiring in seconds; ``quick`` is sized for two CPU cores on 32 px
synthetic-sprites: patch 2 (the U-Net runs at 16 x 16), narrow U-Nets (base 32, multipliers 1-2-2),
s 64 / d 8, 2 of 8 frames per clip in the loss, 9000 steps of 16 clips at AdamW 5e-4 with warm-up,
cosine decay and EMA 0.999, the noise label scaled by 250 (see :class:`~seqbench.nn.EDMPrecond`;
EDM's scale 1 learns too slowly here), training sigmas half log-normal ``N(-0.6, 1.2^2)``, half
log-uniform, and a one-step decode (9000 steps, chosen from the curves: at 3000 its own
reconstructions kept the static attributes at 0.51, at 6000 at 0.90 with the swap probe still
rising +6.0 % over the last quarter, at 9000 at 0.94 on its plateau (+3.3 %); test swap 0.420 /
0.533 / 0.221 -> 0.828 / 0.410 / 0.346 -> 0.898 / 0.397 / 0.361; 9000 steps are 30.0 min with two
threads on a quiet machine, the protocol's limit; docs/protocol.md); ``paper`` is the MUG
column of table 4 (s 256, d 64, LSTM 128, base 64, multipliers 1-2-2-2, attention at level 2,
AdamW 1e-4, wd 1e-5, grad clip 1, cosine schedule with warm-up, batch 8, 63 NFE). Family
overrides give the TaiChi-HD (``bodies``) and TIMIT (``speech``) columns; the 256 px VoxCeleb /
CelebV-HQ columns are ``--set diffsda.space=latent diffsda.static_dim=512 diffsda.dynamic_dim=12
diffsda.hidden=1024 diffsda.base=192 diffsda.enc_base=192`` (CelebV-HQ: ``static_dim=1024``,
``dynamic_dim=16``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from seqbench.config import MethodConfig
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.method import Batch, Method, ObjectiveMethod
from seqbench.nn import (EDMPrecond, FactorNorm, LatentDiffusionPrior, MLPDenoiser, UNet, UNetEncoder, VQAEConfig,
                         VQAutoencoder, edm_heun_invert, edm_heun_sample, edm_sigma_steps, edm_training_sigmas,
                         heun_nfe, load_or_train_vqae, randn, usage_report)
from seqbench.types import DataSpec, Factors

_SPACES = ("auto", "pixel", "latent")


@dataclass
class DiffSDAConfig(MethodConfig):
    """DiffSDA settings; defaults are the paper's MUG (64 px) column of table 4."""

    # factors and the sequential semantic encoder
    static_dim: int = 256
    dynamic_dim: int = 64
    hidden: int = 128  # LSTM hidden size (per direction)
    enc_base: int = 64
    enc_mult: tuple[int, ...] = (1, 2, 2, 2)
    enc_res_blocks: int = 2
    enc_attn_levels: tuple[int, ...] = (2,)
    enc_out_channels: int = 1  # the tail conv's channels before flattening
    # the denoiser F (ADM U-Net with AdaGN)
    base: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2,)
    num_heads: int = 4
    dropout: float = 0.0
    patch_size: int = 1
    # audio: MLPs replace the U-Nets
    mlp_hidden: int = 512
    mlp_depth: int = 4
    # EDM (Karras et al. 2022); p_mean/p_std None = -1.2/1.2 in pixel space, -0.4/1.0 on latents
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    p_mean: float | None = None
    p_std: float | None = None
    # fraction of training sigmas drawn log-uniformly over [sigma_min, sigma_max] (0 = EDM's log-normal only)
    sigma_uniform: float = 0.0
    noise_label_scale: float = 1.0  # multiplies c_noise = ln(sigma)/4 before the embedding (EDM: 1)
    sampler_steps: int = 32  # Heun steps; NFE = 2 * steps - 1 (63 in the paper)
    s_churn: float = 0.0
    loss_frames: int | None = None  # frames per clip in the denoising loss (None = all)
    # latent space (256 px): the cached VQ autoencoder
    space: str = "auto"  # auto (latent at >= 128 px) | pixel | latent
    vq_factor: int = 8
    vq_base: int = 64
    vq_codes: int = 256
    vq_embed_dim: int = 4
    vq_steps: int = 4000
    vq_batch_size: int = 32
    # latent DDPM prior over (s, flatten(d)) for sample()
    prior_hidden: int = 512
    prior_depth: int = 10
    prior_sample_steps: int = 50
    prior_weight: float = 1.0

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(static_dim=8, dynamic_dim=4, hidden=16, enc_base=8, enc_mult=(1, 2), enc_res_blocks=1,
                      enc_attn_levels=(), base=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,),
                      num_heads=2, patch_size=4, mlp_hidden=32, mlp_depth=2, noise_label_scale=250.0,
                      sampler_steps=3, loss_frames=2,
                      vq_base=8, vq_steps=20, vq_batch_size=8, prior_hidden=32, prior_depth=2,
                      prior_sample_steps=5, optimizer="adamw", lr=1e-3, weight_decay=1e-5, batch_size=8,
                      steps=12, checkpoint_every=6, val_every=6, log_every=3),
        "quick": dict(static_dim=64, dynamic_dim=8, hidden=128, enc_base=16, enc_mult=(1, 2), enc_res_blocks=1,
                      enc_attn_levels=(), enc_out_channels=2, base=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                      attn_levels=(2,), num_heads=4, patch_size=2, mlp_hidden=256, mlp_depth=3,
                      p_mean=-0.6, sigma_uniform=0.5, noise_label_scale=250.0, sampler_steps=1, loss_frames=2, vq_base=32,
                      vq_steps=1500, prior_hidden=256, prior_depth=4, prior_sample_steps=25, optimizer="adamw", lr=5e-4,
                      weight_decay=1e-5,
                      grad_clip=1.0, scheduler="cosine", warmup_steps=200, ema_decay=0.999, batch_size=16,
                      steps=9000, checkpoint_every=500, val_every=500, log_every=50),
        "paper": dict(optimizer="adamw", lr=1e-4, weight_decay=1e-5, grad_clip=1.0, scheduler="cosine",
                      warmup_steps=500, batch_size=8, epochs=1600, ema_decay=None,
                      checkpoint_every=5000, val_every=5000, log_every=100),
    }
    family_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {
        ("paper", "faces"): dict(sampler_steps=36),  # MUG: 71 NFE (table 4)
        ("paper", "bodies"): dict(static_dim=512, dynamic_dim=64, hidden=1024, batch_size=16, epochs=40 * 150),
        ("paper", "speech"): dict(static_dim=32, dynamic_dim=4, hidden=128, mlp_hidden=1024, mlp_depth=4,
                                  batch_size=128, epochs=750, p_mean=-0.4, p_std=1.0),
    }

    def __post_init__(self) -> None:
        if self.space not in _SPACES:
            raise ConfigError(f"diffsda.space={self.space!r}: choose one of {', '.join(_SPACES)}")
        for name in ("static_dim", "dynamic_dim", "hidden", "enc_base", "base", "sampler_steps", "patch_size",
                     "enc_out_channels", "prior_sample_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"diffsda.{name}={getattr(self, name)}: must be a positive integer")
        if self.loss_frames is not None and self.loss_frames < 1:
            raise ConfigError(f"diffsda.loss_frames={self.loss_frames}: must be positive or None (all frames)")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError("diffsda: need 0 < sigma_min < sigma_max")

    def vq_config(self) -> VQAEConfig:
        return VQAEConfig(factor=self.vq_factor, base=self.vq_base, embed_dim=self.vq_embed_dim,
                          num_codes=self.vq_codes, steps=self.vq_steps, batch_size=self.vq_batch_size)


class DiffSDA(ObjectiveMethod):
    """Sequential semantic encoder + frame-wise AdaGN EDM denoiser (see the module docstring)."""

    name: ClassVar[str] = "diffsda"
    # 2: standardised codes, training sigmas covering the sampler's range, prior clipped apart, trainer
    # EMA warm-up without buffers, patch 2 quick at lr 5e-4
    version: ClassVar[str] = "2"
    Config: ClassVar[type[MethodConfig]] = DiffSDAConfig
    modalities: ClassVar[tuple[str, ...]] = ("video", "audio")
    description: ClassVar[str] = ("Diffusion autoencoder: BiLSTM semantic encoder (s from end states, d_t from a "
                                  "second LSTM), frame-wise EDM U-Net with AdaGN on (s, d_t), Heun sampling, "
                                  "ODE-inversion reconstructions, latent DDIM prior.")
    paper: ClassVar[str] = "From noise to factors: diffusion-based unsupervised sequential disentanglement (DiffSDA)"

    config: DiffSDAConfig

    def __init__(self, config: DiffSDAConfig, spec: DataSpec):
        super().__init__(config, spec)  # refuses a spec that supports() rejects
        c = config
        self.audio = spec.modality == "audio"
        self.space = self.resolve_space(c.space, spec)
        self.p_mean = c.p_mean if c.p_mean is not None else (-1.2 if self.space == "pixel" else -0.4)
        self.p_std = c.p_std if c.p_std is not None else (1.2 if self.space == "pixel" else 1.0)
        cond_dim = c.static_dim + c.dynamic_dim
        if self.space == "latent":
            self.vqae = VQAutoencoder(spec.channels, c.vq_config())
            self.vqae.requires_grad_(False)
            self.register_buffer("latent_mean", torch.zeros(c.vq_embed_dim))
            self.register_buffer("latent_scale", torch.ones(()))
            self.register_buffer("vqae_ready", torch.zeros((), dtype=torch.bool))
            factor = c.vq_factor
            self.frame_shape: tuple[int, ...] = (c.vq_embed_dim, spec.height // factor, spec.width // factor)
        else:
            self.vqae = None
            self.frame_shape = (spec.channels, spec.height, spec.width)
        if self.audio:
            features = spec.channels * spec.height * spec.width
            self.frame_encoder: nn.Module = nn.Sequential(
                nn.Flatten(-3), nn.Linear(features, c.mlp_hidden), nn.LayerNorm(c.mlp_hidden), nn.SiLU(),
                nn.Linear(c.mlp_hidden, c.mlp_hidden), nn.SiLU())
            feat_dim = c.mlp_hidden
            net: nn.Module = MLPDenoiser(features, hidden=c.mlp_hidden, depth=c.mlp_depth, cond_dim=cond_dim)
        else:
            ch, h, w = self.frame_shape
            self.frame_encoder = UNetEncoder(ch, c.enc_out_channels, base=c.enc_base, channel_mult=c.enc_mult,
                                             num_res_blocks=c.enc_res_blocks, attn_levels=c.enc_attn_levels,
                                             num_heads=c.num_heads, patch_size=c.patch_size, flatten=True)
            feat_dim = math.prod(self.frame_encoder.output_shape(h, w))
            net = UNet(ch, ch, base=c.base, channel_mult=c.channel_mult, num_res_blocks=c.num_res_blocks,
                       attn_levels=c.attn_levels, cond_dim=cond_dim, num_heads=c.num_heads, dropout=c.dropout,
                       patch_size=c.patch_size)
        self.frame_proj = nn.Linear(feat_dim, c.hidden)
        self.seq_lstm = nn.LSTM(c.hidden, c.hidden, batch_first=True, bidirectional=True)
        self.static_head = nn.Linear(2 * c.hidden, c.static_dim)
        self.dynamic_lstm = nn.LSTM(2 * c.hidden, c.hidden, batch_first=True)
        self.dynamic_head = nn.Linear(c.hidden, c.dynamic_dim)
        self.static_norm, self.dynamic_norm = FactorNorm(c.static_dim), FactorNorm(c.dynamic_dim)
        self.denoiser = EDMPrecond(net, c.sigma_data, c.noise_label_scale)
        self.prior = LatentDiffusionPrior(c.static_dim + spec.frames * c.dynamic_dim, hidden=c.prior_hidden,
                                          depth=c.prior_depth, sample_steps=c.prior_sample_steps)

    # -- applicability, spaces -------------------------------------------------------------
    @classmethod
    def supports(cls, spec: DataSpec) -> str | None:
        reason = super().supports(spec)
        if reason is None and spec.modality == "video" and (spec.height % 8 or spec.width % 8):
            reason = f"diffsda's U-Nets need frame sides divisible by 8; {spec.name!r} has {spec.height}x{spec.width}"
        return reason

    @staticmethod
    def resolve_space(choice: str, spec: DataSpec) -> Literal["pixel", "latent"]:
        """Pixel space up to 64 px (MUG, TaiChi), VQ latents from 128 px on (VoxCeleb, CelebV-HQ)."""
        if choice == "auto":
            return "latent" if spec.modality == "video" and min(spec.height, spec.width) >= 128 else "pixel"
        if choice == "latent" and spec.modality != "video":
            raise ConfigError("diffsda.space=latent needs video data (the VQ autoencoder is convolutional)")
        return choice  # type: ignore[return-value]

    def _finite_range(self) -> tuple[float, float] | None:
        lo, hi = map(float, self.spec.value_range)
        return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi > lo else None

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data range -> [-1, 1] (unbounded audio features are used as they are)."""
        rng = self._finite_range()
        return x if rng is None else (x - rng[0]) / (rng[1] - rng[0]) * 2 - 1

    def from_unit(self, y: torch.Tensor) -> torch.Tensor:
        rng = self._finite_range()
        return y if rng is None else (y + 1) / 2 * (rng[1] - rng[0]) + rng[0]

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` data -> what the diffusion runs on (pixels in [-1, 1], or normalised latents)."""
        x = self.to_unit(x.float())
        if self.vqae is None:
            return x
        self._require_vqae()
        b, t = x.shape[:2]
        with torch.no_grad():
            z = self.vqae.encode(x.flatten(0, 1))
        z = (z - self.latent_mean[None, :, None, None]) * self.latent_scale
        return z.reshape(b, t, *z.shape[1:])

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        if self.vqae is not None:
            b, t = y.shape[:2]
            z = y.flatten(0, 1) / self.latent_scale + self.latent_mean[None, :, None, None]
            y = self.vqae.decode(z).reshape(b, t, *self.spec_frame_shape())
        return self.from_unit(y)

    def spec_frame_shape(self) -> tuple[int, int, int]:
        return self.spec.channels, self.spec.height, self.spec.width

    # -- latent mode preparation -----------------------------------------------------------
    def _require_vqae(self) -> None:
        if self.vqae is not None and not bool(self.vqae_ready):
            raise ConfigError("diffsda in latent space needs its VQ autoencoder: call method.prepare(train_split) "
                              "before training (the trainer does this), or use --set "
                              "diffsda.space=pixel")

    def prepare(self, train, *, max_frames: int = 4096) -> None:
        """Fit or load the cached VQ autoencoder on ``train`` and the global latent normalisation.

        A no-op in pixel space. ``train`` is a :class:`~seqbench.data.SplitData`; the autoencoder is
        cached per dataset fingerprint and config (:func:`seqbench.nn.load_or_train_vqae`). Latents
        are shifted to zero mean per channel and scaled to std ``sigma_data`` (app. A.2).
        """
        if self.vqae is None:
            return
        device = self.device
        trained = load_or_train_vqae(train, self.spec.fingerprint, self.config.vq_config(), device=device,
                                     value_range=self.spec.value_range)
        self.vqae.load_state_dict(trained.state_dict())
        self.vqae.eval()
        self._fit_latent_normalisation(train, max_frames)

    @torch.no_grad()
    def _fit_latent_normalisation(self, train, max_frames: int) -> None:
        device = self.device
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(len(train), size=min(len(train), max(1, max_frames // self.spec.frames)),
                                  replace=False))
        latents = []
        for start in range(0, len(rows), 16):
            x = self.to_unit(train.clips(rows[start:start + 16]).to(device)).flatten(0, 1)
            latents.append(self.vqae.encode(x).float())
        z = torch.cat(latents)
        mean = z.mean(dim=(0, 2, 3))
        self.latent_mean.copy_(mean)
        self.latent_scale.fill_(self.config.sigma_data / float((z - mean[None, :, None, None]).std()))
        self.vqae_ready.fill_(True)

    def train(self, mode: bool = True) -> "DiffSDA":
        super().train(mode)
        if self.vqae is not None:
            self.vqae.eval()  # frozen: its EMA codebook must not move
        return self

    # -- the model ---------------------------------------------------------------------------
    def semantic(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequential semantic encoder: ``(s [B, S], d [B, T, D])`` for model-space ``x``."""
        h = self.frame_proj(self.frame_encoder(x))  # [B, T, hidden]
        out, _ = self.seq_lstm(h)  # [B, T, 2 * hidden]
        hidden = self.config.hidden
        s = self.static_norm(self.static_head(torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=-1)))
        d = self.dynamic_norm(self.dynamic_head(self.dynamic_lstm(out)[0]))
        return s, d

    @staticmethod
    def conditioning(static: torch.Tensor, dynamic: torch.Tensor) -> torch.Tensor:
        """``a^t = (s, d^t)`` for every frame, flattened to ``[B * T, S + D]``."""
        if static.shape[0] != dynamic.shape[0]:
            raise ValueError(f"static codes for {static.shape[0]} sequences but dynamics for {dynamic.shape[0]}")
        frames = dynamic.shape[1]
        return torch.cat([static[:, None].expand(-1, frames, -1), dynamic], dim=-1).flatten(0, 1)

    def _denoise_fn(self, cond: torch.Tensor):
        def fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return self.denoiser(x, sigma, cond=cond)
        return fn

    def sigmas(self, steps: int | None = None) -> torch.Tensor:
        c = self.config
        return edm_sigma_steps(steps or c.sampler_steps, c.sigma_min, c.sigma_max, c.rho, device=self.device)

    @property
    def nfe(self) -> int:
        """Network evaluations per decoded frame (``2 * sampler_steps - 1``)."""
        return heun_nfe(self.config.sampler_steps)

    def losses(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Eq. 8 with per-frame noise levels, plus the (detached) latent-prior loss."""
        c = self.config
        x0 = self.to_model_space(x)
        s, d = self.semantic(x0)
        b, frames = x0.shape[:2]
        if c.loss_frames is not None and c.loss_frames < frames:
            keys = torch.rand(b, frames, generator=generator, device=generator.device if generator else None)
            pick = keys.argsort(dim=1)[:, :c.loss_frames].to(x0.device)
            x_sel = torch.gather(x0, 1, pick.reshape(b, -1, *([1] * (x0.dim() - 2))).expand(-1, -1, *x0.shape[2:]))
            d_sel = torch.gather(d, 1, pick[..., None].expand(-1, -1, d.shape[-1]))
        else:
            x_sel, d_sel = x0, d
        flat = x_sel.flatten(0, 1)
        sigma = edm_training_sigmas(len(flat), self.p_mean, self.p_std, device=flat.device, generator=generator,
                                    uniform_fraction=c.sigma_uniform, sigma_range=(c.sigma_min, c.sigma_max))
        noise = randn(flat.shape, device=flat.device, dtype=flat.dtype, generator=generator)
        denoise = self.denoiser.loss(flat, sigma, noise, cond=self.conditioning(s, d_sel)).mean()
        prior = self.prior.loss(torch.cat([s, d.flatten(1)], dim=1), generator=generator)
        return {"loss": denoise + c.prior_weight * prior, "denoise": denoise.detach(), "prior": prior.detach()}

    # -- the method contract -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> Factors:
        s, d = self.semantic(self.to_model_space(x))
        return Factors(static=s, dynamic=d)

    def validation_diagnostics(self, batch: Batch) -> dict[str, float]:
        """Factor usage (:func:`seqbench.nn.usage_report`): denoiser ``x_0`` error at sigma 80 (where
        :meth:`decode` starts) and 12 with the true ``(s, d^t)``, ``s`` shuffled and ``d`` shuffled, noise
        fixed by seed 0."""
        x0 = self.to_model_space(batch.x)
        s, d = self.semantic(x0)
        flat = x0.flatten(0, 1)
        noise = randn(flat.shape, device=flat.device, dtype=flat.dtype, generator=torch.Generator().manual_seed(0))

        def error_at(static: torch.Tensor, dynamic: torch.Tensor, sigma: float) -> torch.Tensor:
            sig = torch.full((len(flat),), float(sigma), device=flat.device)
            out = self.denoiser(flat + sigma * noise, sig, cond=self.conditioning(static, dynamic))
            return (out.float() - flat.float()).pow(2).mean()

        return usage_report(error_at, s, d, {"sigma_80": 80.0, "sigma_12": 12.0})

    def grad_clip_groups(self) -> list[list[nn.Parameter]]:
        """The latent prior (trained on detached codes; its gradient norm 1.8-3.4 set the single clip of
        version 1, against 0.3-0.6 for the denoiser) is clipped apart from the autoencoder."""
        prior = {id(p) for p in self.prior.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in prior]
        return [rest, [p for p in self.prior.parameters() if p.requires_grad]]

    @torch.no_grad()
    def generate(self, factors: Factors, x_T: torch.Tensor, *, generator: torch.Generator | None = None,
                 steps: int | None = None) -> torch.Tensor:
        """Alg. 1 from a given ``x_T`` ``[B, T, *frame]`` (model space) -> data-space frames."""
        c = self.config
        b, frames = factors.dynamic.shape[:2]
        cond = self.conditioning(factors.static.to(self.device), factors.dynamic.to(self.device))
        out = edm_heun_sample(self._denoise_fn(cond), x_T.flatten(0, 1).to(self.device), self.sigmas(steps),
                              s_churn=c.s_churn, generator=generator)
        return self.from_model_space(out.reshape(b, frames, *out.shape[1:]))

    @torch.no_grad()
    def invert(self, x: torch.Tensor, factors: Factors | None = None, *, steps: int | None = None) -> torch.Tensor:
        """Alg. 2: the deterministic ODE encoding ``x_0 -> x_T`` (model space) under ``x``'s own codes."""
        x0 = self.to_model_space(x)
        if factors is None:
            factors = Factors(*self.semantic(x0))
        b, frames = x0.shape[:2]
        cond = self.conditioning(factors.static, factors.dynamic)
        x_T = edm_heun_invert(self._denoise_fn(cond), x0.flatten(0, 1), self.sigmas(steps))
        return x_T.reshape(b, frames, *x_T.shape[1:])

    @torch.no_grad()
    def decode(self, factors: Factors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Frames from factors, starting at ``x_T ~ N(0, sigma_max^2 I)`` drawn from ``generator``."""
        b, frames = factors.dynamic.shape[:2]
        x_T = randn((b, frames, *self.frame_shape), device=self.device, generator=generator,
                    per_item=True) * self.config.sigma_max
        return self.generate(factors, x_T, generator=generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The paper's reconstruction: encode, invert ``x`` by the ODE (alg. 2), sample back (alg. 1)."""
        factors = self.encode(x)
        return self.generate(factors, self.invert(x, factors), generator=generator)

    @torch.no_grad()
    def swap(self, x_static: torch.Tensor, x_dynamic: torch.Tensor, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """App. A.4's swap: static of ``x_static``, dynamics of ``x_dynamic``, from the inversion of ``x_dynamic``."""
        a, b = self.encode(x_static), self.encode(x_dynamic)
        return self.generate(a.swap_with(b), self.invert(x_dynamic, b), generator=generator)

    @torch.no_grad()
    def sample(self, n: int, frames: int, which: Literal["static", "dynamic"], *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes from the latent DDIM prior over ``(s, flatten(d))`` (app. A.3)."""
        if which not in ("static", "dynamic"):
            raise ValueError(f"which must be 'static' or 'dynamic', got {which!r}")
        if which == "dynamic" and frames != self.spec.frames:
            raise ValueError(f"diffsda's prior models {self.spec.frames}-frame dynamics; asked for {frames}")
        z = self.prior.sample(n, generator=generator)
        c = self.config
        if which == "static":
            return z[:, :c.static_dim]
        return z[:, c.static_dim:].reshape(n, frames, c.dynamic_dim)

    def train_statistics(self) -> dict[str, float]:
        return {"nfe": float(self.nfe)}


@hookimpl
def seqbench_add_methods() -> list[type[Method]]:
    return [DiffSDA]
