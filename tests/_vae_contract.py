"""Helpers for the VAE-style method tests (DBSE, SPYL, C-DSVAE) and the contract tests SPYL and C-DSVAE share.

A test module star-imports this and defines the fixture ``method_cls``; the ``factory`` fixture
(``factory(spec, **overrides) -> method``: the smoke profile at tiny widths, seeded) and every
``test_*`` here then run against that method. Not collected on its own (the file name does not
start with ``test_``); the tests directory is put on ``sys.path`` by the importing module because
pytest runs with ``--import-mode=importlib``.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from seqbench.cli import main
from seqbench.config import PROFILES, MethodConfig
from seqbench.errors import ConfigError
from seqbench.method import Batch
from seqbench.results import load_results
from seqbench.types import DataSpec, Factors

__all__ = ["AUDIO", "TINY", "batch", "clips", "every_profile", "factory", "moving_squares", "one_thread",
           "seeded_model", "video", "test_audio_outside_unit_range_decodes_linearly", "test_decode_lands_in_the_value_range",
           "test_encode_is_deterministic_in_eval_mode", "test_every_parameter_gets_a_gradient",
           "test_loss_decreases_when_overfitting_a_fixed_batch", "test_sample_shapes_and_generator_reproducibility",
           "test_plugin_registers", "test_shapes", "test_smoke_run_through_the_runner", "test_unsupported_frame_size_is_reported_not_crashed",
           "test_validation_step_is_repeatable"]

TINY = dict(s_dim=6, d_dim=5, g_dim=8, rnn_size=8, base_channels=4, audio_hidden=(16,))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads; on a busy 2-core machine OpenMP spin-waits cost seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def factory(method_cls):
    def make(spec: DataSpec, **overrides):
        torch.manual_seed(0)
        return method_cls(method_cls.Config.for_profile("smoke").with_overrides({**TINY, **overrides}), spec)
    return make


def every_profile(config_cls: type[MethodConfig], family: str = "generic") -> dict[str, MethodConfig]:
    """``config_cls`` resolved for each run profile: a profile whose values fail validation fails the test."""
    return {profile: config_cls.for_profile(profile, family) for profile in PROFILES}


def seeded_model(method_cls: type, tiny: dict, spec: DataSpec, **overrides):
    """``method_cls`` built from its config at ``tiny`` widths (plus ``overrides``) with seed-0 weights.

    A test's expected numbers then do not depend on what ran before it.
    """
    torch.manual_seed(0)
    return method_cls(method_cls.Config(**{**tiny, **overrides}), spec)


def video(size: int = 32, value_range: tuple[float, float] = (0.0, 1.0), frames: int = 4) -> DataSpec:
    return DataSpec(name=f"v{size}", modality="video", frames=frames, channels=3, height=size, width=size,
                    value_range=value_range, family="sprites")


AUDIO = DataSpec(name="speech", modality="audio", frames=5, channels=12, height=1, width=1,
                 value_range=(-4.0, 4.0), family="speech")


def clips(spec: DataSpec, n: int = 3, seed: int = 0) -> torch.Tensor:
    lo, hi = spec.value_range
    x = torch.rand(n, spec.frames, spec.channels, spec.height, spec.width, generator=torch.Generator().manual_seed(seed))
    return x * (hi - lo) + lo


def batch(x: torch.Tensor) -> Batch:
    return Batch(x, {}, torch.arange(len(x)))


def moving_squares(n: int, frames: int, size: int) -> torch.Tensor:
    """Clips with a static per-clip colour and a square moving one pixel per frame: learnable structure."""
    colour = torch.rand(n, 1, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    x = torch.zeros(n, frames, 3, size, size)
    for t in range(frames):
        x[:, t, :, 4:10, 2 + t:8 + t] = 1.0
    return x * colour


@pytest.mark.parametrize("spec", [video(32), video(64), AUDIO], ids=["video32", "video64", "audio"])
def test_shapes(factory, spec):
    model = factory(spec)
    model.global_step, model.total_steps = 10, 10  # contrastive terms on
    x = clips(spec)
    losses = model.training_step(batch(x))
    assert {"loss", "recon", "kl_s", "kl_d", "mi", "nce_s", "nce_d"} <= set(losses)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert losses["nce_s"] > 0 and losses["nce_d"] > 0
    model.eval()
    factors = model.encode(x)
    assert factors.static.shape == (3, 6) and factors.dynamic.shape == (3, spec.frames, 5)
    assert model.decode(factors).shape == x.shape


def test_encode_is_deterministic_in_eval_mode(factory):
    model = factory(video(32)).eval()
    x = clips(video(32))
    a, b = model.encode(x), model.encode(x)
    assert torch.equal(a.static, b.static) and torch.equal(a.dynamic, b.dynamic)


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_decode_lands_in_the_value_range(factory, value_range):
    spec = video(32, value_range)
    model = factory(spec).eval()
    assert model.output == "sigmoid"
    out = model.decode(Factors(torch.randn(4, 6) * 5, torch.randn(4, 4, 5) * 5))
    assert out.min() >= value_range[0] and out.max() <= value_range[1]
    x = clips(spec)
    assert torch.allclose(model.from_model_space(model.to_model_space(x)), x, atol=1e-6)
    assert model.to_model_space(x).min() >= 0.0


def test_audio_outside_unit_range_decodes_linearly(factory):
    model = factory(AUDIO)
    assert model.output == "linear"
    assert factory(dataclasses.replace(AUDIO, value_range=(0.0, 1.0))).output == "sigmoid"
    with pytest.raises(ConfigError, match="finite"):
        factory(dataclasses.replace(AUDIO, value_range=(float("-inf"), float("inf"))), decoder_output="sigmoid")


def test_loss_decreases_when_overfitting_a_fixed_batch(factory):
    spec = video(16)
    model = factory(spec)
    model.total_steps = 1  # contrastive terms on from the start: the whole objective must be trainable
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
    assert sum(history[-5:]) / 5 < 0.6 * history[0]


def test_every_parameter_gets_a_gradient(factory):
    model = factory(video(32))
    model.global_step, model.total_steps = 10, 10
    model.training_step(batch(clips(video(32))))["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_validation_step_is_repeatable(factory):
    model = factory(video(32)).eval()
    b = batch(clips(video(32)))
    with torch.no_grad():
        first = model.validation_step(b)
        assert torch.equal(first["loss"], model.validation_step(b)["loss"])
    assert first["nce_s"] > 0  # validation scores the full objective, warm-up or not


def test_sample_shapes_and_generator_reproducibility(factory, method_cls):
    model = factory(video(32)).eval()
    static = model.sample(5, 7, "static", generator=torch.Generator().manual_seed(0))
    dynamic = model.sample(5, 7, "dynamic", generator=torch.Generator().manual_seed(0))
    assert static.shape == (5, 6) and dynamic.shape == (5, 7, 5)
    assert torch.equal(dynamic, model.sample(5, 7, "dynamic", generator=torch.Generator().manual_seed(0)))
    assert torch.equal(static, model.sample(5, 7, "static", generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(dynamic, model.sample(5, 7, "dynamic", generator=torch.Generator().manual_seed(1)))
    assert model.decode(Factors(static, dynamic)).shape == (5, 7, 3, 32, 32)
    assert method_cls.can_sample()
    with pytest.raises(ValueError, match="static"):
        model.sample(2, 3, "both")  # type: ignore[arg-type]


def test_unsupported_frame_size_is_reported_not_crashed(factory, method_cls):
    odd = video(48)
    assert "32" in method_cls.supports(odd)
    assert method_cls.supports(video(64)) is None and method_cls.supports(AUDIO) is None
    with pytest.raises(ConfigError, match="square frames"):
        factory(odd)


def test_smoke_run_through_the_runner(method_cls, cache_dir, tmp_path, capsys):
    """``seqbench run --methods NAME --profile smoke`` end to end (fewer steps, a few test clips)."""
    name = method_cls.name
    out = tmp_path / "out"
    code = main(["run", "--methods", name, "--metrics", "mse", "--profile", "smoke", "--data-option",
                 "synthetic-sprites.size=32", "--limit", "8", "--no-progress", "-p", "no:mlflow_plugin",
                 "--set", f"{name}.steps=8", "--set", f"{name}.val_every=8", "--set", f"{name}.checkpoint_every=8",
                 "-o", str(out)])
    assert code == 0, capsys.readouterr().err[-2000:]
    frame = load_results(out)
    assert (frame["status"] == "ok").all() and set(frame["method"]) == {name}
    assert 0 < frame[frame["key"] == "mse"]["value"].iloc[0] < 1


def test_plugin_registers(method_cls, monkeypatch):
    from seqbench import plugins

    # Sibling built-in modules may still be in progress; register only the importable ones.
    present = tuple(m for m in plugins.BUILTIN_MODULES if importlib.util.find_spec(m) is not None)
    monkeypatch.setattr(plugins, "BUILTIN_MODULES", present)
    registry = plugins.load_plugins(autoload=False)
    assert registry.methods.get(method_cls.name) is method_cls
    assert registry.methods.origin(method_cls.name) == f"builtin seqbench.methods.{method_cls.name}"
