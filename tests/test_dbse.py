"""DBSE method plugin: shapes, determinism, value ranges, training signal, priors, config, registration."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from seqbench.errors import ConfigError
from seqbench.method import Batch
from seqbench.methods.dbse import DBSE, DBSEConfig, cyclic_kl_weight
from seqbench.types import DataSpec, Factors

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core machine OpenMP spin-waits cost seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(f_dim=6, z_dim=5, g_dim=8, rnn_size=8, base_channels=4, audio_hidden=(16,))


def video(size: int = 32, value_range: tuple[float, float] = (0.0, 1.0), frames: int = 4) -> DataSpec:
    return DataSpec(name=f"v{size}", modality="video", frames=frames, channels=3, height=size, width=size,
                    value_range=value_range, family="sprites")


AUDIO = DataSpec(name="speech", modality="audio", frames=5, channels=12, height=1, width=1,
                 value_range=(-4.0, 4.0), family="speech")


def make(spec: DataSpec, **overrides) -> DBSE:
    torch.manual_seed(0)
    return DBSE(DBSEConfig.for_profile("smoke").with_overrides({**TINY, **overrides}), spec)


def clips(spec: DataSpec, n: int = 3, seed: int = 0) -> torch.Tensor:
    lo, hi = spec.value_range
    x = torch.rand(n, spec.frames, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(seed))
    return x * (hi - lo) + lo


def batch(x: torch.Tensor) -> Batch:
    return Batch(x, {}, torch.arange(len(x)))


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


def test_encode_is_deterministic_in_eval_mode():
    model = make(video(32)).eval()
    x = clips(video(32))
    a, b = model.encode(x), model.encode(x)
    assert torch.equal(a.static, b.static) and torch.equal(a.dynamic, b.dynamic)


def test_static_code_reads_frame_zero_only():
    model = make(video(32)).eval()
    x = clips(video(32))
    changed = x.clone()
    changed[:, 1:] = clips(video(32), seed=1)[:, 1:]
    a, b = model.encode(x), model.encode(changed)
    assert torch.allclose(a.static, b.static)
    assert not torch.allclose(a.dynamic, b.dynamic)


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_decode_lands_in_the_value_range(value_range):
    spec = video(32, value_range)
    model = make(spec).eval()
    assert model.output == "sigmoid"
    out = model.decode(Factors(torch.randn(4, 6) * 5, torch.randn(4, 4, 5) * 5))
    assert out.min() >= value_range[0] and out.max() <= value_range[1]
    x = clips(spec)
    assert torch.allclose(model.from_model_space(model.to_model_space(x)), x, atol=1e-6)
    assert model.to_model_space(x).min() >= 0.0


def test_audio_outside_unit_range_decodes_linearly():
    assert make(AUDIO).output == "linear"
    unit = dataclasses.replace(AUDIO, value_range=(0.0, 1.0))
    assert make(unit).output == "sigmoid"
    assert make(AUDIO, decoder_output="tanh").output == "tanh"
    with pytest.raises(ConfigError, match="finite"):
        make(dataclasses.replace(AUDIO, value_range=(float("-inf"), float("inf"))), decoder_output="sigmoid")


def moving_squares(n: int, frames: int, size: int) -> torch.Tensor:
    """Clips with a static per-clip colour and a square moving one pixel per frame: learnable structure."""
    g = torch.Generator().manual_seed(0)
    colour = torch.rand(n, 1, 3, 1, 1, generator=g)
    x = torch.zeros(n, frames, 3, size, size)
    for t in range(frames):
        x[:, t, :, 4:10, 2 + t:8 + t] = 1.0
    return x * colour


def test_loss_decreases_when_overfitting_a_fixed_batch():
    spec = video(16)
    model = make(spec)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    b = batch(moving_squares(4, spec.frames, 16))
    history = []
    for step in range(30):
        model.global_step = step
        loss = model.training_step(b)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, history)))
    assert sum(history[-5:]) / 5 < 0.5 * history[0]


def test_every_parameter_gets_a_gradient():
    model = make(video(32))
    model.training_step(batch(clips(video(32))))["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_validation_step_is_repeatable():
    model = make(video(32)).eval()
    b = batch(clips(video(32)))
    with torch.no_grad():
        assert torch.equal(model.validation_step(b)["loss"], model.validation_step(b)["loss"])


def test_sample_shapes_and_generator_reproducibility():
    model = make(video(32)).eval()
    static = model.sample(5, 7, "static", generator=torch.Generator().manual_seed(0))
    dynamic = model.sample(5, 7, "dynamic", generator=torch.Generator().manual_seed(0))
    assert static.shape == (5, 6) and dynamic.shape == (5, 7, 5)
    assert torch.equal(dynamic, model.sample(5, 7, "dynamic", generator=torch.Generator().manual_seed(0)))
    assert torch.equal(static, model.sample(5, 7, "static", generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(dynamic, model.sample(5, 7, "dynamic", generator=torch.Generator().manual_seed(1)))
    assert DBSE.can_sample()
    with pytest.raises(ValueError, match="static"):
        model.sample(2, 3, "both")  # type: ignore[arg-type]


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


def test_unsupported_frame_size_is_reported_not_crashed():
    odd = video(48)
    assert "32" in DBSE.supports(odd)
    assert DBSE.supports(video(64)) is None and DBSE.supports(AUDIO) is None
    with pytest.raises(ConfigError, match="square frames"):
        make(odd)


def test_plugin_registers(monkeypatch):
    from seqbench import plugins

    # Sibling built-in modules may still be in progress; register only the importable ones.
    present = tuple(m for m in plugins.BUILTIN_MODULES if importlib.util.find_spec(m) is not None)
    monkeypatch.setattr(plugins, "BUILTIN_MODULES", present)
    registry = plugins.load_plugins(autoload=False)
    assert "dbse" in registry.methods
    assert registry.methods.get("dbse") is DBSE
    assert registry.methods.origin("dbse") == "builtin seqbench.methods.dbse"
