"""``size`` against hand-computed parameter counts, factor sizes and compression rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.data import SplitData
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins
from seqbench.types import DataSpec, Factors


class Linear(torch.nn.Module):
    """Static code: 5 values per clip; dynamic: 3 per frame; 4 * 6 + 4 = 28 parameters."""

    name = "linear"

    def __init__(self, bits: float | None = None):
        super().__init__()
        self.frame = torch.nn.Linear(6, 4)
        if bits is not None:
            self.bits_per_frame = bits

    def encode(self, x):
        h = self.frame(x.flatten(2)[..., :6])
        return Factors(h.mean(1)[:, :1].repeat(1, 5), h[..., :3])


def _data(n=10):
    split = SplitData(x=np.random.default_rng(0).random((n, 4, 1, 2, 3), dtype=np.float32), labels={})
    return EvalData(DataSpec("fixture", "video", 4, 1, 2, 3), split, split)


def test_hand_values_and_declared_bitrate():
    metric = load_plugins().metrics.get("size")()
    ctx = EvalContext(device=torch.device("cpu"), batch_size=4)
    values = metric.evaluate(Linear(), _data(), ctx)
    assert values["params_M"].value == pytest.approx(28e-6)
    assert values["static_dim"].value == 5 and values["dynamic_dim"].value == 3
    assert values["compression"].value == pytest.approx((5 + 4 * 3) / (4 * 1 * 2 * 3))
    assert "bits_per_frame" not in values and "bits_per_frame" in ctx.not_applicable
    quantized = metric.evaluate(Linear(bits=12.0), _data(), EvalContext(device=torch.device("cpu"), batch_size=4))
    assert quantized["bits_per_frame"].value == 12.0
    assert metric.output("compression").higher_is_better is False
