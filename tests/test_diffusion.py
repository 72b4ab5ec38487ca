"""Samplers, schedules and inversion against a target whose exact denoiser is known.

For a Gaussian mixture ``sum_k w_k N(mu_k, s_k^2 I)`` the ideal denoiser is analytic,
``E[x_0 | x_0 + sigma n = x] = sum_k r_k(x) (mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k))`` with
``r_k`` the responsibilities under the noised mixture, so the samplers can be tested without
training anything: any error is the sampler's own (discretisation), not a model's.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqbench.nn.diffusion import (DDPMSchedule, EDMConfig, EDMPrecond, ddim_invert, ddim_sample, ddim_timesteps,
                                   ddpm_sample, edm_heun_invert, edm_heun_sample, edm_loss_weight,
                                   edm_preconditioning, edm_sigma_steps, edm_training_sigmas, heun_nfe)

MEANS = 0.4 * torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=torch.float64)
STDS = 0.4 * torch.tensor([0.3, 0.3, 0.5], dtype=torch.float64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def gmm_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact ``E[x_0 | x]`` for the mixture above at noise level(s) ``sigma`` ``[N]``."""
    x64, s = x.double(), sigma.double().reshape(-1, 1, 1)  # [N, 1, 1]
    var = STDS.reshape(1, -1, 1) ** 2 + s ** 2  # [N, K, 1]
    diff = x64[:, None, :] - MEANS[None]  # [N, K, D]
    log_r = WEIGHTS.log()[None] - 0.5 * (diff ** 2 / var).sum(-1) - x.shape[1] / 2 * var[..., 0].log()
    r = torch.softmax(log_r, dim=1)[..., None]
    post = MEANS[None] + STDS.reshape(1, -1, 1) ** 2 / var * diff
    return (r * post).sum(1).to(x.dtype)


def gmm_eps(schedule: DDPMSchedule):
    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = schedule.alphas_cumprod[t.cpu()].to(x_t.dtype)[:, None]
        sigma = ((1 - abar) / abar).sqrt()
        x0 = gmm_denoiser(x_t / abar.sqrt(), sigma[:, 0])
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
    return eps_fn


def mixture_fit(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights, means and per-axis stds of samples assigned to their nearest mixture mean."""
    owner = torch.cdist(samples.double(), MEANS).argmin(1)
    weights = torch.stack([(owner == k).double().mean() for k in range(len(MEANS))])
    means = torch.stack([samples[owner == k].double().mean(0) for k in range(len(MEANS))])
    stds = torch.stack([samples[owner == k].double().std(0).mean() for k in range(len(MEANS))])
    return weights, means, stds


def assert_recovers_mixture(samples: torch.Tensor) -> None:
    weights, means, stds = mixture_fit(samples)
    # Stated tolerances (modes are 1.6 apart): weights +-0.035 (3 binomial s.e. at n=4000),
    # means +-0.05, per-mode stds within 20%.
    assert torch.allclose(weights, WEIGHTS, atol=0.035), weights
    assert torch.allclose(means, MEANS, atol=0.05), means
    assert torch.allclose(stds, STDS, rtol=0.2), stds


N_SAMPLES = 4000


def test_ddim_recovers_gaussian_mixture_in_few_steps():
    schedule = DDPMSchedule.linear(1000)
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(N_SAMPLES, 2, generator=gen, dtype=torch.float64)
    samples = ddim_sample(gmm_eps(schedule), x_T, schedule, num_steps=50)  # 50 of the 1000 steps
    assert_recovers_mixture(samples)


def test_ddpm_ancestral_sampler_recovers_gaussian_mixture():
    schedule = DDPMSchedule.linear(200, 1e-4 * 5, 0.02 * 5)  # a short chain keeps the ancestral test fast
    gen = torch.Generator().manual_seed(1)
    x_T = torch.randn(N_SAMPLES // 2, 2, generator=gen, dtype=torch.float64)
    assert_recovers_mixture(ddpm_sample(gmm_eps(schedule), x_T, schedule, generator=gen))


def test_stochastic_ddim_is_reproducible_under_a_generator():
    schedule = DDPMSchedule.linear(1000)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda seed: ddim_sample(gmm_eps(schedule), x_T, schedule, 10, eta=1.0,  # noqa: E731
                                   generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(5), run(5)) and not torch.equal(run(5), run(6))
    assert torch.equal(ddim_sample(gmm_eps(schedule), x_T, schedule, 10), ddim_sample(gmm_eps(schedule), x_T, schedule, 10))


def test_edm_heun_recovers_gaussian_mixture_in_few_steps():
    cfg = EDMConfig()
    sigmas = edm_sigma_steps(18, cfg.sigma_min, cfg.sigma_max, cfg.rho).double()
    gen = torch.Generator().manual_seed(2)
    x_T = torch.randn(N_SAMPLES, 2, generator=gen, dtype=torch.float64) * cfg.sigma_max
    calls = []

    def denoise(x, sigma):
        calls.append(1)
        return gmm_denoiser(x, sigma)

    samples = edm_heun_sample(denoise, x_T, sigmas)
    assert len(calls) == heun_nfe(18) == 35
    assert_recovers_mixture(samples)


def test_edm_ode_inversion_then_sampling_reconstructs_input():
    cfg = EDMConfig()
    gen = torch.Generator().manual_seed(3)
    owner = torch.multinomial(WEIGHTS, 256, replacement=True, generator=gen)
    x0 = MEANS[owner] + STDS[owner, None] * torch.randn(256, 2, generator=gen, dtype=torch.float64)
    sigmas = edm_sigma_steps(32, cfg.sigma_min, cfg.sigma_max, cfg.rho).double()
    x_T = edm_heun_invert(gmm_denoiser, x0, sigmas)
    assert x_T.std() > 20  # at sigma_max the data is swamped by noise of std 80
    x_rec = edm_heun_sample(gmm_denoiser, x_T, sigmas)
    # Stated tolerance, 32 Heun steps (63 NFE back, 61 forward), modes 1.6 apart: mean abs error
    # < 3e-3 (measured 1.3e-3) and max abs error < 6e-2 (points between modes are the worst case).
    err = (x_rec - x0).abs()
    assert err.mean() < 3e-3 and err.max() < 6e-2


def test_ddim_inversion_then_sampling_reconstructs_input():
    schedule = DDPMSchedule.linear(1000)
    gen = torch.Generator().manual_seed(4)
    owner = torch.multinomial(WEIGHTS, 256, replacement=True, generator=gen)
    x0 = MEANS[owner] + STDS[owner, None] * torch.randn(256, 2, generator=gen, dtype=torch.float64)
    eps_fn = gmm_eps(schedule)
    x_T = ddim_invert(eps_fn, x0, schedule, 100)
    x_rec = ddim_sample(eps_fn, x_T, schedule, 100)
    # Stated tolerance, 100 DDIM steps each way: mean abs error < 3e-2 (measured ~1.6e-2; the
    # first-order inversion is far less exact than EDM's Heun ODE, max errors reach ~0.35).
    assert (x_rec - x0).abs().mean() < 3e-2


def test_ddim_timesteps_span_the_chain():
    assert ddim_timesteps(1000, 1) == [999]
    steps = ddim_timesteps(1000, 10)
    assert steps[0] == 999 and steps[-1] == 0 and len(steps) == 10
    assert steps == sorted(steps, reverse=True)
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def test_schedule_q_sample_matches_closed_form():
    schedule = DDPMSchedule.linear(1000)
    x0, noise = torch.ones(2, 3), torch.zeros(2, 3)
    t = torch.tensor([0, 999])
    out = schedule.q_sample(x0, t, noise)
    expected = schedule.alphas_cumprod[t].sqrt().float()[:, None].expand(2, 3)
    assert torch.allclose(out, expected)
    assert torch.allclose(schedule.predict_x0(out, t, noise), x0)
    cos = DDPMSchedule.cosine(100)
    assert cos.alphas_cumprod[-1] < 1e-3 < cos.alphas_cumprod[0]


def test_edm_preconditioning_formulas():
    sigma = torch.tensor([0.002, 0.5, 80.0])
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, 0.5)
    assert torch.allclose(c_skip + (c_out / 0.5) ** 2, torch.ones(3))  # c_skip + c_out^2/sd^2 = 1
    assert torch.allclose(c_in, 1 / (sigma ** 2 + 0.25).sqrt())
    assert torch.allclose(c_noise, sigma.log() / 4)
    assert torch.allclose(edm_loss_weight(sigma), 1 / c_out ** 2)
    grid = edm_sigma_steps(32)
    assert len(grid) == 33 and grid[-1] == 0 and math.isclose(grid[0], 80.0, rel_tol=1e-5)
    assert math.isclose(float(grid[-2]), 0.002, rel_tol=1e-4)
    log_s = edm_training_sigmas(20000, -1.2, 1.2, generator=torch.Generator().manual_seed(0)).log()
    assert abs(log_s.mean() + 1.2) < 0.05 and abs(log_s.std() - 1.2) < 0.05


def test_edm_precond_loss_is_zero_for_the_ideal_network():
    """With F = the exact target, D is the data point and the weighted loss vanishes."""

    class Oracle(torch.nn.Module):
        def forward(self, x_in, c_noise, *, x0_true, noise_true):
            sigma = (4 * c_noise).exp()[:, None]
            c_skip, c_out, _, _ = edm_preconditioning(sigma, 0.5)
            x = x0_true + sigma * noise_true
            return (x0_true - c_skip * x) / c_out

    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 2, generator=gen), torch.randn(8, 2, generator=gen)
    sigma = torch.rand(8, generator=gen) * 5 + 0.01
    loss = EDMPrecond(Oracle()).loss(x0, sigma, noise, x0_true=x0, noise_true=noise)
    assert loss.max() < 1e-6


def test_shared_noise_fn_is_used():
    schedule = DDPMSchedule.linear(50)
    seen = []

    def noise_fn(shape):
        seen.append(tuple(shape))
        return torch.zeros(shape)

    out = ddpm_sample(lambda x, t: torch.zeros_like(x), torch.zeros(3, 2), schedule, noise_fn=noise_fn)
    assert seen and all(s == (3, 2) for s in seen) and torch.allclose(out, torch.zeros(3, 2))
