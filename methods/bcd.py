"""BCD: bitrate-controlled diffusion for motion/content disentanglement (seed 002; ICCV 2025; no public code).

Re-implemented from the paper's summary and the project notes; no reference code exists or is
copied. The model, in the order of the paper's pipeline:

* **Per-frame latents.** Every frame is mapped to one token: an ADM residual encoder
  (:class:`~seqbench.nn.unet.UNetEncoder`) on ``p x p`` space-to-depth patches, flattened and
  projected to the transformer width. (The paper encodes frames with a pretrained image
  autoencoder; seqbench has no pretrained weights, so the frame encoder is trained end to end.)
* **T5-style encoder with content queries.** ``K`` learnable query tokens are prepended to the
  ``T`` frame tokens and the sequence runs through a pre-norm transformer with RMSNorm, a GEGLU
  feed-forward and T5's bucketed relative position bias shared by all layers
  (:class:`~seqbench.nn.transformer.Transformer`). The ``K`` query outputs are the clip-wise
  **content** (the static factor, ``K x content_dim`` flattened); the ``T`` frame outputs are the
  per-frame **motion**.
* **Low-bitrate motion quantizer** (the information bottleneck). Each frame's motion is projected
  to ``groups x code_dim`` and quantised group-wise with a codebook of ``num_codes`` entries, so a
  frame carries at most ``bits_per_frame = groups * log2(num_codes)`` bits; content has no such
  limit, so whatever is constant over the clip is cheapest to send through the queries. The
  quantised vectors are the dynamic factor. ``quantizer = "vq"`` is the straight-through VQ with an
  EMA codebook shared by the groups (:class:`~seqbench.nn.quantize.VectorQuantizer`);
  codes that fall out of use are restarted at current motion vectors (``vq_restart``; small
  codebooks trained from scratch collapse otherwise); ``"gumbel"`` the Gumbel-softmax group
  quantizer with one table per group
  (:class:`~seqbench.nn.quantize.GumbelQuantizer`; the notes' unverified reading of the paper).
* **Conditional diffusion denoiser.** A DDPM U-Net (:class:`~seqbench.nn.unet.UNet`) denoises each
  frame, cross-attending to the context ``[content tokens (K), motion token_t]`` (each projected to
  ``context_dim``): the content reaches every frame, a motion token only its own. Loss: the
  denoising MSE plus the quantizer's loss.
* **Autoregressive motion generation.** A small causal transformer
  (:class:`~seqbench.nn.transformer.CausalCodePrior`) models the discrete motion codes frame by
  frame; :meth:`BCD.sample` with ``which="dynamic"`` draws codes from it and looks them up.

Interpretation choices:

* The bitrate is the config pair ``(num_codes, groups)``; ``train_statistics`` reports
  ``bits_per_frame`` and the codebook perplexity (``exp`` of the code-usage entropy over the last
  logging window; the bits actually used are ``groups * log2(perplexity)`` at most).
* The code prior is trained in the same run on *detached* codes (its loss cannot move the encoder)
  and added to ``loss`` as ``prior``; the paper trains its generator on a finished encoder.
* **Model selection** (validation) scores the autoencoder alone: denoising MSE + quantizer loss, the
  prior's NLL reported beside it but not added. The prior's NLL grows with codebook usage (its
  entropy floor is ``log`` of the codes in use), so a sum that includes it rewards a collapsed
  codebook: measured on the quick run (version 1, selection on the sum), the best checkpoint was
  step 1000 of 3000 (perplexity 4.0 of 8, validation sum 1.195 rising to 2.138 at step 3000) while the
  training denoising MSE kept falling (0.165 -> 0.145) and the perplexity rose to 7.4.
* **Commitment** (``vq_beta``, default 0; VQ-VAE uses 0.25). The codebook follows the encoder by
  EMA, and the encoder gets no commitment pull. Measured (version 2, ``vq_beta = 0.25``, quick): the
  commitment gradient into the shared encoder is ~100x the denoiser's (whose only path is the U-Net's
  cross-attention, which starts at zero), so within 100 steps the encoder maps every clip to the same
  content and every frame to the same codes (test content spread = std over clips / mean magnitude
  0.47 at init -> 0.02 at step 100 -> 0.005 at step 3000; motion codes identical for all clips), the
  decoder is unconditional, and reconstruction is worse than the mean clip. ``vq_beta = 0.01``
  collapses the same way (0.027 at step 100); with 0 the spread grows (0.44 -> 1.11 by step 300) and
  codes vary over clips and frames. The Gumbel quantizer collapsed the content as well (0.11 -> 0.007
  in 300 steps) and is left as an option, not the default.
* **Quick learning rate 5e-4** (DiViD's quick profile uses 2e-3). With ``vq_beta = 0`` and 2e-3 the
  runner's quick runs still collapsed by step 500 (content spread 0.0021 at 12 bits/frame, 0.024 at
  1 bit/frame; codebook perplexity 7.5 -> 1.8 over steps 350-650), while the same runs at 5e-4 kept
  0.77 and 0.63. (A run from another initialisation at 2e-3 had not collapsed by step 600, so the
  failure depends on the draw; the lower rate is the measured safe one.)
* The paper has no content prior. So that the judge's sample protocol can run, ``sample(which=
  "static")`` draws from a diagonal Gaussian whose moments are running (EMA) averages of the
  training content codes - a seqbench addition, labelled as such.
* ``prediction = "v"``, ``loss_frames``, ``patch_size`` and clip-shared noise are the CPU economies
  DiViD and DiffSDA use (see :mod:`seqbench.methods.divid`); ``paper`` keeps eps-prediction and all
  frames. Query tokens sit at positions ``0..K-1`` of the relative-position sequence, the frames
  after them (T5 treats a prefix the same way).
* Frames stay in pixel space (``patch_size`` space-to-depth, a larger patch for larger frames); a
  latent mode on the cached VQ autoencoder of :mod:`seqbench.nn.vqae` (as DiffSDA's, fitted in
  ``prepare``) is not implemented yet.

Version 4 (issue "Diffusion members that learn"; the shared fixes of DiViD's version 2):

* **Standardised content** (:class:`~seqbench.nn.FactorNorm`): the denoiser reaches the content
  only through zero-initialised cross-attention, so any auxiliary pull (the commitment loss of
  version 2) collapsed it; standardised over the batch it cannot collapse (regression test: 30 steps
  with ``vq_beta = 0.25`` leave the content spread at 0.52 of its start without the norm, > 2 with
  it). Motion stays the exact codebook vectors (the bottleneck); the spatial transformer
  layer-normalises every context token.
* **EMA over parameters only**, warmed up (:mod:`seqbench.trainer`): version 3's EMA also averaged
  the VQ codebook buffers, so evaluation decoded with a codebook the decoder never saw.
* **The code prior is clipped apart** from the autoencoder (:meth:`BCD.grad_clip_groups`).
* **Quick profile** for 32 px: patch 2, cross-attention at two levels, 3 DDIM steps (at 1200
  training steps the factor-path MSE over DDIM steps 1/2/3/5/10/20 was 0.0157/0.0151/0.0141/
  0.0212/0.0260/0.0285; mean clip 0.0149).

Profiles: ``smoke`` (seconds); ``quick`` (two CPU cores, 32 px synthetic-sprites: patch 2, frame
encoder base 16, transformer width 64, depth 2, K = 2 queries of 32, 4 groups of 8 codes =
12 bits/frame, U-Net base 32 with multipliers 1-2-2 and cross-attention at levels 1-2,
v-prediction, 2 of 8 frames per clip in the loss, 6000 steps of 16 clips at lr 5e-4, DDIM 3 steps;
~4x the cost on 64 px frames). 6000, not 3000: at 3000 the swap probe still rose +10.7 % over the last
quarter (static half +26 %); on synthetic-sprites 6000 steps took swap static 0.231 -> 0.408 and the MSE
0.0040 -> 0.0016 (0.10x the mean clip), on a plateau (+3.1 %) reached as the cosine schedule decayed;
``paper`` (widths of a T5-small encoder - 512 wide, 6 layers, 8 heads -, 16 codes x 4 groups =
16 bits/frame, the ADM U-Net of DiViD's 64 px setting; optimiser as DDPM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.config import MethodConfig
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.method import Batch, Method, ObjectiveMethod
from seqbench.nn.dataspace import from_model_space, to_model_space
from seqbench.nn.diffusion import DDPMSchedule, ddim_sample, ddim_timesteps
from seqbench.nn.distributions import randn
from seqbench.nn.factors import FactorNorm, ddpm_usage_report
from seqbench.nn.quantize import GumbelQuantizer, VectorQuantizer
from seqbench.nn.transformer import CausalCodePrior, Transformer
from seqbench.nn.unet import UNet, UNetEncoder
from seqbench.types import DataSpec, Factors

_QUANTIZERS = ("vq", "gumbel")
_PREDICTIONS = ("eps", "v")


@dataclass
class BCDConfig(MethodConfig):
    """BCD settings; the bitrate is ``groups * log2(num_codes)`` bits per frame."""

    # per-frame latents
    enc_base: int = 64
    enc_mult: tuple[int, ...] = (1, 2, 4)
    enc_res_blocks: int = 1
    enc_channels: int = 4
    patch_size: int = 1
    # T5-style encoder
    dim: int = 512
    depth: int = 6
    heads: int = 8
    mlp_mult: int = 4
    num_queries: int = 4  # K content queries
    content_dim: int = 128  # width of each content query's output (static factor = K * content_dim)
    # motion bottleneck
    num_codes: int = 16
    groups: int = 4
    code_dim: int = 8
    quantizer: str = "vq"  # vq (straight-through, EMA codebook) | gumbel
    vq_beta: float = 0.0  # commitment weight; > 0 collapses the encoder here (module notes, "Commitment")
    vq_restart: float = 1.0  # restart codes assigned < this many vectors per step (EMA count); 0 = off
    gumbel_tau: float = 1.0
    # conditional denoiser
    context_dim: int = 256
    base: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (1, 2, 3)
    num_heads: int = 8
    diffusion_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "eps"
    shared_noise: bool = True
    sampler_steps: int = 50
    loss_frames: int | None = None
    # autoregressive motion prior and content moments
    prior_dim: int = 256
    prior_depth: int = 4
    prior_heads: int = 4
    prior_weight: float = 1.0
    prior_temperature: float = 1.0
    content_momentum: float = 0.99

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(enc_base=8, enc_mult=(1, 2), enc_channels=2, patch_size=4, dim=16, depth=1, heads=2,
                      mlp_mult=2, num_queries=2, content_dim=8, num_codes=4, groups=2, code_dim=4, context_dim=16,
                      base=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), num_heads=2,
                      prediction="v", sampler_steps=3, loss_frames=2, prior_dim=16, prior_depth=1, prior_heads=2,
                      lr=1e-3, batch_size=8, steps=12, checkpoint_every=6, val_every=6, log_every=3),
        "quick": dict(enc_base=16, enc_mult=(1, 2), enc_channels=4, patch_size=2, dim=64, depth=2, heads=4,
                      mlp_mult=2, num_queries=2, content_dim=32, num_codes=8, groups=4, code_dim=8, context_dim=64,
                      base=32, channel_mult=(1, 2, 2), num_res_blocks=1, attn_levels=(1, 2), num_heads=4,
                      prediction="v", sampler_steps=3, loss_frames=2, prior_dim=64, prior_depth=2, prior_heads=4,
                      optimizer="adamw", lr=5e-4, weight_decay=1e-5, grad_clip=1.0, scheduler="cosine",
                      warmup_steps=200, ema_decay=0.999, batch_size=16, steps=6000, checkpoint_every=500,
                      val_every=500, log_every=50),
        "paper": dict(optimizer="adam", lr=1e-4, grad_clip=1.0, warmup_steps=1000, batch_size=16, steps=200_000,
                      ema_decay=0.9999, checkpoint_every=5000, val_every=5000, log_every=100),
    }
    family_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        if self.quantizer not in _QUANTIZERS:
            raise ConfigError(f"bcd.quantizer={self.quantizer!r}: choose one of {', '.join(_QUANTIZERS)}")
        if self.prediction not in _PREDICTIONS:
            raise ConfigError(f"bcd.prediction={self.prediction!r}: choose one of {', '.join(_PREDICTIONS)}")
        if self.num_codes < 2:
            raise ConfigError(f"bcd.num_codes={self.num_codes}: a codebook needs at least 2 codes "
                              f"(1 code carries 0 bits), e.g. --set bcd.num_codes=8")
        for name in ("groups", "code_dim", "dim", "depth", "heads", "num_queries", "content_dim", "context_dim",
                     "enc_base", "base", "patch_size", "prior_dim", "prior_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"bcd.{name}={getattr(self, name)}: must be a positive integer")
        for name, heads in (("dim", self.heads), ("prior_dim", self.prior_heads)):
            if getattr(self, name) % heads:
                raise ConfigError(f"bcd.{name}={getattr(self, name)} does not split into {heads} heads; "
                                  f"choose a multiple of {heads}")
        if not 1 <= self.sampler_steps <= self.diffusion_steps:
            raise ConfigError(f"bcd.sampler_steps={self.sampler_steps}: must be in 1..{self.diffusion_steps}")
        if self.loss_frames is not None and self.loss_frames < 1:
            raise ConfigError(f"bcd.loss_frames={self.loss_frames}: must be positive or None (all frames)")

    @property
    def bits_per_frame(self) -> float:
        """The motion bitrate: ``groups * log2(num_codes)``."""
        return self.groups * math.log2(self.num_codes)


class BCD(ObjectiveMethod):
    """Content queries + bitrate-limited motion codes conditioning a diffusion decoder (module docstring)."""

    name: ClassVar[str] = "bcd"
    # 2: selection without the prior's NLL; 3: no commitment loss (encoder collapse); 4: standardised content,
    # context LayerNorm, trainer EMA warm-up without buffers, prior clipped apart, patch 2 / two attention levels quick
    version: ClassVar[str] = "4"
    Config: ClassVar[type[MethodConfig]] = BCDConfig
    modalities: ClassVar[tuple[str, ...]] = ("video",)
    description: ClassVar[str] = ("Bitrate-controlled diffusion: T5-style encoder with K content queries, low-bitrate "
                                  "group VQ on per-frame motion, cross-attention U-Net denoiser, autoregressive "
                                  "motion-code prior.")
    paper: ClassVar[str] = "Bitrate-controlled diffusion for disentangling motion and content in video (ICCV 2025)"

    config: BCDConfig

    def __init__(self, config: BCDConfig, spec: DataSpec):
        super().__init__(config, spec)  # refuses a spec that supports() rejects
        c = config
        ch = spec.channels
        factor = 2 ** (len(c.channel_mult) - 1) * c.patch_size
        if spec.height % factor or spec.width % factor:
            raise ConfigError(f"bcd: frames {spec.height}x{spec.width} are not divisible by {factor} (patch_size="
                              f"{c.patch_size} x 2^{len(c.channel_mult) - 1} U-Net levels); lower bcd.patch_size or "
                              f"bcd.channel_mult")
        self.frame_encoder = UNetEncoder(ch, c.enc_channels, base=c.enc_base, channel_mult=c.enc_mult,
                                         num_res_blocks=c.enc_res_blocks, patch_size=c.patch_size, middle=False,
                                         flatten=True)
        feat = math.prod(self.frame_encoder.output_shape(spec.height, spec.width))
        self.frame_proj = nn.Linear(feat, c.dim)
        self.queries = nn.Parameter(torch.randn(c.num_queries, c.dim) * 0.02)
        self.encoder = Transformer(c.dim, c.depth, c.heads, mlp_mult=c.mlp_mult, norm="rms", relative_bias=True)
        self.content_head = nn.Linear(c.dim, c.content_dim)
        self.content_norm = FactorNorm(c.content_dim)
        self.motion_head = nn.Linear(c.dim, c.groups * c.code_dim)
        if c.quantizer == "vq":
            self.quantizer: nn.Module = VectorQuantizer(c.num_codes, c.code_dim, beta=c.vq_beta, ema=True,
                                                        channel_dim=-1, groups=c.groups, dead_threshold=c.vq_restart)
        else:
            self.quantizer = GumbelQuantizer(c.groups * c.code_dim, c.num_codes, c.code_dim, groups=c.groups,
                                             tau=c.gumbel_tau, channel_dim=-1)
        self.content_context = nn.Linear(c.content_dim, c.context_dim)
        self.motion_context = nn.Linear(c.groups * c.code_dim, c.context_dim)
        self.unet = UNet(ch, ch, base=c.base, channel_mult=c.channel_mult, num_res_blocks=c.num_res_blocks,
                         attn_levels=c.attn_levels, context_dim=c.context_dim, num_heads=c.num_heads,
                         patch_size=c.patch_size)
        self.schedule = DDPMSchedule.linear(c.diffusion_steps, c.beta_start, c.beta_end)
        self.prior = CausalCodePrior(c.num_codes, c.groups, dim=c.prior_dim, depth=c.prior_depth,
                                     num_heads=c.prior_heads)
        static_dim = c.num_queries * c.content_dim
        self.register_buffer("content_mean", torch.zeros(static_dim))
        self.register_buffer("content_sq", torch.ones(static_dim))  # running E[s^2]
        self._usage: list[torch.Tensor] = []

    @classmethod
    def supports(cls, spec: DataSpec) -> str | None:
        reason = super().supports(spec)
        if reason is None and not all(math.isfinite(float(v)) for v in spec.value_range):
            reason = f"bcd needs a finite value range; {spec.name!r} has {spec.value_range}"
        return reason

    @property
    def bits_per_frame(self) -> float:
        return self.config.bits_per_frame

    # -- value range: data maps linearly onto [-1, 1] ------------------------------------------
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        return to_model_space(x.float(), self.spec.value_range, "tanh")

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        return from_model_space(y, self.spec.value_range, "tanh")

    # -- encoder -----------------------------------------------------------------------------
    def encode_model_space(self, x0: torch.Tensor):
        """``(content [B, K * content_dim], motion quantizer output)`` for model-space clips."""
        b, frames = x0.shape[:2]
        tokens = self.frame_proj(self.frame_encoder(x0))  # [B, T, dim]
        k = self.config.num_queries
        h = self.encoder(torch.cat([self.queries[None].expand(b, -1, -1), tokens], dim=1))
        content = self.content_norm(self.content_head(h[:, :k])).flatten(1)
        return content, self.quantizer(self.motion_head(h[:, k:]))

    def context(self, content: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Per-frame cross-attention context ``[B * T, K + 1, context_dim]`` = ``[content tokens, motion_t]``."""
        if content.shape[0] != motion.shape[0]:
            raise ValueError(f"static codes for {content.shape[0]} clips but dynamics for {motion.shape[0]}")
        c = self.config
        b, frames = motion.shape[:2]
        ctx_c = self.content_context(content.reshape(b, c.num_queries, c.content_dim))
        ctx_m = self.motion_context(motion)
        ctx_c = ctx_c[:, None].expand(-1, frames, -1, -1)
        return torch.cat([ctx_c, ctx_m[:, :, None]], dim=2).flatten(0, 1)

    # -- diffusion ---------------------------------------------------------------------------
    def _noise(self, b: int, frames: int, frame_shape, device, generator: torch.Generator | None) -> torch.Tensor:
        """``[B, T, ...]`` noise; one draw per clip repeated over its frames when ``shared_noise``."""
        draws = 1 if self.config.shared_noise else frames
        n = randn((b, draws, *frame_shape), device=device, generator=generator)
        return n.expand(-1, frames, *frame_shape)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Noise estimate for the samplers (converted from ``v`` under v-prediction)."""
        out = self.unet(x_t, t, context=context).float()
        return out if self.config.prediction == "eps" else self.schedule.eps_from_v(x_t.float(), t, out)

    def losses(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        c = self.config
        x0 = self.to_model_space(x)
        b, frames = x0.shape[:2]
        content, q = self.encode_model_space(x0)
        context = self.context(content, q.quantized).reshape(b, frames, -1, c.context_dim)
        noise = self._noise(b, frames, x0.shape[2:], x0.device, generator)
        if c.loss_frames is not None and c.loss_frames < frames:
            keys = torch.rand(b, frames, generator=generator, device=generator.device if generator else None)
            pick = keys.argsort(dim=1)[:, :c.loss_frames].to(x0.device)
            rows = torch.arange(b, device=x0.device)[:, None]
            x0, noise, context = x0[rows, pick], noise[rows, pick], context[rows, pick]
        k = x0.shape[1]
        t = self.schedule.sample_timesteps(b, device=x0.device, generator=generator)[:, None].expand(-1, k).reshape(-1)
        x0, noise = x0.flatten(0, 1), noise.flatten(0, 1)
        out = self.unet(self.schedule.q_sample(x0, t, noise), t, context=context.flatten(0, 1)).float()
        target = noise if c.prediction == "eps" else self.schedule.v_target(x0, t, noise)
        mse = F.mse_loss(out, target.float())
        prior = self.prior.loss(q.indices if q.indices.dim() == 3 else q.indices[..., None])
        if self.training and torch.is_grad_enabled():
            self._track(content.detach(), q.usage.detach())
        loss = mse + q.loss + c.prior_weight * prior
        return {"loss": loss, "denoise_mse": mse.detach(), "vq": q.loss.detach(), "prior": prior.detach(),
                "perplexity": q.perplexity.detach()}

    @torch.no_grad()
    def _track(self, content: torch.Tensor, usage: torch.Tensor) -> None:
        """Running content moments (the static prior) and code usage since the last log."""
        m = self.config.content_momentum
        self.content_mean.mul_(m).add_(content.mean(0), alpha=1 - m)
        self.content_sq.mul_(m).add_(content.pow(2).mean(0), alpha=1 - m)
        self._usage.append(usage)

    # -- the method contract -----------------------------------------------------------------
    def validation_losses(self, x: torch.Tensor, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The autoencoder's loss (denoising + quantizer; no prior NLL, see the module notes)."""
        out = self.losses(x, generator=generator)
        out["loss"] = out["denoise_mse"] + out["vq"]
        return out

    def validation_diagnostics(self, batch: Batch) -> dict[str, float]:
        """Factor usage (:func:`seqbench.nn.usage_report`) of content and quantised motion: one-step ``x_0``
        error at t = T-1 and 0.7 T, true vs shuffled factors, clip-shared noise fixed by seed 0."""
        factors = self.encode(batch.x)
        x0 = self.to_model_space(batch.x)
        b, frames = x0.shape[:2]
        noise = self._noise(b, frames, x0.shape[2:], x0.device, torch.Generator().manual_seed(0))
        return ddpm_usage_report(self.eps, self.context, self.schedule, x0.flatten(0, 1),
                                 noise.flatten(0, 1).contiguous(), factors.static, factors.dynamic)

    def grad_clip_groups(self) -> list[list[nn.Parameter]]:
        """The code prior (trained on detached codes) is clipped apart from the autoencoder."""
        prior = {id(p) for p in self.prior.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in prior]
        return [rest, [p for p in self.prior.parameters() if p.requires_grad]]

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Motion vectors ``[B, T, groups * code_dim]`` of integer codes ``[B, T, groups]`` (exact codebook rows)."""
        if self.config.quantizer == "vq" and self.config.groups == 1:
            codes = codes[..., 0]
        return self.quantizer.lookup(codes).float()

    def encode(self, x: torch.Tensor) -> Factors:
        """Content and the exact code vectors of the motion (no straight-through rounding residue)."""
        content, q = self.encode_model_space(self.to_model_space(x))
        codes = q.indices if q.indices.dim() == 3 else q.indices[..., None]
        return Factors(static=content, dynamic=self.code_vectors(codes))

    @property
    def nfe(self) -> int:
        """Network evaluations per decoded frame (DDIM)."""
        return len(ddim_timesteps(self.config.diffusion_steps, self.config.sampler_steps))

    @torch.no_grad()
    def decode(self, factors: Factors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Frames from ``(content, motion)`` by deterministic DDIM from clip noise drawn from ``generator``."""
        static, dynamic = factors.static.to(self.device).float(), factors.dynamic.to(self.device).float()
        b, frames = dynamic.shape[:2]
        frame_shape = (self.spec.channels, self.spec.height, self.spec.width)
        x_T = self._noise(b, frames, frame_shape, self.device, generator).flatten(0, 1)
        context = self.context(static, dynamic)
        out = ddim_sample(lambda x, t: self.eps(x, t, context), x_T, self.schedule, self.config.sampler_steps,
                          clip=(-1.0, 1.0))
        return self.from_model_space(out.reshape(b, frames, *frame_shape))

    @torch.no_grad()
    def sample(self, n: int, frames: int, which: Literal["static", "dynamic"], *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Motion: codes from the autoregressive prior, looked up. Content: the running diagonal Gaussian."""
        if which == "dynamic":
            codes = self.prior.sample(n, frames, generator=generator, temperature=self.config.prior_temperature)
            return self.code_vectors(codes)
        if which == "static":
            eps = randn((n, self.content_mean.numel()), device=self.device, generator=generator)
            std = (self.content_sq - self.content_mean ** 2).clamp(min=1e-8).sqrt()
            return self.content_mean + std * eps
        raise ValueError(f"bcd.sample(which={which!r}): choose 'static' or 'dynamic'")

    def train_statistics(self) -> dict[str, float]:
        """Codebook perplexity over the steps since the last log, bits/frame and NFE."""
        stats = {"bits_per_frame": float(self.bits_per_frame), "nfe": float(self.nfe)}
        if self._usage:
            usage = torch.stack(self._usage).mean(0)
            self._usage.clear()
            entropy = -(usage * (usage + 1e-10).log()).sum()
            stats["codebook_perplexity"] = float(entropy.exp())
            stats["codes_used"] = float((usage > 0).sum())
        return stats


@hookimpl
def seqbench_add_methods() -> list[type[Method]]:
    return [BCD]
