"""C-DSVAE method plugin: the shared sequential-VAE contract, its augmented views, profiles, registration."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the shared contract importable
from _vae_contract import *  # noqa: F401,F403 - the shared contract tests run against this method
from _vae_contract import AUDIO, batch, clips, moving_squares, video
from seqbench.errors import ConfigError
from seqbench.methods.cdsvae import CDSVAE, CDSVAEConfig


@pytest.fixture
def method_cls():
    return CDSVAE


def _motion_mask(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 1:] - x[:, :-1]).abs().amax(dim=2) > 0


def test_views_keep_what_they_must(factory):
    model = factory(video(16))
    x = moving_squares(4, 4, 16) * 0.8 + 0.1  # a non-black background so the colour change shows
    g = torch.Generator().manual_seed(0)
    content = model.content_view(x, g)
    motion = model.motion_view(x, g)
    assert content.shape == motion.shape == x.shape
    assert torch.equal(_motion_mask(motion), _motion_mask(x))  # colour distortion: same pixels move
    assert not torch.allclose(motion, x)
    colour = lambda v: v.mean(dim=(1, 3, 4))  # noqa: E731 - per-clip mean colour
    assert (colour(content) - colour(x)).abs().max() < 0.1  # same appearance, roughly
    uncropped = factory(video(16), crop_scale=(1.0, 1.0)).content_view(x, torch.Generator().manual_seed(0))
    flat = lambda v: v.flatten(2).sort(dim=1).values  # noqa: E731 - each clip's frames as a sorted multiset
    assert torch.allclose(flat(uncropped), flat(x), atol=1e-6) and not torch.allclose(uncropped, x)
    assert content.min() >= 0 and content.max() <= 1 and motion.min() >= 0 and motion.max() <= 1


def test_audio_views_are_the_documented_analogues(factory):
    model = factory(AUDIO)
    x = clips(AUDIO, n=4)
    g = torch.Generator().manual_seed(0)
    content = model.content_view(x, g)
    assert torch.equal(content.sort(dim=1).values, x.sort(dim=1).values)  # shuffled steps, nothing else
    motion = model.motion_view(x, g)
    assert torch.allclose(motion[:, 1:] - motion[:, :-1], x[:, 1:] - x[:, :-1], atol=1e-5)  # same changes
    assert not torch.allclose(motion, x)


def test_views_are_reproducible_under_a_generator(factory):
    model = factory(video(32))
    x = clips(video(32))
    for view in (model.content_view, model.motion_view):
        a = view(x, torch.Generator().manual_seed(3))
        assert torch.equal(a, view(x, torch.Generator().manual_seed(3)))


def test_nce_terms_are_weighted_ten(factory):
    model = factory(video(32))
    torch.manual_seed(0)
    losses = model.training_step(batch(clips(video(32))))
    core = losses["recon"] + losses["kl_s"] + losses["kl_d"] + losses["mi"]
    assert torch.allclose(losses["loss"].detach(), core + 10 * (losses["nce_s"] + losses["nce_d"]), rtol=1e-5)


def test_paper_profiles_carry_the_reference_numbers():
    paper = CDSVAEConfig.for_profile("paper", "sprites")
    assert (paper.s_dim, paper.d_dim, paper.g_dim, paper.rnn_size) == (256, 32, 128, 256)
    assert (paper.w_recon, paper.w_kl_s, paper.w_kl_d, paper.w_mi, paper.w_nce_s, paper.w_nce_d) == (1, 1, 1, 1, 10, 10)
    assert (paper.optimizer, paper.lr, paper.batch_size, paper.epochs) == ("adam", 1e-3, 128, 100)
    for profile in ("smoke", "quick"):
        config = CDSVAEConfig.for_profile(profile, "sprites")
        assert config.steps > 0 and config.batch_size > 0


def test_config_validation():
    assert CDSVAEConfig.for_profile("smoke").with_overrides({"crop_scale": "0.5,0.9"}).crop_scale == (0.5, 0.9)
    with pytest.raises(ConfigError, match="cdsvae.crop_scale"):
        CDSVAEConfig(crop_scale=(0.0, 1.0))
    with pytest.raises(ConfigError, match="cdsvae.colour_strength"):
        CDSVAEConfig(colour_strength=2.0)
    with pytest.raises(ConfigError, match="cdsvae.s_dim"):
        CDSVAEConfig(s_dim=0)
