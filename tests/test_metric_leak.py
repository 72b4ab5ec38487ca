"""The ``leak`` metric: an exact method leaks nothing, a method that copies each factor into the other code leaks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqbench.errors import ConfigError
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared toys live in test_judges
from test_judges import BARS_SPEC, Oracle, make_bars  # noqa: E402


def _run(method, **options):
    metric = load_plugins().metrics.get("leak")(**options)
    data = EvalData(BARS_SPEC, make_bars(150, 0), make_bars(90, 1))
    return metric, metric.evaluate(method, data, EvalContext(device=torch.device("cpu"), batch_size=64))


def test_exact_method_is_at_chance():
    metric, out = _run(Oracle())
    test = make_bars(90, 1)
    # s = colour intensities: identical for both directions -> S->D is the constant majority guess
    assert out["leak/s_to_d_direction"].value <= out["chance/leak/s_to_d_direction"].value + 1e-12
    assert out["chance/leak/s_to_d_direction"].value == pytest.approx(np.bincount(test.labels["direction"]).max() / 90)
    # pooled d = bar positions: identical for every colour -> D->S cannot beat chance
    assert out["leak/d_to_s_colour"].value <= out["chance/leak/d_to_s_colour"].value + 1e-12
    assert out["leak/leakage"].value == pytest.approx((out["leak/s_to_d"].value + out["leak/d_to_s"].value) / 2)
    assert out["leak/leakage"].backend == "probe-logreg" and out["leak/leakage"].n == 90
    assert metric.output("leak/leakage").higher_is_better is False
    assert metric.output("leak/d_to_s_colour").higher_is_better is False


def test_leaky_method_is_caught():
    _, out = _run(Oracle(leak=True))
    assert out["leak/s_to_d"].value == 1.0 and out["leak/d_to_s"].value == 1.0 and out["leak/leakage"].value == 1.0
    assert out["leak/leakage"].ci_low == out["leak/leakage"].ci_high == 1.0
    mlp = _run(Oracle(leak=True), classifier="mlp", max_train=100)[1]
    assert mlp["leak/leakage"].value == 1.0 and mlp["leak/leakage"].backend == "probe-mlp"


def test_chance_row_averages_like_the_scores():
    _, out = _run(Oracle())
    assert out["chance/leak/leakage"].value == pytest.approx(
        (out["chance/leak/s_to_d"].value + out["chance/leak/d_to_s"].value) / 2)
    lo, hi = out["leak/d_to_s"].ci_low, out["leak/d_to_s"].ci_high
    assert lo <= out["leak/d_to_s"].value <= hi


def test_bad_options():
    with pytest.raises(ConfigError, match="logreg or mlp"):
        _run(Oracle(), classifier="svm")
    with pytest.raises(ConfigError, match="valid options: classifier, max_train"):
        _run(Oracle(), clf="mlp")
