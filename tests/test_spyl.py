"""SPYL method plugin: the shared sequential-VAE contract, the warm-up, the negative bank, profiles, registration."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the shared contract importable
from _vae_contract import *  # noqa: F401,F403 - the shared contract tests run against this method
from _vae_contract import batch, clips, video
from seqbench.errors import ConfigError
from seqbench.methods.spyl import SPYL, SPYLConfig


@pytest.fixture
def method_cls():
    return SPYL


def test_warmup_switches_the_contrastive_terms_on(factory):
    model = factory(video(32), nce_warmup=0.5)
    model.total_steps = 10
    b = batch(clips(video(32)))
    model.global_step = 4
    assert not model.contrast_active() and model.train_statistics() == {"nce_on": 0.0}
    torch.manual_seed(1)
    before = model.training_step(b)
    assert before["nce_s"] == 0 and before["nce_d"] == 0
    core = 10 * before["recon"] + 5 * before["kl_s"] + before["kl_d"] + before["mi"]
    assert torch.allclose(before["loss"].detach(), core, rtol=1e-5)
    model.global_step = 5
    assert model.contrast_active() and model.train_statistics() == {"nce_on": 1.0}
    after = model.training_step(b)
    assert after["nce_s"] > 0 and after["nce_d"] > 0
    core = 10 * after["recon"] + 5 * after["kl_s"] + after["kl_d"] + after["mi"]
    assert torch.allclose(after["loss"].detach(), core + after["nce_s"] + after["nce_d"], rtol=1e-5)


def test_negative_bank_scales_with_the_batch(factory):
    model = factory(video(32))
    assert model.bank_sizes(128) == (512, 256)  # the paper: 256 of 4 * 128
    assert model.bank_sizes(32) == (128, 64)  # half the bank at smaller batches
    assert factory(video(32), negatives=16).bank_sizes(32) == (128, 16)


def test_positives_carry_gradient_and_bank_does_not(factory, monkeypatch):
    """Only the positive views (own s + prior d, prior s + own d) may pass gradient to the decoder."""
    model = factory(video(32))
    model.global_step, model.total_steps = 1, 1
    decoded = []
    original = model.vae.decode

    def spy(s, d):
        out = original(s, d)
        decoded.append((s.shape[0], out.requires_grad))
        return out

    monkeypatch.setattr(model.vae, "decode", spy)
    model.training_step(batch(clips(video(32), n=4)))
    # the reconstruction (4), the bank (4 * 4, no grad), both positive views together (2 * 4)
    assert decoded == [(4, True), (16, False), (8, True)]


def test_paper_profiles_carry_the_reference_numbers():
    paper = SPYLConfig.for_profile("paper", "sprites")
    assert (paper.s_dim, paper.d_dim, paper.g_dim, paper.rnn_size) == (256, 32, 128, 256)
    assert (paper.w_recon, paper.w_kl_s, paper.w_kl_d, paper.w_mi) == (10.0, 5.0, 1.0, 1.0)
    assert (paper.nce_tau, paper.nce_warmup, paper.bank_factor, paper.negatives) == (0.5, 0.05, 4.0, 256)
    assert (paper.optimizer, paper.lr, paper.batch_size, paper.epochs) == ("adam", 2e-3, 128, 1000)
    assert paper.base_channels == 64
    speech = SPYLConfig.for_profile("paper", "speech")
    assert (speech.s_dim, speech.d_dim, speech.rnn_size) == (256, 32, 256)
    for profile in ("smoke", "quick"):
        config = SPYLConfig.for_profile(profile, "sprites")
        assert config.steps > 0 and config.batch_size > 0 and 0 < config.nce_warmup < 1


def test_config_validation_and_overrides():
    config = SPYLConfig.for_profile("smoke").with_overrides({"nce_warmup": "0.1", "negatives": "32"})
    assert config.nce_warmup == 0.1 and config.negatives == 32
    with pytest.raises(ConfigError, match="spyl.nce_warmup"):
        SPYLConfig(nce_warmup=1.5)
    with pytest.raises(ConfigError, match="spyl.decoder_output"):
        SPYLConfig(decoder_output="relu")
    with pytest.raises(ConfigError, match="spyl.nce_tau"):
        SPYLConfig(nce_tau=0.0)
