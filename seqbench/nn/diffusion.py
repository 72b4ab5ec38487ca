"""Noise schedules, samplers and deterministic inversion for the diffusion methods.

Two parameterisations, each with its sampler family:

* **Discrete DDPM** (Ho et al. 2020): a beta schedule over ``T`` steps, the network predicts the
  noise ``eps``. :func:`ddpm_sample` is the 1000-step ancestral sampler; :func:`ddim_sample` the
  few-step DDIM sampler (Song et al. 2021, eq. 12; ``eta = 0`` is deterministic) and
  :func:`ddim_invert` runs the deterministic DDIM update backwards, ``x_0 -> x_T``.
* **EDM** (Karras et al. 2022): continuous noise levels ``sigma``, the preconditioned denoiser
  ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` (:class:`EDMPrecond`, EDM table 1),
  log-normal training sigmas and the loss weight ``lambda(sigma)``, the Heun sampler of EDM alg. 2
  with the step count as a setting (``N`` steps cost ``2N - 1`` network evaluations; DiffSDA's 63
  NFE is ``N = 32``) and the probability-flow ODE run forwards for inversion (DiffSDA alg. 2).

Model callables are plain functions so the samplers know nothing about conditioning:
``eps_fn(x_t, t)`` with integer steps ``t`` ``[N]``, ``denoise_fn(x, sigma)`` with ``sigma`` ``[N]``,
for ``x`` of any shape with batch first. Noise is drawn through ``noise_fn(shape)`` when given
(DiViD shares one noise image across the frames of a clip), otherwise from ``generator`` on the
generator's device and moved, so a seeded CPU generator gives the same samples on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .distributions import randn

__all__ = [
    "DDPMSchedule", "ddpm_sample", "ddim_timesteps", "ddim_sample", "ddim_invert",
    "EDMConfig", "edm_preconditioning", "edm_loss_weight", "edm_training_sigmas", "edm_sigma_steps",
    "heun_nfe", "edm_heun_sample", "edm_heun_invert", "EDMPrecond",
]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseFn = Callable[[Sequence[int]], torch.Tensor]


def _bcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[N]`` -> ``[N, 1, ..., 1]`` matching ``like``'s rank, device and dtype."""
    return values.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _noise(shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None,
           noise_fn: NoiseFn | None) -> torch.Tensor:
    if noise_fn is not None:
        return noise_fn(shape).to(device=like.device, dtype=like.dtype)
    return randn(shape, device=like.device, dtype=like.dtype, generator=generator)


# ---------------------------------------------------------------------------------------------
# Discrete DDPM
# ---------------------------------------------------------------------------------------------
class DDPMSchedule:
    """A discrete variance schedule ``beta_1..beta_T`` and the quantities derived from it.

    Held in float64 on the CPU; lookups return tensors on the query's device and dtype.
    ``t`` is 0-based: ``alphas_cumprod[0] = 1 - beta_1``.
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with values in (0, 1)")
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.alphas_cumprod_prev = prev
        # Posterior q(x_{t-1} | x_t, x_0) (Ho et al. eq. 6-7).
        self.posterior_variance = betas * (1.0 - prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_x0 = betas * prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_xt = (1.0 - prev) * (1.0 - betas).sqrt() / (1.0 - self.alphas_cumprod)

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DDPMSchedule":
        """Linear betas (Ho et al.: 1e-4..0.02 over 1000 steps; DiffSDA's latent prior: 1e-5..1e-2)."""
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))

    @classmethod
    def cosine(cls, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "DDPMSchedule":
        """Cosine schedule of Nichol & Dhariwal 2021 (eq. 17), betas clipped at ``max_beta``."""
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return cls((1 - f[1:] / f[:-1]).clamp(1e-8, max_beta))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def at(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``table[t]`` broadcast against ``like`` (``t`` is ``[N]`` integer steps)."""
        return _bcast(table[t.long().cpu()], like)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (Ho et al. eq. 4)."""
        abar = self.at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        abar = self.at(self.alphas_cumprod, t, x_t)
        return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (Salimans & Ho 2022), the v-prediction target."""
        abar = self.at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def eps_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The noise a v-prediction implies: ``eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t``."""
        abar = self.at(self.alphas_cumprod, t, x_t)
        return abar.sqrt() * v + (1 - abar).sqrt() * x_t

    def sample_timesteps(self, n: int, *, device: torch.device | str | None = None,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` uniform training steps in ``[0, T)``."""
        gen_device = generator.device if generator is not None else device
        t = torch.randint(0, self.num_steps, (n,), generator=generator, device=gen_device)
        return t.to(device) if device is not None else t


def _steps_tensor(t: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), t, device=like.device, dtype=torch.long)


def _clip(x0: torch.Tensor, clip: tuple[float, float] | None) -> torch.Tensor:
    return x0.clamp(*clip) if clip is not None else x0


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: DDPMSchedule, *,
                generator: torch.Generator | None = None, noise_fn: NoiseFn | None = None,
                clip: tuple[float, float] | None = None) -> torch.Tensor:
    """Ancestral sampling through all ``T`` steps (Ho et al. alg. 2, posterior variance ``beta~_t``).

    ``clip`` clamps each ``x_0`` prediction (e.g. ``(-1, 1)`` for images). ``T`` network evaluations.
    """
    x = x_T
    for t in range(schedule.num_steps - 1, -1, -1):
        steps = _steps_tensor(t, x)
        x0 = _clip(schedule.predict_x0(x, steps, eps_fn(x, steps)), clip)
        mean = schedule.at(schedule.posterior_mean_x0, steps, x) * x0 + schedule.at(schedule.posterior_mean_xt, steps, x) * x
        if t > 0:
            x = mean + schedule.at(schedule.posterior_variance, steps, x).sqrt() * _noise(x.shape, x, generator, noise_fn)
        else:
            x = mean
    return x


def ddim_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """``num_steps`` steps from ``T - 1`` down to ``0``, evenly spaced (both ends included)."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"DDIM needs 1..{num_train_steps} steps, got {num_steps}")
    if num_steps == 1:
        return [num_train_steps - 1]
    grid = torch.linspace(num_train_steps - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()
    return list(dict.fromkeys(grid))


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: DDPMSchedule, num_steps: int, *, eta: float = 0.0,
                generator: torch.Generator | None = None, noise_fn: NoiseFn | None = None,
                clip: tuple[float, float] | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12): ``num_steps`` evaluations from ``x_T`` at step ``T - 1`` to ``x_0``.

    ``x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - s^2) eps_hat + s z`` with
    ``s = eta * sqrt((1 - abar_t') / (1 - abar_t)) * sqrt(1 - abar_t / abar_t')``; the last step goes to
    ``abar = 1`` (the clean sample). ``eta = 0`` is deterministic, ``eta = 1`` matches DDPM's variance.
    """
    timesteps = ddim_timesteps(schedule.num_steps, num_steps)
    one = torch.ones(1, dtype=torch.float64)
    x = x_T
    for i, t in enumerate(timesteps):
        steps = _steps_tensor(t, x)
        eps = eps_fn(x, steps)
        abar = schedule.alphas_cumprod[t]
        abar_prev = schedule.alphas_cumprod[timesteps[i + 1]] if i + 1 < len(timesteps) else one[0]
        x0 = _clip((x - (1 - abar).sqrt() * eps) / abar.sqrt(), clip)
        if clip is not None:  # keep eps consistent with the clipped x0 (as in the DDIM reference)
            eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        sigma = eta * ((1 - abar_prev) / (1 - abar)).sqrt() * (1 - abar / abar_prev).sqrt()
        x = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        if eta > 0 and i + 1 < len(timesteps):
            x = x + sigma * _noise(x.shape, x, generator, noise_fn)
    return x


@torch.no_grad()
def ddim_invert(eps_fn: EpsFn, x_0: torch.Tensor, schedule: DDPMSchedule, num_steps: int) -> torch.Tensor:
    """Deterministic DDIM run backwards: clean ``x_0`` -> ``x_{T-1}`` on the :func:`ddim_timesteps` grid.

    Each step reuses the noise prediction at the current point (the usual first-order inversion),
    so ``ddim_sample(eps_fn, ddim_invert(eps_fn, x, ...), ...)`` returns ``x`` up to discretisation error.
    """
    timesteps = ddim_timesteps(schedule.num_steps, num_steps)[::-1]  # ascending
    x = x_0
    abar_cur = torch.ones((), dtype=torch.float64)
    t_cur = timesteps[0]
    for t_next in timesteps:
        eps = eps_fn(x, _steps_tensor(t_cur, x))
        x0 = (x - (1 - abar_cur).sqrt() * eps) / abar_cur.sqrt()
        abar_next = schedule.alphas_cumprod[t_next]
        x = abar_next.sqrt() * x0 + (1 - abar_next).sqrt() * eps
        abar_cur, t_cur = abar_next, t_next
    return x


# ---------------------------------------------------------------------------------------------
# EDM
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EDMConfig:
    """EDM hyper-parameters (Karras et al. 2022, table 1; DiffSDA app. B uses these defaults).

    ``p_mean``/``p_std`` set the log-normal training distribution of ``sigma``
    (-1.2/1.2 for pixels, -0.4/1.0 on VQ latents in DiffSDA).
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    p_mean: float = -1.2
    p_std: float = 1.2


def edm_preconditioning(sigma: torch.Tensor, sigma_data: float = 0.5
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` of EDM table 1 for noise levels ``sigma``.

    ``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``, ``c_in = 1 / sqrt(s^2 + sd^2)``,
    ``c_noise = ln(s) / 4``: the network's input and target both have unit variance at every level.
    """
    sd2 = sigma_data ** 2
    total = sigma ** 2 + sd2
    return sd2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2`` (EDM eq. 8 / DiffSDA eq. 8)."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def edm_training_sigmas(n: int, p_mean: float = -1.2, p_std: float = 1.2, *,
                        device: torch.device | str | None = None, generator: torch.Generator | None = None,
                        uniform_fraction: float = 0.0, sigma_range: tuple[float, float] = (0.002, 80.0)) -> torch.Tensor:
    """``ln sigma ~ N(p_mean, p_std^2)``, ``n`` draws (EDM sec. 5).

    With ``uniform_fraction = f > 0``, a fraction ``f`` of the draws is instead log-uniform over
    ``sigma_range`` (the sampler's range), so every level the sampler visits is trained. A
    log-normal alone concentrates training where EDM's image models need it, but a short run
    then never learns the high levels where a conditional decoder decides appearance (DiffSDA
    version 1: ~3% of draws above sigma 5, where its sampler starts at 80) and, shifted up, never
    the lowest ones its last Heun steps visit (measured: 8-step decodes blew up to MSE 0.09).
    """
    normal = randn((n,), device=device, generator=generator) * p_std + p_mean
    if uniform_fraction <= 0:
        return normal.exp()
    lo, hi = math.log(sigma_range[0]), math.log(sigma_range[1])
    u = torch.rand((2, n), generator=generator, device=generator.device if generator is not None else device)
    u = u.to(normal.device)
    uniform = lo + (hi - lo) * u[0]
    return torch.where(u[1] < uniform_fraction, uniform, normal).exp()


def edm_sigma_steps(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, *,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The EDM time grid (eq. 5): ``num_steps`` levels from ``sigma_max`` to ``sigma_min``, then 0.

    Returns ``num_steps + 1`` values; the sampler takes ``num_steps`` steps between them.
    """
    if num_steps < 1:
        raise ValueError(f"the EDM sampler needs at least 1 step, got {num_steps}")
    if num_steps == 1:
        levels = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        i = torch.arange(num_steps, dtype=torch.float64)
        inv = 1.0 / rho
        levels = (sigma_max ** inv + i / (num_steps - 1) * (sigma_min ** inv - sigma_max ** inv)) ** rho
    return torch.cat([levels, torch.zeros(1, dtype=torch.float64)]).to(device=device, dtype=torch.float32)


def heun_nfe(num_steps: int) -> int:
    """Network evaluations of :func:`edm_heun_sample`: Heun on every step but the last (to sigma 0)."""
    return 2 * num_steps - 1


def _sigma_vec(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), float(sigma), device=like.device, dtype=like.dtype)


@torch.no_grad()
def edm_heun_sample(denoise_fn: DenoiseFn, x_T: torch.Tensor, sigmas: torch.Tensor, *, s_churn: float = 0.0,
                    s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                    generator: torch.Generator | None = None, noise_fn: NoiseFn | None = None) -> torch.Tensor:
    """EDM's stochastic sampler (alg. 2; DiffSDA alg. 1), deterministic Heun when ``s_churn = 0``.

    ``x_T`` is at noise level ``sigmas[0]`` (draw ``sigma_max * N(0, I)`` for generation, or pass an
    inverted ``x_T``); ``sigmas`` comes from :func:`edm_sigma_steps` and ends at 0.
    """
    n = len(sigmas) - 1
    x = x_T
    for i in range(n):
        t_cur, t_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= t_cur <= s_tmax else 0.0
        t_hat = t_cur + gamma * t_cur
        if gamma > 0:
            x = x + math.sqrt(t_hat ** 2 - t_cur ** 2) * s_noise * _noise(x.shape, x, generator, noise_fn)
        d = (x - denoise_fn(x, _sigma_vec(t_hat, x))) / t_hat
        x_next = x + (t_next - t_hat) * d
        if t_next > 0:
            d_next = (x_next - denoise_fn(x_next, _sigma_vec(t_next, x))) / t_next
            x_next = x + (t_next - t_hat) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


@torch.no_grad()
def edm_heun_invert(denoise_fn: DenoiseFn, x_0: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE forwards, ``x_0 -> x_T`` (DiffSDA alg. 2, "stochastic encoding").

    Runs the sampler's grid backwards from ``sigma_min`` (where ``x`` is taken to be ``x_0``) to
    ``sigma_max`` with Heun steps, the last one Euler like the sampler's; ``2N - 3`` evaluations
    for an ``N``-step grid. Sampling from the result with the same grid and codes gives ``x_0`` back
    up to the ODE discretisation error.
    """
    levels = [float(s) for s in sigmas if float(s) > 0][::-1]  # ascending, sigma_min .. sigma_max
    x = x_0
    for i in range(len(levels) - 1):
        t_cur, t_next = levels[i], levels[i + 1]
        d = (x - denoise_fn(x, _sigma_vec(t_cur, x))) / t_cur
        x_next = x + (t_next - t_cur) * d
        if i + 2 < len(levels):
            d_next = (x_next - denoise_fn(x_next, _sigma_vec(t_next, x))) / t_next
            x_next = x + (t_next - t_cur) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


class EDMPrecond(nn.Module):
    """``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise, **cond)`` around a raw network ``F`` (EDM eq. 7).

    ``net(x, noise_label, **kwargs)`` is any module with that signature (:class:`~seqbench.nn.unet.UNet`,
    the MLP denoisers). ``forward`` returns the denoised estimate; :meth:`loss` the weighted
    denoising loss of DiffSDA eq. 8 per element (the caller reduces).

    ``noise_label_scale`` multiplies ``c_noise = ln(sigma) / 4`` before the network's sinusoidal
    embedding. EDM feeds it unscaled (range about -1.5..1.1), where every frequency of a
    ``max_period = 10^4`` embedding is below one cycle and noise levels are nearly indistinguishable
    until the embedding MLP has learned to amplify them; a scale of 250 spreads them over a range
    like DDPM's step index 0..999, which short (CPU) runs learn much faster. 1 is EDM's choice.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, noise_label_scale: float = 1.0):
        super().__init__()
        self.net, self.sigma_data, self.noise_label_scale = net, sigma_data, noise_label_scale

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        sigma = sigma.to(device=x.device, dtype=torch.float32).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, self.sigma_data)
        out = self.net(_bcast(c_in, x) * x, c_noise * self.noise_label_scale, **kwargs)
        return _bcast(c_skip, x) * x + _bcast(c_out, x) * out.to(x.dtype)

    def loss(self, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, **kwargs) -> torch.Tensor:
        """``lambda(sigma) * (D(x0 + sigma n; sigma) - x0)^2`` element-wise, ``sigma`` ``[N]`` per item."""
        x_noisy = x0 + _bcast(sigma, x0) * noise
        denoised = self.forward(x_noisy, sigma, **kwargs)
        return _bcast(edm_loss_weight(sigma.float(), self.sigma_data), x0) * (denoised.float() - x0.float()) ** 2
