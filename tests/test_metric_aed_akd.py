"""``aed`` / ``akd``: exact methods score 0, failed detections are excluded on both sides and reported."""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from seqbench.backends import Backend, Keypoints
from seqbench.errors import ConfigError, NotApplicable
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import Registry, load_plugins
from seqbench.types import Factors

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared toys live in test_judges
from test_judges import BARS_SPEC, SIZE, Oracle, judge_cache, make_bars  # noqa: E402,F401

TINY = {"backend_input_size": 16, "backend_base_channels": 4, "backend_feat_dim": 16, "backend_max_steps": 300,
        "backend_val_every": 25, "backend_target": 0.97, "backend_lr": 1e-2, "backend_val_fraction": 0.2}
DATA = EvalData(BARS_SPEC, make_bars(120, 0), make_bars(40, 1))


class Blank(Oracle):
    """Decodes black frames: nothing for any backend to find."""

    name = "blank"

    def decode(self, factors: Factors, *, generator=None) -> torch.Tensor:
        return torch.zeros(len(factors.static), factors.dynamic.shape[1], 3, SIZE, SIZE)


class BarColumns(Backend):
    """Keypoint = bar centre column (exact); detection fails on blue (channel 2) bars."""

    name: ClassVar[str] = "bar-columns"
    kind: ClassVar[str] = "pose"

    def __call__(self, frames):
        profile = frames.sum(dim=(1, 2))  # [N, W]
        col = (profile * torch.arange(SIZE)).sum(1) / profile.sum(1).clamp_min(1e-6)
        points = torch.stack([col, torch.zeros_like(col)], dim=1)[:, None].double().numpy()
        blue = frames[:, 2].amax(dim=(1, 2)) > 0.5
        return Keypoints(points, ~blue.numpy()[:, None])


def _run(name, method, registry=None, data=DATA, **options):
    plugins = load_plugins()
    metric = plugins.metrics.get(name)(**options)
    ctx = EvalContext(device=torch.device("cpu"), batch_size=32, registry=registry or plugins)
    return metric, metric.evaluate(method, data, ctx)


def test_exact_method_scores_zero_with_the_learned_backend(judge_cache):
    _, akd = _run("akd", Oracle(), backend="sprites-keypoints", **TINY)
    assert akd["akd/recon"].value == 0.0 and akd["akd/recon_failure"].value == 0.0
    assert re.fullmatch(r"sprites-keypoints-[0-9a-f]{8}@[0-9a-f]{8}", akd["akd/recon"].backend)  # key @ weights
    assert akd["akd/swap"].value < 0.5 * akd["chance/akd/swap"].value
    assert akd["chance/akd/swap"].value > 1.0  # real pairs move their bars differently
    _, aed = _run("aed", Oracle(), backend="sprites-identity", **TINY)
    assert aed["aed/recon"].value == 0.0
    assert aed["aed/swap"].value < 0.5 * aed["chance/aed/swap"].value
    for value in (akd["akd/swap"], aed["aed/swap"]):
        assert value.ci_low <= value.value <= value.ci_high and value.n == 40


def test_blank_decodes_are_failures_not_zeros(judge_cache):
    _, out = _run("akd", Blank(), backend="sprites-keypoints", **TINY)
    assert out["akd/recon_failure"].value == 1.0 and math.isnan(out["akd/recon"].value)
    assert out["akd/recon"].ci_low is None


def test_failed_frames_are_excluded_on_both_sides():
    registry = type("R", (), {"backends": Registry("backend")})()
    registry.backends.add(BarColumns, "test")
    data = EvalData(BARS_SPEC, make_bars(20, 0), make_bars(30, 1))
    _, out = _run("akd", Oracle(), registry, data, backend="bar-columns", variants="swap")
    pairs = EvalContext(device=torch.device("cpu")).pairs(BARS_SPEC, 30)
    colour = data.test.labels["colour"]
    # swap decodes (s_b, d_a): a frame fails when a (reference) or b (colour of the decode) is blue
    failed = (colour[pairs[:, 0]] == 2) | (colour[pairs[:, 1]] == 2)
    assert out["akd/swap_failure"].value == pytest.approx(failed.mean())
    # the exact method moves the bar like a: every kept frame has distance 0, excluded frames add nothing
    assert out["akd/swap"].value == 0.0 if (~failed).any() else math.isnan(out["akd/swap"].value)
    # chance: real a vs real b, both must be detected
    from seqbench.functional import average_keypoint_distance

    measured = BarColumns()(torch.from_numpy(data.test.x.reshape(-1, 3, SIZE, SIZE)))
    pts, ok = measured.points.reshape(30, 4, 1, 2), measured.valid.reshape(30, 4, 1)
    expected = average_keypoint_distance(pts[pairs[:, 0]], pts[pairs[:, 1]], ok[pairs[:, 0]], ok[pairs[:, 1]])
    assert out["chance/akd/swap"].value == pytest.approx(expected.value)


def test_unavailable_backend_is_not_applicable(tmp_path):
    with pytest.raises(NotApplicable, match="pip install"):
        _run("akd", Oracle(), backend="dlib-landmarks", backend_models=str(tmp_path))
    with pytest.raises(NotApplicable, match="unavailable"):
        _run("aed", Oracle(), backend="deepface-vggface")  # no VGG-Face weights in this sandbox


def test_backend_kind_and_family_checks():
    with pytest.raises(ConfigError, match="identity"):
        _run("aed", Oracle(), backend="sprites-keypoints")
    metric = load_plugins().metrics.get("akd")()
    assert "akd.backend" in metric.applicable(Oracle(), BARS_SPEC)  # family "toy" has no default
    assert metric.applicable(Oracle(), dataclasses.replace(BARS_SPEC, family="faces")) is None
    with pytest.raises(ConfigError, match="variants"):
        _run("akd", Oracle(), backend="sprites-keypoints", variants="recon,teleport")


def test_smoke_profile_sizes_the_learned_backend_to_seconds(tmp_path, monkeypatch):
    """Under ``--profile smoke`` the learned sprites backend trains the tiny network (<= 60 steps),
    unless the user sized it with ``backend_*`` options."""
    from seqbench.backends.sprites_learned import SMOKE_NET, SpritesKeypoints

    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path))
    ctx = EvalContext(device=torch.device("cpu"), batch_size=32, profile="smoke")
    backend = SpritesKeypoints()
    backend.setup(DATA, ctx)
    assert backend.config.max_steps == SMOKE_NET["max_steps"] and backend.meta["fit"]["steps"] <= 60
    sized = SpritesKeypoints(input_size=16, max_steps=10, val_every=5)
    sized.setup(DATA, EvalContext(device=torch.device("cpu"), profile="smoke"))
    assert sized.config.max_steps == 10
