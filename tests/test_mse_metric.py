"""The ``mse`` plugin against hand-computed values on a method with a known reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.data import SplitData
from seqbench.metric import EvalContext, EvalData
from seqbench.types import DataSpec, Factors
from seqbench.plugins import load_plugins


class ShiftBy:
    """Decodes every clip as ``x + delta`` (so MSE = delta^2, PSNR = -20 log10 delta)."""

    name = "shift"

    def __init__(self, delta: float):
        self.delta = delta

    def encode(self, x):
        return Factors(x.flatten(1), x.new_zeros(len(x), x.shape[1], 1))

    def decode(self, factors, *, generator=None):
        return factors.static.view(-1, 2, 1, 12, 12) + self.delta

    def eval(self):
        return self


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(10, 2, 1, 12, 12)).astype(np.float32)
    spec = DataSpec("fixture", "video", 2, 1, 12, 12)
    split = SplitData(x=x, labels={})
    return EvalData(spec, split, split)


def test_mse_psnr_ssim_hand_values():
    metric = load_plugins().metrics.get("mse")()
    values = metric.evaluate(ShiftBy(0.1), _data(), EvalContext(device=torch.device("cpu"), batch_size=4))
    assert values["mse"].value == pytest.approx(0.01, rel=1e-5)
    assert values["psnr"].value == pytest.approx(20.0, rel=1e-4)
    assert values["mse"].n == 10 and values["mse"].ci_low <= values["mse"].value <= values["mse"].ci_high
    assert 0.0 < values["ssim"].value < 1.0
    perfect = metric.evaluate(ShiftBy(0.0), _data(), EvalContext(device=torch.device("cpu")))
    assert perfect["mse"].value == 0.0 and perfect["psnr"].value == 100.0
    assert perfect["ssim"].value == pytest.approx(1.0)


def test_chance_is_mean_clip_mse():
    data = _data()
    metric = load_plugins().metrics.get("mse")()
    values = metric.evaluate(ShiftBy(0.0), data, EvalContext(device=torch.device("cpu")))
    x = data.test.x.astype(np.float64)
    expected = ((x - x.mean(0)) ** 2).mean()
    assert values["chance/mse"].value == pytest.approx(expected, rel=1e-5)
