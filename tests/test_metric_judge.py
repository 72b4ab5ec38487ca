"""The ``judge`` metric on the bars data: an exact method scores the judge ceiling, broken ones do not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqbench.errors import ConfigError, NotApplicable
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins
sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared toys live in test_judges
from test_judges import BARS_SPEC, TINY_JUDGE_OPTIONS, NoPrior, Oracle, judge_cache, make_bars  # noqa: F401


def _run(method, options=None, **ctx_kwargs):
    metric = load_plugins().metrics.get("judge")(**{**TINY_JUDGE_OPTIONS, **(options or {})})
    ctx = EvalContext(device=torch.device("cpu"), batch_size=32, **ctx_kwargs)
    data = EvalData(BARS_SPEC, make_bars(120, 0), make_bars(60, 1))
    return metric, metric.evaluate(method, data, ctx), ctx


def test_exact_method_scores_the_ceiling(judge_cache):
    metric, out, _ = _run(Oracle(), {"niter": 1})
    for key in ("swap/static", "swap/dynamic", "swap/joint", "swap/acc_colour", "swap/acc_direction"):
        assert out[key].value == 1.0 and out[f"ceiling/{key}"].value == 1.0, key
        assert out[key].n == 60 and out[key].ci_low == out[key].ci_high == 1.0
        assert out[key].backend.startswith("judge-")
    # chance = frequency of the most common target (tuple): below 1, above 1/C for skewed draws
    assert 1 / 3 <= out["chance/swap/acc_colour"].value < 1.0
    assert out["chance/swap/joint"].value <= out["chance/swap/static"].value
    # fixed dynamics + sampled statics: direction kept, colour drawn from the prior (near chance)
    assert out["sample/fixed_dynamic/acc_direction"].value == 1.0
    assert out["sample/fixed_dynamic/acc_colour"].value < 0.6
    assert out["sample/fixed_static/acc_colour"].value == 1.0
    assert out["sample/fixed_static/acc_direction"].value < 0.75
    # balanced on the kept direction and always right: pbar ~ (1/2, 1/2), so H(y) ~ ln 2; one niter
    # repeat here, so IS = exp(H(y) - H(y|x)) exactly up to eps (the judge is right but not one-hot)
    fd = {k: out[f"sample/fixed_dynamic/{k}"].value for k in ("is", "h_y", "h_yx")}
    assert fd["h_y"] == pytest.approx(np.log(2), abs=0.03)
    assert 1.2 < fd["is"] <= 2.0 and fd["h_yx"] < fd["h_y"]
    assert fd["is"] == pytest.approx(np.exp(fd["h_y"] - fd["h_yx"]), rel=1e-6)
    for mode in ("fixed_dynamic", "fixed_static"):
        value = out[f"sample/{mode}/is"]
        assert 1.0 <= value.ci_low <= value.ci_high <= 2.0 + 1e-9
    # directions: the resampled factor's heads are better when lower
    assert metric.output("sample/fixed_dynamic/acc_colour").higher_is_better is False
    assert metric.output("sample/fixed_dynamic/acc_direction").higher_is_better is True
    assert metric.output("sample/fixed_static/acc_direction").higher_is_better is False
    assert metric.output("sample/fixed_dynamic/h_yx").higher_is_better is False
    assert metric.output("swap/acc_colour").higher_is_better is True


def test_swap_detects_a_method_that_ignores_the_static_code(judge_cache):
    _, out, _ = _run(Oracle(ignore_static=True), {"protocols": "swap"})
    test_colour = make_bars(60, 1).labels["colour"]
    pairs = EvalContext(device=torch.device("cpu")).pairs(BARS_SPEC, 60)
    # every decode is colour 0: static accuracy = share of pairs whose static donor has colour 0
    assert out["swap/static"].value == pytest.approx(np.mean(test_colour[pairs[:, 0]] == 0))
    assert out["swap/dynamic"].value == 1.0
    assert not any(key.startswith("sample/") for key in out)


def test_recon_separates_rendering_from_disentanglement(judge_cache):
    test_colour = make_bars(60, 1).labels["colour"]
    _, exact, _ = _run(Oracle(), {"protocols": "recon"})
    for key in ("recon/static", "recon/dynamic", "recon/joint", "recon/acc_colour", "recon/acc_direction"):
        assert exact[key].value == 1.0 and exact[f"ceiling/{key}"].value == 1.0, key
        assert exact[key].n == 60
    assert exact["chance/recon/acc_colour"].value == pytest.approx(np.bincount(test_colour).max() / 60)
    assert not any(key.startswith(("swap/", "sample/")) for key in exact)
    # a decoder that cannot draw the colour fails its own reconstructions: every decode is colour 0
    _, blind, _ = _run(Oracle(ignore_static=True), {"protocols": "recon,swap"})
    assert blind["recon/static"].value == pytest.approx(np.mean(test_colour == 0))
    assert blind["recon/static"].value < 1.0
    assert blind["recon/dynamic"].value == 1.0
    # a decoder that reads the colour from the dynamic code draws its own clips right (recon at the
    # ceiling) while its swaps take the colour of the dynamics donor
    _, entangled, _ = _run(ColourFromDynamics(leak=True), {"protocols": "recon,swap"})
    pairs = EvalContext(device=torch.device("cpu")).pairs(BARS_SPEC, 60)
    assert entangled["recon/joint"].value == 1.0
    assert entangled["swap/static"].value == pytest.approx(np.mean(test_colour[pairs[:, 0]] == test_colour[pairs[:, 1]]))


class ColourFromDynamics(Oracle):
    """Decodes the colour its leaky dynamic code carries instead of the static code's."""

    def decode(self, factors, *, generator=None):
        static = torch.nn.functional.one_hot(factors.dynamic[:, 0, 1].long(), 3).to(factors.static.dtype)
        return super().decode(type(factors)(static, factors.dynamic), generator=generator)


def test_fixed_pairs_and_seeded_samples_are_reproducible(judge_cache):
    _, first, _ = _run(Oracle(leak=True), {"niter": 1})
    _, second, _ = _run(Oracle(leak=True), {"niter": 1})
    assert {k: v.value for k, v in first.items()} == {k: v.value for k, v in second.items()}


def test_method_without_prior(judge_cache):
    _, out, ctx = _run(NoPrior())
    assert "swap/joint" in out and not any(k.startswith("sample/") for k in out)
    assert "no prior" in ctx.not_applicable["sample/*"]
    with pytest.raises(NotApplicable, match="no prior"):
        _run(NoPrior(), {"protocols": "sample"})


def test_options_are_checked(judge_cache):
    with pytest.raises(ConfigError, match="valid options"):
        _run(Oracle(), {"n_iter": 2})
    with pytest.raises(ConfigError, match="protocols"):
        _run(Oracle(), {"protocols": "swap,teleport"})


def test_not_applicable_to_audio_and_odd_sizes():
    import dataclasses

    metric = load_plugins().metrics.get("judge")()
    assert "video" in metric.applicable(Oracle(), dataclasses.replace(BARS_SPEC, modality="audio"))
    assert "square frames" in metric.applicable(Oracle(), dataclasses.replace(BARS_SPEC, height=20, width=20))
    assert metric.applicable(Oracle(), BARS_SPEC) is None
