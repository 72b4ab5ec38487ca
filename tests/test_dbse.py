"""DBSE method plugin: shapes, determinism, value ranges, training signal, priors, config, registration."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make the shared helpers importable
from _vae_contract import (AUDIO, batch, clips, one_thread, test_decode_lands_in_the_value_range,  # noqa: F401
                           test_encode_is_deterministic_in_eval_mode, test_every_parameter_gets_a_gradient,
                           test_loss_decreases_when_overfitting_a_fixed_batch, test_plugin_registers,
                           test_sample_shapes_and_generator_reproducibility,
                           test_unsupported_frame_size_is_reported_not_crashed, video)
from seqbench.errors import ConfigError
from seqbench.methods.dbse import DBSE, DBSEConfig, cyclic_kl_weight

TINY = dict(f_dim=6, z_dim=5, g_dim=8, rnn_size=8, base_channels=4, audio_hidden=(16,))


def make(spec, **overrides) -> DBSE:
    torch.manual_seed(0)
    return DBSE(DBSEConfig.for_profile("smoke").with_overrides({**TINY, **overrides}), spec)


@pytest.fixture
def method_cls():
    return DBSE


@pytest.fixture
def factory():
    """The shared contract tests build DBSE at its own tiny widths."""
    return make


@pytest.mark.parametrize("spec", [video(32), video(64), AUDIO], ids=["video32", "video64", "audio"])
def test_shapes(spec):
    model = make(spec)
    x = clips(spec)
    losses = model.training_step(batch(x))
    assert set(losses) == {"loss", "recon", "recon_frame0", "kl_f", "kl_z"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    model.eval()
    factors = model.encode(x)
    assert factors.static.shape == (3, 6) and factors.dynamic.shape == (3, spec.frames, 5)
    assert model.decode(factors).shape == x.shape


def test_static_code_reads_frame_zero_only():
    model = make(video(32)).eval()
    x = clips(video(32))
    changed = x.clone()
    changed[:, 1:] = clips(video(32), seed=1)[:, 1:]
    a, b = model.encode(x), model.encode(changed)
    assert torch.allclose(a.static, b.static)
    assert not torch.allclose(a.dynamic, b.dynamic)


def test_audio_outside_unit_range_decodes_linearly():
    assert make(AUDIO).output == "linear"
    unit = dataclasses.replace(AUDIO, value_range=(0.0, 1.0))
    assert make(unit).output == "sigmoid"
    assert make(AUDIO, decoder_output="tanh").output == "tanh"
    with pytest.raises(ConfigError, match="finite"):
        make(dataclasses.replace(AUDIO, value_range=(float("-inf"), float("inf"))), decoder_output="sigmoid")


def test_validation_step_is_repeatable():
    model = make(video(32)).eval()
    b = batch(clips(video(32)))
    with torch.no_grad():
        assert torch.equal(model.validation_step(b)["loss"], model.validation_step(b)["loss"])


def test_cyclic_kl_weight_is_a_pure_function_of_progress():
    assert cyclic_kl_weight(0, 100, cycles=4, ramp=0.5) == 0.0
    assert cyclic_kl_weight(6, 100, cycles=4, ramp=0.5) == pytest.approx(0.48)  # halfway up the first ramp
    assert cyclic_kl_weight(20, 100, cycles=4, ramp=0.5) == 1.0  # held after the ramp
    assert cyclic_kl_weight(31, 100, cycles=4, ramp=0.5) == pytest.approx(cyclic_kl_weight(6, 100, 4, 0.5))
    assert cyclic_kl_weight(100, 100, cycles=4, ramp=0.5) == 1.0
    model = make(video(32), kl_anneal="cyclic")
    model.global_step, model.total_steps = 6, 100
    assert model.kl_weight() == model.kl_weight() == pytest.approx(0.48)  # never compounds
    assert model.train_statistics() == {"kl_beta": pytest.approx(0.48)}
    assert make(video(32)).kl_weight() == 1.0


def test_paper_profiles_carry_the_reference_numbers():
    sprites = DBSEConfig.for_profile("paper", "sprites")
    assert (sprites.f_dim, sprites.z_dim, sprites.g_dim, sprites.rnn_size) == (256, 256, 256, 64)
    assert (sprites.w_seq, sprites.w_frame, sprites.w_f, sprites.w_z) == (5.0, 1.0, 1.0, 1.0)
    assert (sprites.optimizer, sprites.lr, sprites.batch_size, sprites.epochs) == ("adam", 2e-3, 128, 2000)
    assert sprites.base_channels == 64 and sprites.kl_anneal == "none"
    faces = DBSEConfig.for_profile("paper", "faces")
    assert (faces.f_dim, faces.z_dim, faces.g_dim, faces.rnn_size) == (64, 64, 128, 256)
    assert (faces.w_seq, faces.w_frame, faces.w_f, faces.w_z) == (87.0, 30.0, 15.0, 1.0)
    assert (faces.lr, faces.batch_size, faces.kl_anneal) == (1.5e-3, 64, "cyclic")
    speech = DBSEConfig.for_profile("paper", "speech")
    assert (speech.f_dim, speech.z_dim, speech.g_dim, speech.rnn_size) == (128, 128, 128, 256)
    for profile in ("smoke", "quick"):
        config = DBSEConfig.for_profile(profile, "sprites")
        assert config.steps > 0 and config.batch_size > 0


def test_config_validation_and_overrides():
    config = DBSEConfig.for_profile("smoke").with_overrides({"lr": "1e-3", "audio_hidden": "32,16", "w_frame": "2"})
    assert config.lr == 1e-3 and config.audio_hidden == (32, 16) and config.w_frame == 2.0
    with pytest.raises(ConfigError, match="decoder_output"):
        DBSEConfig(decoder_output="relu")
    with pytest.raises(ConfigError, match="kl_anneal"):
        DBSEConfig.for_profile("smoke").with_overrides({"kl_anneal": "linear"})
