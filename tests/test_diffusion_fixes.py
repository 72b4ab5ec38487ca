"""Regression tests for the defects that kept the diffusion members from learning (issue 14).

Each test fails on the version-1 code: the static token collapsing under the orthogonality loss,
the trainer's EMA anchored at the initial weights and averaging buffers, one clipping norm shared
with an independent prior, and a decoder that ignores a factor going unnoticed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seqbench.data import SplitData, carve_validation
from seqbench.method import Batch
from seqbench.methods.bcd import BCD, BCDConfig
from seqbench.methods.diffsda import DiffSDA, DiffSDAConfig
from seqbench.methods.divid import DiViD, DiViDConfig
from seqbench.nn import FactorNorm, code_spread, factor_usage, orthogonality_loss
from seqbench.trainer import BEST, Trainer, ema_decay_at
from seqbench.types import DataSpec

SPEC = DataSpec("tiny", "video", 4, 3, 16, 16, fingerprint="tiny-video")
DIVID_TINY = dict(token_dim=8, enc_base=8, enc_mult=(1, 2), enc_res_blocks=1, static_hidden=16, lstm_hidden=4,
                  dyn_heads=2, base=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), num_heads=2,
                  diffusion_steps=20, sampler_steps=4, batch_size=4, steps=4, lr=1e-3, val_every=2,
                  checkpoint_every=2, log_every=2)


def clips(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 4, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def split(n: int = 24) -> tuple[SplitData, SplitData]:
    rng = np.random.default_rng(0)
    data = SplitData(x=(rng.random((n, 4, 3, 16, 16)) * 255).astype(np.uint8), labels={}, identity=np.arange(n))
    return carve_validation(data, 0.25)


def static_spread_under_orthogonality_alone(model: DiViD, steps: int = 150) -> float:
    """Train the encoder on the orthogonality term only (the denoising loss sends ``s`` no gradient at step 0)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = model.to_model_space(clips(32))
    model.train()
    for _ in range(steps):
        s, d = model.tokens(x)
        loss = orthogonality_loss(s, d)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return code_spread(model.tokens(x)[0])


def test_static_token_does_not_collapse_under_the_orthogonality_loss():
    torch.manual_seed(0)
    model = DiViD(DiViDConfig(**DIVID_TINY), SPEC)
    assert static_spread_under_orthogonality_alone(model) > 0.5
    # The same encoder without the standardisation (version 1) collapses: the test can fail.
    torch.manual_seed(0)
    unnormalised = DiViD(DiViDConfig(**DIVID_TINY), SPEC)
    unnormalised.static_norm = nn.Identity()
    assert static_spread_under_orthogonality_alone(unnormalised) < 0.5 * static_spread_under_orthogonality_alone(
        DiViD(DiViDConfig(**DIVID_TINY), SPEC))


def test_factor_norm_standardises_in_training_and_uses_running_statistics_in_eval():
    norm = FactorNorm(3)
    z = torch.randn(16, 5, 3) * 7 + 2
    out = norm(z)
    torch.testing.assert_close(out.reshape(-1, 3).mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.reshape(-1, 3).std(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    norm.eval()
    one = norm(z[:1])  # a single clip's code does not depend on a batch
    torch.testing.assert_close(one, norm(z)[:1])
    norm.train()
    assert torch.isfinite(norm(torch.randn(1, 3))).all()  # one vector in training: running statistics


def test_factor_usage_detects_a_decoder_that_ignores_a_factor():
    torch.manual_seed(0)
    static, dynamic = torch.randn(8, 4), torch.randn(8, 3, 2)
    target = static[:, :3] + dynamic.sum(-1) + 0.1 * torch.randn(8, 3)  # what a decoder reading both recovers

    def reads_both(s, d):
        return (s[:, :3] + d.sum(-1) - target).pow(2).mean()

    def ignores_static(s, d):
        return (d.sum(-1) - target).pow(2).mean()

    both = factor_usage(reads_both, static, dynamic)
    assert both["static_shuffled"] > 0.1 and both["dynamic_shuffled"] > 0.1
    blind = factor_usage(ignores_static, static, dynamic)
    assert blind["static_shuffled"] == pytest.approx(0.0, abs=1e-7) and blind["dynamic_shuffled"] > 0.1


@pytest.mark.parametrize("cls, config", [
    (DiViD, DiViDConfig(**DIVID_TINY)),
    (BCD, BCDConfig.for_profile("smoke").with_overrides({"diffusion_steps": 20})),
    (DiffSDA, DiffSDAConfig.for_profile("smoke")),
])
def test_every_diffusion_member_reports_factor_usage(cls, config):
    torch.manual_seed(0)
    model = cls(config, SPEC).eval()
    x = clips(6)
    with torch.no_grad():
        report = model.validation_diagnostics(Batch(x=x, labels={}, index=torch.arange(6)))
        again = model.validation_diagnostics(Batch(x=x, labels={}, index=torch.arange(6)))
    assert report == again  # fixed noise: comparable across validation points
    assert {"static_spread", "dynamic_spread"} <= set(report)
    assert sum(k.startswith("static_shuffled_at_") for k in report) == 2
    assert sum(k.startswith("dynamic_shuffled_at_") for k in report) == 2
    assert all(np.isfinite(v) for v in report.values())


def test_ema_decay_warms_up():
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 8) == pytest.approx(0.5)
    assert ema_decay_at(0.999, 10_000) == 0.999


def test_ema_after_training_is_not_dominated_by_the_initialisation(tmp_path):
    """Version 1 averaged from the initial weights at decay 0.999: after 40 steps 96% of the EMA was
    the initialisation. With the warm-up the EMA sits near the live weights."""
    torch.manual_seed(0)
    model = DiViD(DiViDConfig(**{**DIVID_TINY, "steps": 40, "val_every": 40, "checkpoint_every": 40,
                                 "ema_decay": 0.999, "lr": 3e-3}), SPEC)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    train, val = split()
    trainer = Trainer(model, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False)
    trainer.fit()
    live = {k: v for k, v in trainer.method.state_dict().items()}
    ema = trainer.ema_weights()
    moved = sum(float((live[k] - init[k]).pow(2).sum()) for k, _ in model.named_parameters())
    gap = sum(float((ema[k] - live[k]).pow(2).sum()) for k, _ in model.named_parameters())
    assert moved > 0 and gap < 0.25 * moved


def test_ema_never_touches_buffers(tmp_path):
    """Codebooks and BatchNorm statistics come from the live model, never from an average."""
    torch.manual_seed(0)
    config = BCDConfig.for_profile("smoke").with_overrides({"diffusion_steps": 20, "ema_decay": 0.999, "steps": 6,
                                                            "val_every": 6, "checkpoint_every": 6})
    model = BCD(config, SPEC)
    train, val = split()
    trainer = Trainer(model, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False)
    trainer.fit()
    live, ema = trainer.method.state_dict(), trainer.ema_weights()
    buffers = [name for name, _ in trainer.method.named_buffers() if name in live]  # persistent ones
    assert any("codebook" in name for name in buffers) and any("running_mean" in name for name in buffers)
    for name in buffers:
        assert torch.equal(ema[name], live[name]), name
    saved = torch.load(tmp_path / BEST, weights_only=True)
    assert set(saved) == set(live)


def test_selection_validates_live_and_ema_and_records_the_choice(tmp_path):
    torch.manual_seed(0)
    logged: list[dict[str, float]] = []
    model = DiViD(DiViDConfig(**{**DIVID_TINY, "ema_decay": 0.99}), SPEC)
    train, val = split()
    result = Trainer(model, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False,
                     on_log=lambda step, values: logged.append(values)).fit()
    validations = [v for v in logged if "val_loss" in v]
    assert validations and all({"val_loss_live", "val_loss_ema"} <= set(v) for v in validations)
    assert all(v["val_loss"] == min(v["val_loss_live"], v["val_loss_ema"]) for v in validations)
    assert result.selected in ("live", "ema")
    assert any(k.startswith("usage/static_shuffled_at_") for k in validations[-1])


@pytest.mark.parametrize("cls, config", [
    (BCD, BCDConfig.for_profile("smoke")), (DiffSDA, DiffSDAConfig.for_profile("smoke")),
])
def test_the_prior_is_clipped_apart_from_the_autoencoder(cls, config):
    model = cls(config, SPEC)
    groups = model.grad_clip_groups()
    assert len(groups) == 2
    prior = {id(p) for p in model.prior.parameters()}
    assert {id(p) for p in groups[1]} == prior and not prior & {id(p) for p in groups[0]}
    assert sum(len(g) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
