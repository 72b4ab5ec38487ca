"""Shared neural blocks: frame encoders/decoders, Gaussian helpers and the LSTM dynamics prior."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from seqbench.errors import ConfigError
from seqbench.nn import (DCGANFrameDecoder, DCGANFrameEncoder, GaussianHead, LSTMDynamicsPrior, MLPFrameDecoder,
                         MLPFrameEncoder, fold_time, frame_decoder, frame_encoder, kl_normal, randn, reparameterize,
                         unfold_time)
from seqbench.types import DataSpec

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the shared helpers importable
from _vae_contract import one_thread  # noqa: F401 - autouse: one intra-op thread on a busy machine


def video_spec(size: int = 32, height: int | None = None) -> DataSpec:
    return DataSpec(name="v", modality="video", frames=4, channels=3, height=height or size, width=size)


AUDIO = DataSpec(name="a", modality="audio", frames=6, channels=20, height=1, width=1, value_range=(-3.0, 3.0))


# -- frames -------------------------------------------------------------------------------

@pytest.mark.parametrize("size, stages", [(32, 3), (64, 4)])
def test_dcgan_encoder_shapes_and_stage_count(size, stages):
    enc = DCGANFrameEncoder(3, size, out_dim=10, base=4)
    assert len(enc.stages) == stages  # log2(size) - 2 stages leave a 4x4 map
    clip = torch.rand(2, 5, 3, size, size)
    out = enc(clip)
    assert out.shape == (2, 5, 10)
    assert out.abs().max() <= 1.0  # Tanh head
    assert enc(clip[0]).shape == (5, 10)  # [N, C, H, W] input


def test_dcgan_encoder_channels_follow_the_reference_at_64px():
    enc = DCGANFrameEncoder(3, 64, out_dim=128)
    assert [stage[0].out_channels for stage in enc.stages] == [64, 128, 256, 512]
    assert enc.head[0].kernel_size == (4, 4) and isinstance(enc.head[-1], torch.nn.Tanh)


def test_dcgan_encoder_rejects_wrong_frame_shape():
    with pytest.raises(ValueError, match="expects frames"):
        DCGANFrameEncoder(3, 32, 8, base=4)(torch.rand(2, 3, 64, 64))


@pytest.mark.parametrize("size", [32, 64])
def test_dcgan_decoder_mirrors_encoder(size):
    dec = DCGANFrameDecoder(12, 3, size, base=4)
    enc = DCGANFrameEncoder(3, size, 12, base=4)
    assert len(dec.stages) == len(enc.stages) - 1  # plus the 4x4 stem and the output layer
    out = dec(torch.randn(2, 5, 12) * 10)
    assert out.shape == (2, 5, 3, size, size)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert dec(torch.randn(7, 12)).shape == (7, 3, size, size)


@pytest.mark.parametrize("output, check", [("tanh", lambda y: y.abs().max() <= 1.0),
                                           ("linear", lambda y: (y.abs() > 1.0).any())])
def test_decoder_output_activation(output, check):
    torch.manual_seed(0)
    dec = DCGANFrameDecoder(6, 1, 32, base=4, output=output)
    with torch.no_grad():
        dec.head[0].weight.mul_(50.0)  # large weights: only a bounded activation stays in [-1, 1]
    assert check(dec(torch.randn(3, 6)))


def test_unknown_output_activation_is_a_config_error():
    with pytest.raises(ConfigError, match="sigmoid, tanh or linear"):
        DCGANFrameDecoder(6, 1, 32, output="relu")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [48, 8, 256])
def test_unsupported_size_names_the_working_sizes(size):
    with pytest.raises(ConfigError, match="32.*64"):
        frame_encoder(video_spec(size), 8)


def test_non_square_frames_are_a_config_error():
    with pytest.raises(ConfigError, match="square"):
        frame_decoder(video_spec(32, height=64), 8)


def test_factory_picks_dcgan_for_video_and_mlp_for_audio():
    assert isinstance(frame_encoder(video_spec(32), 8, base=4), DCGANFrameEncoder)
    assert isinstance(frame_decoder(video_spec(64), 8, base=4), DCGANFrameDecoder)
    enc, dec = frame_encoder(AUDIO, 8, hidden=(16,)), frame_decoder(AUDIO, 8, output="linear", hidden=(16,))
    assert isinstance(enc, MLPFrameEncoder) and isinstance(dec, MLPFrameDecoder)
    x = torch.randn(3, 6, 20, 1, 1)
    h = enc(x)
    assert h.shape == (3, 6, 8) and h.abs().max() <= 1.0
    assert dec(h).shape == (3, 6, 20, 1, 1)


def test_mlp_encoder_checks_feature_count():
    with pytest.raises(ValueError, match="20 features"):
        MLPFrameEncoder(20, 4)(torch.randn(2, 3, 21, 1, 1))


def test_fold_unfold_roundtrip():
    x = torch.randn(2, 3, 4, 5, 6)
    flat, lead = fold_time(x, 3)
    assert flat.shape == (6, 4, 5, 6)
    assert torch.equal(unfold_time(flat, lead), x)
    with pytest.raises(ValueError):
        fold_time(torch.randn(4, 5), 3)


# -- distributions ------------------------------------------------------------------------

def test_kl_normal_against_hand_computed_values():
    # q = N([1, 0], diag[1, 2]) vs N(0, I): 0.5*(1 + 1 - 1 - 0) + 0.5*(2 + 0 - 1 - ln 2)
    kl = kl_normal(torch.tensor([1.0, 0.0]), torch.tensor([0.0, math.log(2.0)]))
    assert kl.item() == pytest.approx(0.5 + 0.5 * (1.0 - math.log(2.0)), rel=1e-6)
    # q = N(0, 1) vs p = N(1, e): 0.5*(1/e + 1/e - 1 + 1) = 1/e
    kl = kl_normal(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.ones(1))
    assert kl.item() == pytest.approx(math.exp(-1.0), rel=1e-6)


def test_kl_normal_matches_torch_distributions_and_keeps_leading_dims():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(2, 3, 5, generator=g) for _ in range(4))
    kl = kl_normal(mq, lq, mp, lp)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mq, (0.5 * lq).exp()),
                                            torch.distributions.Normal(mp, (0.5 * lp).exp())).sum(-1)
    assert kl.shape == (2, 3)
    assert torch.allclose(kl, ref, atol=1e-5)
    assert torch.allclose(kl_normal(mq, lq, mq, lq), torch.zeros(2, 3), atol=1e-6)


def test_reparameterize_and_randn_follow_the_generator():
    mean, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    a = reparameterize(mean, logvar, torch.Generator().manual_seed(3))
    b = reparameterize(mean, logvar, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(randn((4, 3), generator=torch.Generator().manual_seed(3)), a)
    tiny = reparameterize(torch.full((2,), 5.0), torch.full((2,), -40.0))
    assert torch.allclose(tiny, torch.full((2,), 5.0))


def test_gaussian_head_clamps_logvar():
    head = GaussianHead(4, 2, logvar_clamp=(-1.0, 1.0))
    with torch.no_grad():
        head.logvar.weight.fill_(100.0)
    mean, logvar = head(torch.ones(3, 4))
    assert mean.shape == logvar.shape == (3, 2)
    assert logvar.max() <= 1.0


# -- LSTM prior ---------------------------------------------------------------------------

def test_lstm_prior_teacher_forcing_shape_and_causality():
    torch.manual_seed(0)
    prior = LSTMDynamicsPrior(z_dim=3, hidden=8)
    z = torch.randn(2, 5, 3)
    mean, logvar = prior(z)
    assert mean.shape == logvar.shape == (2, 5, 3)
    changed = z.clone()
    changed[:, 2] += 1.0
    mean2, _ = prior(changed)
    assert torch.allclose(mean[:, :3], mean2[:, :3])  # step t sees only z_<t
    assert not torch.allclose(mean[:, 3:], mean2[:, 3:])


def test_lstm_prior_sample_is_reproducible_and_matches_teacher_forcing():
    torch.manual_seed(0)
    prior = LSTMDynamicsPrior(z_dim=3, hidden=8)
    a = prior.sample(4, 6, generator=torch.Generator().manual_seed(1))
    b = prior.sample(4, 6, generator=torch.Generator().manual_seed(1))
    c = prior.sample(4, 6, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 6, 3) and torch.equal(a, b) and not torch.equal(a, c)
    means = prior.sample(2, 4, mean_only=True)
    tf_mean, _ = prior(means)  # unrolling on its own means equals teacher forcing on them
    assert torch.allclose(tf_mean, means, atol=1e-6)
