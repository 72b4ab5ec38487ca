"""DiffSDA on tiny shapes: the contract verbs, determinism, ODE-inversion reconstruction, latent and audio modes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from seqbench.config import PROFILES
from seqbench.data import SplitData, carve_validation
from seqbench.errors import ConfigError
from seqbench.method import Batch
from seqbench.methods.diffsda import DiffSDA, DiffSDAConfig
from seqbench.nn import heun_nfe
from seqbench.trainer import Trainer
from seqbench.types import DataSpec, Factors

TINY = dict(static_dim=6, dynamic_dim=3, hidden=8, enc_base=8, enc_mult=(1, 2), enc_res_blocks=1,
            enc_attn_levels=(), base=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), num_heads=2,
            mlp_hidden=16, mlp_depth=2, sampler_steps=4, vq_base=8, vq_factor=4, vq_steps=4, vq_batch_size=4,
            prior_hidden=16, prior_depth=2, prior_sample_steps=4, batch_size=4, steps=4, lr=1e-3,
            val_every=2, checkpoint_every=2, log_every=2)


def video_spec(size: int = 16, frames: int = 4) -> DataSpec:
    return DataSpec("tiny", "video", frames, 3, size, size, fingerprint="tiny-video")


def make_split(spec: DataSpec, n: int = 12, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, spec.frames, spec.channels, spec.height, spec.width)) * 255).astype(np.uint8)
    return SplitData(x=x, labels={"a": rng.integers(0, 2, n)}, identity=np.arange(n))


def build(spec: DataSpec | None = None, **overrides) -> DiffSDA:
    torch.manual_seed(0)
    spec = spec or video_spec()
    return DiffSDA(DiffSDAConfig(**{**TINY, **overrides}), spec)


def batch(spec: DataSpec, n: int = 2, seed: int = 0) -> Batch:
    data = make_split(spec, n, seed)
    return data.batch(np.arange(n))


def test_profiles_resolve_and_smoke_builds():
    for profile in PROFILES:
        for family in ("generic", "sprites", "faces", "bodies", "speech"):
            DiffSDAConfig.for_profile(profile, family)
    cfg = DiffSDAConfig.for_profile("paper")
    assert heun_nfe(cfg.sampler_steps) == 63 and cfg.optimizer == "adamw" and cfg.lr == 1e-4
    assert DiffSDAConfig.for_profile("paper", "faces").sampler_steps == 36  # MUG: 71 NFE
    DiffSDA(DiffSDAConfig.for_profile("smoke"), video_spec(64, 8))
    with pytest.raises(ConfigError, match="space"):
        DiffSDAConfig(space="voxel")


def test_training_step_gives_finite_losses_and_gradients():
    spec = video_spec()
    model = build(spec, loss_frames=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(4):  # zero-initialised output layers pass no gradient upstream in the first steps
        losses = model.training_step(batch(spec))
        assert set(losses) == {"loss", "denoise", "prior"} and torch.isfinite(losses["loss"])
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    assert model.frame_encoder.body[0].weight.grad.abs().sum() > 0  # the encoder learns through the denoiser
    assert model.static_head.weight.grad.abs().sum() > 0


def test_prior_loss_does_not_move_the_encoder():
    spec = video_spec()
    model = build(spec)
    x = model.to_model_space(batch(spec).x)
    s, d = model.semantic(x)
    model.prior.loss(torch.cat([s, d.flatten(1)], 1)).backward()
    assert model.static_head.weight.grad is None


def test_encode_decode_shapes_range_and_determinism():
    spec = video_spec()
    model = build(spec).eval()
    x = batch(spec).x
    factors = model.encode(x)
    assert factors.static.shape == (2, 6) and factors.dynamic.shape == (2, 4, 3)
    out = model.decode(factors, generator=torch.Generator().manual_seed(1))
    again = model.decode(factors, generator=torch.Generator().manual_seed(1))
    other = model.decode(factors, generator=torch.Generator().manual_seed(2))
    assert out.shape == x.shape and torch.equal(out, again) and not torch.equal(out, other)
    swapped = model.decode(Factors(factors.static, factors.dynamic.flip(0)), generator=torch.Generator())
    assert swapped.shape == x.shape
    assert model.nfe == heun_nfe(4) == 7


def test_reconstruct_uses_ode_inversion():
    """At initialisation F = 0, so D = c_skip x and the probability-flow ODE is linear: inverting then
    sampling must give the input back (this checks the plumbing through model space and codes)."""
    spec = video_spec()
    model = build(spec, sampler_steps=16).eval()
    x = batch(spec).x
    x_T = model.invert(x)
    assert x_T.shape == x.shape and x_T.std() > 10 * model.to_unit(x).std()
    rec = model.reconstruct(x)
    assert (rec - x).abs().max() < 1e-2
    assert model.swap(x, x.flip(0)).shape == x.shape


def test_sample_from_latent_prior():
    spec = video_spec()
    model = build(spec).eval()
    gen = torch.Generator().manual_seed(0)
    assert model.sample(3, 4, "static", generator=gen).shape == (3, 6)
    assert model.sample(3, 4, "dynamic", generator=gen).shape == (3, 4, 3)
    assert torch.equal(model.sample(2, 4, "static", generator=torch.Generator().manual_seed(5)),
                       model.sample(2, 4, "static", generator=torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError):
        model.sample(2, 5, "dynamic")
    assert DiffSDA.can_sample()


def test_trainer_fit_and_weights_only_reload(tmp_path):
    spec = video_spec()
    train, val = carve_validation(make_split(spec, 16), 0.25)
    model = build(spec, loss_frames=2, ema_decay=0.9)
    Trainer(model, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False).fit()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(spec, loss_frames=2, ema_decay=0.9)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    fresh.eval()
    x = batch(spec).x
    assert torch.equal(fresh.encode(x).static, model.eval().encode(x).static)


def test_latent_mode_on_tiny_frames(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path))
    spec = video_spec(32, 3)
    model = build(spec, space="latent")
    assert model.space == "latent" and model.frame_shape == (4, 8, 8)
    assert model.p_mean == -0.4 and model.p_std == 1.0  # DiffSDA's latent-space noise distribution
    with pytest.raises(ConfigError, match="prepare"):
        model.training_step(batch(spec))
    model.prepare(make_split(spec, 6))
    assert bool(model.vqae_ready) and (tmp_path / "vqae").exists()
    losses = model.training_step(batch(spec))
    losses["loss"].backward()
    assert all(p.grad is None for p in model.vqae.parameters())  # the autoencoder stays frozen
    model.eval()
    x = batch(spec).x
    assert model.decode(model.encode(x), generator=torch.Generator()).shape == x.shape
    assert model.reconstruct(x).shape == x.shape
    assert DiffSDA.resolve_space("auto", video_spec(256, 2)) == "latent"
    assert DiffSDA.resolve_space("auto", video_spec(64, 2)) == "pixel"


def test_audio_mode_uses_mlps():
    spec = DataSpec("tiny-audio", "audio", 5, 10, 1, 1, value_range=(-float("inf"), float("inf")), fingerprint="a")
    model = build(spec)
    x = torch.randn(3, 5, 10, 1, 1)
    losses = model.training_step(Batch(x, {}, torch.arange(3)))
    assert torch.isfinite(losses["loss"])
    model.eval()
    out = model.decode(model.encode(x), generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape


def test_trainer_prepares_latent_mode_before_training(tmp_path, monkeypatch):
    """The framework's trainer calls ``prepare``: latent DiffSDA trains through it with no manual step."""
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / "cache"))
    spec = video_spec(32, 3)
    model = build(spec, space="latent", steps=2)
    train, val = make_split(spec, 8), make_split(spec, 2, seed=1)
    result = Trainer(model, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path / "run",
                     progress=False).fit()
    assert result.steps == 2 and bool(model.vqae_ready) and (tmp_path / "cache" / "vqae").exists()
