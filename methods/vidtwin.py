"""VidTwin-style video autoencoder with decoupled structure and dynamics latents (seed 004).

Re-implemented from the paper's description and the project notes (the MIT reference,
``microsoft/VidTok`` vidtwin/, was not consulted for code). Scaled to the benchmark's frames:

* **Backbone.** Every frame is cut into ``p x p`` patches (patch ``1 x p x p``: no temporal
  patching) and linearly embedded (:class:`~seqbench.nn.transformer.PatchEmbed`); a learned
  spatial position embedding and a sinusoidal frame embedding are added, and a spatio-temporal
  transformer (joint attention over all ``T h w`` tokens, pre-norm blocks) gives the encoder latent
  ``z [B, T, h, w, D]``.
* **Structure latent** (low-frequency content and slow motion). At each spatial position a Q-Former
  (:class:`~seqbench.nn.transformer.QFormer`) with ``structure_queries`` learned queries reads the
  ``T`` tokens of that position; the query outputs are downsampled by a strided conv
  (``structure_down``) to ``structure_channels`` mean and log-variance maps:
  ``[B, Q, c_s, h', w']``. The static factor is its mean, flattened.
* **Dynamics latent** (fast, fine motion). ``z`` is downsampled by a strided conv
  (``dynamics_down``), then averaged over height and, separately, over width; a motion head maps
  each to ``dynamics_channels`` mean/log-variance: ``[B, T, w'', c_d]`` and ``[B, T, h'', c_d]``. The
  per-frame dynamic factor is both, flattened and concatenated.
* **Decoder.** The structure latent is upsampled back to ``h x w`` (transposed conv) and resampled
  from ``Q`` query slots to ``T`` frames (linear interpolation; broadcast when ``Q = 1``); each
  dynamics latent is embedded, upsampled along its kept axis and broadcast along the averaged one.
  The decoder input is the *sum* structure + dynamics(width) + dynamics(height) + positions; a
  transformer of the encoder's shape and a linear patch head give the frames.
* **Loss.** ``rec + perceptual_weight * grad + kl_weight * (KL_structure + KL_dynamics)`` with
  ``kl_weight = 0.001`` (the paper's). Training decodes reparameterised samples; ``encode`` returns
  posterior means and ``decode`` is deterministic.

Interpretation choices (honest list):

* **No LPIPS and no GAN.** LPIPS needs downloaded VGG/AlexNet weights, which seqbench does not
  fetch. In its place (same weight, 0.05) is an L1 loss on image gradients (finite differences
  along x and y), a weight-free term that, like LPIPS, penalises blur of edges more than plain L1.
  The paper's GAN term (0.05 from step 20001) is left out: no run here reaches that step.
* **KL normalisation.** Each KL is summed over latent elements and divided by the number of input
  pixel values, matching a reconstruction loss averaged per pixel value (the LDM convention of
  summing both per clip, divided through by a constant).
* ``rec_loss`` is ``l1`` (the default and ``paper``; LDM-style autoencoder losses are L1) or
  ``mse`` (``quick``): on sprites, ~85% background, L1's median target collapses a short CPU run
  to all-background frames (measured: after 300 quick steps the L1 model's output never exceeds
  0.02 in [0, 1], while MSE reconstructs the full range and reaches the mean-image MSE by step 600).
* **Mapping to the benchmark.** Structure -> static, dynamics -> per-frame dynamic. With ``Q > 1``
  the structure latent can carry slow motion trends (as in the paper); the CPU profiles use
  ``Q = 1`` so the static factor is one time-invariant map, the paper profile the paper's 16.
* **Compression rate** = (structure + dynamics latent elements) / (input elements), the paper's
  headline figure (0.20% at 16 x 224 x 224): the :attr:`VidTwin.compression_rate` property and the
  ``compression_rate`` entry of ``train_statistics`` (logged to MLflow with the training curves).
  The ``paper`` profile at 16 x 224 x 224 gives 0.33%, not 0.20%: the notes' structure latent alone
  (16 queries x 8 x 7 x 7) is 0.26% of the input, so one of the recorded sizes differs from the
  configuration behind the paper's figure; the sizes are kept as recorded.
* **Prior.** The KL terms are to ``N(0, I)``, so :meth:`VidTwin.sample` draws both factors from it.
  With ``kl_weight = 0.001`` the posterior is far from that prior; samples are the paper's model's,
  not a fitted one.

Profiles: ``smoke`` (seconds); ``quick`` (two CPU cores, 64 px 8-frame clips: patch 8 - an 8 x 8
grid -, width 64, 2 + 2 layers of divided space-time attention with 2 heads, Q = 1, c_s = c_d = 8,
downsampling 2, MSE reconstruction, 3000 steps of 16 clips, AdamW 2e-3 with warm-up and cosine decay; about 0.8x DiViD's
quick steps/s on the same CPU, compression rate 0.65%); ``paper`` (hidden 768, depth 16, 12 heads,
16 queries, 8 + 8 channels, downsampling 2 - 14 -> 7 at 224 px -; patch 16 as the paper's,
which at 64 px is a 4 x 4 grid).
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
from seqbench.method import Method, ObjectiveMethod
from seqbench.nn.dataspace import from_model_space, to_model_space
from seqbench.nn.distributions import kl_normal, randn, reparameterize
from seqbench.nn.embeddings import sinusoidal_embedding
from seqbench.nn.transformer import PatchEmbed, PatchHead, QFormer, SpaceTimeTransformer
from seqbench.types import DataSpec, Factors

_REC_LOSSES = ("l1", "mse")


@dataclass
class VidTwinConfig(MethodConfig):
    """VidTwin settings; defaults are the paper's backbone (hidden 768, depth 16) at patch 16."""

    patch_size: int = 16
    dim: int = 768
    enc_depth: int = 16
    dec_depth: int = 16
    heads: int = 12
    mlp_mult: int = 4
    attention: str = "joint"  # joint (all T h w tokens) | divided (temporal then spatial, TimeSformer)
    structure_queries: int = 16
    qformer_depth: int = 1
    structure_channels: int = 8
    structure_down: int = 2
    dynamics_channels: int = 8
    dynamics_down: int = 2
    kl_weight: float = 1e-3  # the paper's
    rec_loss: str = "l1"
    perceptual_weight: float = 0.05  # the paper's LPIPS weight, here on the image-gradient loss

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(patch_size=8, dim=16, enc_depth=1, dec_depth=1, heads=2, mlp_mult=2, structure_queries=1,
                      structure_channels=4, dynamics_channels=4, lr=2e-3, batch_size=8, steps=12,
                      checkpoint_every=6, val_every=6, log_every=3),
        "quick": dict(patch_size=8, dim=64, enc_depth=2, dec_depth=2, heads=2, mlp_mult=2, attention="divided",
                      structure_queries=1, rec_loss="mse",
                      optimizer="adamw", lr=2e-3, weight_decay=1e-5, grad_clip=1.0, scheduler="cosine",
                      warmup_steps=200, batch_size=16, steps=3000, checkpoint_every=500, val_every=200,
                      log_every=50),
        "paper": dict(optimizer="adamw", lr=1e-4, betas=(0.9, 0.99), grad_clip=1.0, warmup_steps=1000,
                      batch_size=8, steps=200_000, checkpoint_every=5000, val_every=5000, log_every=100),
    }
    family_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        if self.attention not in ("joint", "divided"):
            raise ConfigError(f"vidtwin.attention={self.attention!r}: choose joint or divided")
        if self.rec_loss not in _REC_LOSSES:
            raise ConfigError(f"vidtwin.rec_loss={self.rec_loss!r}: choose one of {', '.join(_REC_LOSSES)}")
        for name in ("patch_size", "dim", "enc_depth", "dec_depth", "heads", "structure_queries", "qformer_depth",
                     "structure_channels", "structure_down", "dynamics_channels", "dynamics_down"):
            if getattr(self, name) < 1:
                raise ConfigError(f"vidtwin.{name}={getattr(self, name)}: must be a positive integer")
        if self.dim % self.heads:
            raise ConfigError(f"vidtwin.dim={self.dim} does not split into heads={self.heads}; "
                              f"choose a multiple of {self.heads}")
        if self.kl_weight < 0 or self.perceptual_weight < 0:
            raise ConfigError("vidtwin.kl_weight and vidtwin.perceptual_weight must be >= 0")


def image_gradient_loss(error: torch.Tensor) -> torch.Tensor:
    """L1 between the x and y finite differences of prediction and target, from ``error = pred - target``
    ``[..., H, W]`` (differences are linear, so one difference of the error is both at once)."""
    return ((error[..., :, 1:] - error[..., :, :-1]).abs().mean()
            + (error[..., 1:, :] - error[..., :-1, :]).abs().mean())


class VidTwin(ObjectiveMethod):
    """Structure latent (Q-Former over time) + height/width-averaged dynamics latents (module docstring)."""

    name: ClassVar[str] = "vidtwin"
    version: ClassVar[str] = "1"
    Config: ClassVar[type[MethodConfig]] = VidTwinConfig
    modalities: ClassVar[tuple[str, ...]] = ("video",)
    description: ClassVar[str] = ("VidTwin-style video VAE: spatio-temporal transformer, structure latent from a "
                                  "per-position Q-Former over time (static), dynamics latents averaged over height "
                                  "and width (dynamic), KL 0.001, L1 + image-gradient loss.")
    paper: ClassVar[str] = "VidTwin: Video VAE with Decoupled Structure and Dynamics (CVPR 2025)"

    config: VidTwinConfig

    def __init__(self, config: VidTwinConfig, spec: DataSpec):
        super().__init__(config, spec)  # refuses a spec that supports() rejects
        c = config
        p = c.patch_size
        if spec.height % p or spec.width % p:
            raise ConfigError(f"vidtwin.patch_size={p}: frames {spec.height}x{spec.width} do not split into "
                              f"{p}x{p} patches; choose a divisor of both sides")
        self.grid = (spec.height // p, spec.width // p)
        for name, down in (("structure_down", c.structure_down), ("dynamics_down", c.dynamics_down)):
            if self.grid[0] % down or self.grid[1] % down:
                raise ConfigError(f"vidtwin.{name}={down}: the {self.grid[0]}x{self.grid[1]} patch grid does not "
                                  f"downsample by {down}; choose a divisor of both or a smaller patch_size")
        h, w = self.grid
        self.patch_embed = PatchEmbed(spec.channels, p, c.dim)
        self.pos_embed = nn.Parameter(torch.randn(h, w, c.dim) * 0.02)
        self.encoder = SpaceTimeTransformer(c.dim, c.enc_depth, c.heads, attention=c.attention, mlp_mult=c.mlp_mult)
        # structure: per-position Q-Former over time, strided conv to mean/logvar maps
        self.qformer = QFormer(c.dim, c.structure_queries, depth=c.qformer_depth, num_heads=c.heads)
        self.structure_head = nn.Conv2d(c.dim, 2 * c.structure_channels, c.structure_down, c.structure_down)
        self.structure_up = nn.ConvTranspose2d(c.structure_channels, c.dim, c.structure_down, c.structure_down)
        # dynamics: downsample, average over one axis, motion head per axis
        self.dynamics_down = nn.Conv2d(c.dim, c.dim, c.dynamics_down, c.dynamics_down)
        self.motion_head_w = nn.Linear(c.dim, 2 * c.dynamics_channels)  # latent averaged over height
        self.motion_head_h = nn.Linear(c.dim, 2 * c.dynamics_channels)  # latent averaged over width
        self.dynamics_embed_w = nn.Linear(c.dynamics_channels, c.dim)
        self.dynamics_embed_h = nn.Linear(c.dynamics_channels, c.dim)
        self.decoder = SpaceTimeTransformer(c.dim, c.dec_depth, c.heads, attention=c.attention, mlp_mult=c.mlp_mult)
        self.head = PatchHead(c.dim, spec.channels, p)
        self.structure_shape = (c.structure_queries, c.structure_channels, h // c.structure_down,
                                w // c.structure_down)
        self.dynamics_sizes = (w // c.dynamics_down, h // c.dynamics_down)  # (averaged over height, over width)

    @classmethod
    def supports(cls, spec: DataSpec) -> str | None:
        reason = super().supports(spec)
        if reason is None and not all(math.isfinite(float(v)) for v in spec.value_range):
            reason = f"vidtwin needs a finite value range; {spec.name!r} has {spec.value_range}"
        return reason

    # -- sizes -------------------------------------------------------------------------------
    @property
    def static_dim(self) -> int:
        return math.prod(self.structure_shape)

    @property
    def dynamic_dim(self) -> int:
        return sum(self.dynamics_sizes) * self.config.dynamics_channels

    @property
    def compression_rate(self) -> float:
        """Latent elements (structure + dynamics) over input elements for a clip of ``spec.frames``."""
        s = self.spec
        return (self.static_dim + s.frames * self.dynamic_dim) / (s.frames * s.channels * s.height * s.width)

    # -- value range: data maps linearly onto [-1, 1] ------------------------------------------
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        return to_model_space(x.float(), self.spec.value_range, "tanh")

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        return from_model_space(y, self.spec.value_range, "tanh")

    # -- the model ---------------------------------------------------------------------------
    def _positions(self, frames: int, like: torch.Tensor) -> torch.Tensor:
        """``[T, h, w, D]``: learned spatial plus sinusoidal frame embeddings."""
        time = sinusoidal_embedding(torch.arange(frames, device=like.device), self.config.dim).to(like.dtype)
        return self.pos_embed[None] + time[:, None, None]

    def posteriors(self, x0: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Gaussian posteriors (mean, logvar) of ``structure`` ``[B, Q, c_s, h', w']``, ``dyn_w``
        ``[B, T, w'', c_d]`` (averaged over height) and ``dyn_h`` ``[B, T, h'', c_d]``."""
        c = self.config
        b, frames = x0.shape[:2]
        h, w = self.grid
        tokens = self.patch_embed(x0.flatten(0, 1)).reshape(b, frames, h, w, c.dim) + self._positions(frames, x0)
        z = self.encoder(tokens)  # [B, T, h, w, D]
        per_position = z.permute(0, 2, 3, 1, 4).reshape(b * h * w, frames, c.dim)
        slots = self.qformer(per_position).reshape(b, h, w, c.structure_queries, c.dim)
        maps = slots.permute(0, 3, 4, 1, 2).reshape(b * c.structure_queries, c.dim, h, w)
        stats = self.structure_head(maps).reshape(b, c.structure_queries, 2, *self.structure_shape[1:])
        s_mean, s_logvar = stats.unbind(2)
        down = self.dynamics_down(z.reshape(b * frames, h, w, c.dim).permute(0, 3, 1, 2))  # [BT, D, h'', w'']
        w_mean, w_logvar = self.motion_head_w(down.mean(2).transpose(1, 2)).chunk(2, dim=-1)
        h_mean, h_logvar = self.motion_head_h(down.mean(3).transpose(1, 2)).chunk(2, dim=-1)
        unflat = lambda v: v.reshape(b, frames, *v.shape[1:])  # noqa: E731
        return {"structure": (s_mean, s_logvar.clamp(-20, 10)),
                "dyn_w": (unflat(w_mean), unflat(w_logvar).clamp(-20, 10)),
                "dyn_h": (unflat(h_mean), unflat(h_logvar).clamp(-20, 10))}

    def _split_dynamic(self, dynamic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, frames = dynamic.shape[:2]
        n_w, n_h = self.dynamics_sizes
        c_d = self.config.dynamics_channels
        dyn_w, dyn_h = dynamic.split([n_w * c_d, n_h * c_d], dim=-1)
        return dyn_w.reshape(b, frames, n_w, c_d), dyn_h.reshape(b, frames, n_h, c_d)

    def decode_model_space(self, structure: torch.Tensor, dyn_w: torch.Tensor, dyn_h: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, T, C, H, W]`` (model space) from the three latents."""
        c = self.config
        b, frames = dyn_w.shape[:2]
        h, w = self.grid
        q = structure.shape[1]
        emb = self.structure_up(structure.flatten(0, 1)).reshape(b, q, c.dim, h * w)  # [B, Q, D, hw]
        if q == 1:
            emb = emb.expand(-1, frames, -1, -1)
        else:  # Q query slots -> T frames
            emb = F.interpolate(emb.permute(0, 2, 3, 1).reshape(b, c.dim * h * w, q), size=frames, mode="linear",
                                align_corners=True).reshape(b, c.dim, h * w, frames).permute(0, 3, 1, 2)
        emb = emb.reshape(b, frames, c.dim, h, w).permute(0, 1, 3, 4, 2)  # [B, T, h, w, D]
        ew = self.dynamics_embed_w(dyn_w).repeat_interleave(c.dynamics_down, dim=2)[:, :, None]  # [B, T, 1, w, D]
        eh = self.dynamics_embed_h(dyn_h).repeat_interleave(c.dynamics_down, dim=2)[:, :, :, None]  # [B, T, h, 1, D]
        tokens = emb + ew + eh + self._positions(frames, emb)
        out = self.decoder(tokens).reshape(b * frames, h, w, c.dim)
        return self.head(out).reshape(b, frames, self.spec.channels, self.spec.height, self.spec.width)

    def losses(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Reconstruction (L1 or MSE) + weight * image-gradient L1 + kl_weight * (KL_s + KL_d)."""
        c = self.config
        x0 = self.to_model_space(x)
        post = self.posteriors(x0)
        samples = {k: reparameterize(m, lv, generator) for k, (m, lv) in post.items()}
        recon = self.decode_model_space(samples["structure"], samples["dyn_w"], samples["dyn_h"])
        error = recon - x0
        rec = error.abs().mean() if c.rec_loss == "l1" else error.pow(2).mean()
        grad = image_gradient_loss(error)
        pixels = x0.numel()
        kl_s = kl_normal(*post["structure"]).sum() / pixels
        kl_d = (kl_normal(*post["dyn_w"]).sum() + kl_normal(*post["dyn_h"]).sum()) / pixels
        loss = rec + c.perceptual_weight * grad + c.kl_weight * (kl_s + kl_d)
        return {"loss": loss, "rec": rec.detach(), "grad": grad.detach(), "kl_structure": kl_s.detach(),
                "kl_dynamics": kl_d.detach()}

    # -- the method contract -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> Factors:
        post = self.posteriors(self.to_model_space(x))
        dynamic = torch.cat([post["dyn_w"][0].flatten(2), post["dyn_h"][0].flatten(2)], dim=-1)
        return Factors(static=post["structure"][0].flatten(1), dynamic=dynamic)

    @torch.no_grad()
    def decode(self, factors: Factors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Deterministic: the decoder applied to the given (mean) latents; clipped to the value range."""
        static, dynamic = factors.static.to(self.device).float(), factors.dynamic.to(self.device).float()
        if static.shape[0] != dynamic.shape[0]:
            raise ValueError(f"static codes for {static.shape[0]} clips but dynamics for {dynamic.shape[0]}")
        dyn_w, dyn_h = self._split_dynamic(dynamic)
        out = self.decode_model_space(static.reshape(-1, *self.structure_shape), dyn_w, dyn_h)
        return self.from_model_space(out.clamp(-1, 1))

    @torch.no_grad()
    def sample(self, n: int, frames: int, which: Literal["static", "dynamic"], *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws from the KL prior ``N(0, I)`` of either latent."""
        if which == "static":
            return randn((n, self.static_dim), device=self.device, generator=generator)
        if which == "dynamic":
            return randn((n, frames, self.dynamic_dim), device=self.device, generator=generator)
        raise ValueError(f"vidtwin.sample(which={which!r}): choose 'static' or 'dynamic'")

    def train_statistics(self) -> dict[str, float]:
        return {"compression_rate": self.compression_rate}


@hookimpl
def seqbench_add_methods() -> list[type[Method]]:
    return [VidTwin]
