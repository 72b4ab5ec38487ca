"""A diffusion prior over the codes of a trained encoder, for unconditional static/dynamic samples.

DiffSDA samples new factors with a separate latent DDIM (seed 003 app. A.3, table 5): the encoder's
deterministic codes ``z = (s, flatten(d^{1:V}))`` are modelled by an eps-predicting DDPM with a
linear beta schedule 1e-5..1e-2 over 1000 steps and a 10-layer MLP with LayerNorm, SiLU and input
skips (:class:`~seqbench.nn.mlp.MLPDenoiser`); sampling runs DDIM. A static swap is then
``(sampled s, real d)`` and a dynamic swap ``(real s, sampled d)``.

The codes have whatever scale the encoder gives them, while the schedule assumes roughly
unit-variance data, so codes are standardised per dimension with running statistics kept in
buffers (saved with the model, frozen in eval mode) - DiffAE normalises its latents the same way.
DDIM's ``x_0`` predictions are clamped to ``+-clip`` standard deviations (5 by default): at the
first steps ``sqrt(abar_t)`` is ~0.08, so a slightly wrong ``eps`` early in training would otherwise
throw samples far outside the code distribution (the image-space analogue is clipping to [-1, 1]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import DDPMSchedule, ddim_sample
from .distributions import randn
from .mlp import MLPDenoiser

__all__ = ["RunningStandardizer", "LatentDiffusionPrior"]


class RunningStandardizer(nn.Module):
    """Per-dimension ``(z - mean) / std`` with running statistics updated in training mode."""

    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        z = z.detach().float().reshape(-1, self.mean.numel())
        if len(z) < 2:
            return
        mean, var = z.mean(0), z.var(0)
        if int(self.count) == 0:
            self.mean.copy_(mean)
            self.var.copy_(var)
        else:
            self.mean.lerp_(mean, self.momentum)
            self.var.lerp_(var, self.momentum)
        self.count += 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(z)
        return (z - self.mean) / (self.var + self.eps).sqrt()

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * (self.var + self.eps).sqrt() + self.mean


class LatentDiffusionPrior(nn.Module):
    """eps-prediction DDPM over ``dim``-d vectors; DDIM sampling with ``sample_steps`` steps."""

    def __init__(self, dim: int, *, hidden: int = 512, depth: int = 10, num_steps: int = 1000,
                 beta_start: float = 1e-5, beta_end: float = 1e-2, sample_steps: int = 50,
                 clip: float | None = 5.0):
        super().__init__()
        self.dim, self.sample_steps, self.clip = dim, sample_steps, clip
        self.schedule = DDPMSchedule.linear(num_steps, beta_start, beta_end)
        self.norm = RunningStandardizer(dim)
        self.net = MLPDenoiser(dim, hidden=hidden, depth=depth, skip_input=True)

    def loss(self, z: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simple DDPM loss (DiffSDA eq. 11) on detached codes ``z`` ``[N, dim]``."""
        x0 = self.norm(z.detach().float())
        t = self.schedule.sample_timesteps(len(x0), device=x0.device, generator=generator)
        noise = randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return F.mse_loss(self.net(self.schedule.q_sample(x0, t, noise), t), noise)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """``n`` new code vectors ``[n, dim]`` (DDIM, deterministic given the generator's ``x_T``)."""
        device = self.norm.mean.device
        x_T = randn((n, self.dim), device=device, generator=generator)
        clip = (-self.clip, self.clip) if self.clip else None
        x0 = ddim_sample(lambda x, t: self.net(x, t), x_T, self.schedule, steps or self.sample_steps, clip=clip)
        return self.norm.inverse(x0)
