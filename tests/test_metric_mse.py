"""``mse`` per-frame keys against hand-computed values (the clip-level keys are in test_mse_metric.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.data import SplitData
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins
from seqbench.types import DataSpec, Factors


class Drifting:
    """Frame t of every decode is the input plus (t + 1) * delta: per-frame MSE = ((t + 1) delta)^2."""

    name = "drifting"

    def __init__(self, delta: float):
        self.delta = delta

    def encode(self, x):
        return Factors(x.flatten(1), x.new_zeros(len(x), x.shape[1], 1))

    def decode(self, factors, *, generator=None):
        x = factors.static.view(-1, 2, 1, 12, 12)
        return x + self.delta * torch.arange(1, 3, dtype=x.dtype).view(1, 2, 1, 1, 1)


def test_per_frame_mse_hand_values():
    rng = np.random.default_rng(0)
    split = SplitData(x=rng.uniform(0.2, 0.7, size=(10, 2, 1, 12, 12)).astype(np.float32), labels={})
    data = EvalData(DataSpec("fixture", "video", 2, 1, 12, 12), split, split)
    metric = load_plugins().metrics.get("mse")()
    values = metric.evaluate(Drifting(0.1), data, EvalContext(device=torch.device("cpu"), batch_size=3))
    assert values["mse/frame0"].value == pytest.approx(0.01, rel=1e-5)
    assert values["mse/frame1"].value == pytest.approx(0.04, rel=1e-5)
    assert values["mse"].value == pytest.approx(0.025, rel=1e-5)  # the clip MSE is the mean over frames
    # PSNR in the value range [0, 1]: per clip 10 log10(1 / 0.025)
    assert values["psnr"].value == pytest.approx(10 * np.log10(1 / 0.025), rel=1e-4)
    assert values["mse/frame1"].n == 10 and values["mse/frame1"].ci_low == pytest.approx(0.04, rel=1e-4)
    assert metric.output("mse/frame1").higher_is_better is False


class ExactReconstruction(Drifting):
    """Decoding the factors drifts; the method's own reconstruction path returns the input exactly."""

    def reconstruct(self, x, *, generator=None):
        return x.clone()


def test_path_option_scores_the_methods_reconstruction_path():
    from seqbench.errors import ConfigError

    rng = np.random.default_rng(1)
    split = SplitData(x=rng.uniform(0.2, 0.7, size=(6, 2, 1, 12, 12)).astype(np.float32), labels={})
    data = EvalData(DataSpec("fixture", "video", 2, 1, 12, 12), split, split)
    ctx = EvalContext(device=torch.device("cpu"), batch_size=4)
    mse_cls = load_plugins().metrics.get("mse")
    codes = mse_cls().evaluate(ExactReconstruction(0.1), data, ctx)
    own = mse_cls(path="reconstruct").evaluate(ExactReconstruction(0.1), data, ctx)
    assert codes["mse"].value == pytest.approx(0.025, rel=1e-5)
    assert own["mse"].value == 0.0 and own["psnr"].value == 100.0  # capped
    with pytest.raises(ConfigError, match="mse.path='latent'"):
        mse_cls(path="latent").evaluate(ExactReconstruction(0.1), data, ctx)
