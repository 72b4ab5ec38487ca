"""Judges: architecture from the DataSpec, training on train only, selection on validation, disk cache.

Also home of the toy data and oracle methods the metric tests share (``from test_judges import ...``):
"bars" clips whose static label is the colour channel of a vertical bar and whose dynamic label is
the direction the bar moves in, and a method that encodes them exactly.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from seqbench.config import MethodConfig
from seqbench.data import SplitData
from seqbench.errors import ConfigError, NotApplicable
from seqbench.judges import Judge, JudgeConfig, judge_config_for, load_judge
from seqbench.model_store import cached_model
from seqbench.trainer import FitConfig, fit_model
from seqbench.method import Method
from seqbench.types import DataSpec, Factors, LabelSpec

SIZE, FRAMES = 16, 4
COLUMNS = np.array([2, 5, 8, 11])  # bar position per frame when moving right

BARS_SPEC = DataSpec(name="bars", modality="video", frames=FRAMES, channels=3, height=SIZE, width=SIZE,
                     labels=(LabelSpec("colour", 3, "static"), LabelSpec("direction", 2, "dynamic")),
                     identity_label="identity", family="toy", fingerprint="ba250001")

TINY_JUDGE = JudgeConfig(base_channels=4, g_dim=8, hidden=8, head_hidden=16, lr=1e-2, batch_size=16,
                         max_steps=300, val_every=20, val_fraction=0.2)


def render_bars(colour: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Clips ``[N, T, 3, S, S]``: a 2-px bar in channel ``colour[i]`` at column ``columns[i, t]``."""
    n, t = columns.shape
    x = np.zeros((n, t, 3, SIZE, SIZE), np.float32)
    cols = np.clip(np.rint(columns).astype(int), 0, SIZE - 2)
    ii, tt = np.meshgrid(np.arange(n), np.arange(t), indexing="ij")
    for dx in (0, 1):
        x[ii, tt, colour[ii], :, cols + dx] = 1.0
    return x


def make_bars(n: int, seed: int) -> SplitData:
    rng = np.random.default_rng(seed)
    colour, direction = rng.integers(0, 3, n), rng.integers(0, 2, n)
    columns = np.where(direction[:, None] == 0, COLUMNS, COLUMNS[::-1])
    # keypoints [N, T, 2, 2]: top and bottom centre of the bar (x, y) in pixels
    centre = columns.astype(np.float32) + 1.0
    keypoints = np.stack([np.stack([centre, np.zeros_like(centre)], -1),
                          np.stack([centre, np.full_like(centre, SIZE)], -1)], axis=2)
    return SplitData(x=render_bars(colour, columns), labels={"colour": colour, "direction": direction},
                     identity=np.arange(n) + 1000 * seed, keypoints=keypoints)


class Oracle(Method):
    """Encodes bars exactly: static = colour-channel intensities [3], dynamic = bar column per frame [1].

    ``leak=True`` also writes the direction into the static code and the colour into the dynamic
    code; ``ignore_static=True`` decodes every clip in channel 0. ``prior=False`` removes ``sample``.
    """

    name = "oracle"

    def __init__(self, leak: bool = False, ignore_static: bool = False):
        super().__init__(MethodConfig(), BARS_SPEC)
        self.leak, self.ignore_static = leak, ignore_static
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch):
        return {"loss": self.dummy.sum()}

    def encode(self, x: torch.Tensor) -> Factors:
        static = x.mean(dim=(1, 3, 4))  # [B, 3]
        profile = x.sum(dim=(2, 3))  # [B, T, W]
        cols = (profile * torch.arange(SIZE, dtype=x.dtype)).sum(-1) / profile.sum(-1).clamp_min(1e-6) - 0.5
        dynamic = cols[..., None]
        if self.leak:
            direction = (cols[:, -1] < cols[:, 0]).to(x.dtype)
            static = torch.cat([static, direction[:, None]], 1)
            dynamic = torch.cat([dynamic, static[:, None, :3].argmax(-1, keepdim=True).to(x.dtype).expand(-1, x.shape[1], 1)], 2)
        return Factors(static, dynamic)

    def decode(self, factors: Factors, *, generator=None) -> torch.Tensor:
        colour = factors.static[:, :3].argmax(1).numpy()
        if self.ignore_static:
            colour = np.zeros_like(colour)
        return torch.from_numpy(render_bars(colour, factors.dynamic[..., 0].numpy()))

    def sample(self, n, frames, which, *, generator=None):
        if which == "static":
            return torch.eye(3)[torch.randint(0, 3, (n,), generator=generator)] * 0.1
        direction = torch.randint(0, 2, (n,), generator=generator)
        cols = torch.tensor(COLUMNS, dtype=torch.float32)
        return torch.where(direction[:, None] == 0, cols, cols.flip(0))[..., None]


class NoPrior(Oracle):
    name = "noprior"
    sample = Method.sample


TINY_JUDGE_OPTIONS = {f"judge_{k}": v for k, v in dataclasses.asdict(TINY_JUDGE).items()}


@pytest.fixture(scope="module")
def judge_cache(tmp_path_factory):
    """``SEQBENCH_CACHE`` in a folder shared by every test module of the session (judges train once)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.getbasetemp() / "shared-judge-cache"
    mp.setenv("SEQBENCH_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def bars_judge(judge_cache):
    """The tiny judge of the bars data (the same one the metric tests get through the metric)."""
    return load_judge(BARS_SPEC, make_bars(120, 0), make_bars(60, 1), config=TINY_JUDGE, log=False)


# ----------------------------------------------------------------------------------- tests

def test_judge_architecture_follows_spec():
    spec = dataclasses.replace(BARS_SPEC, frames=7, height=32, width=32,
                               labels=BARS_SPEC.labels + (LabelSpec("speed", 5, "dynamic"),))
    judge = Judge(spec, TINY_JUDGE)
    out = judge(torch.rand(2, 7, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"colour": (2, 3), "direction": (2, 2), "speed": (2, 5)}
    assert judge.features(torch.rand(2, 7, 3, 32, 32)).shape == (2, 2 * TINY_JUDGE.hidden)


def test_judge_not_applicable():
    for spec in (dataclasses.replace(BARS_SPEC, height=24, width=24), dataclasses.replace(BARS_SPEC, modality="audio"),
                 dataclasses.replace(BARS_SPEC, labels=())):
        with pytest.raises(NotApplicable):
            Judge(spec, TINY_JUDGE)


def test_judge_config_presets_and_overrides():
    sprites = dataclasses.replace(BARS_SPEC, family="sprites")
    assert judge_config_for(sprites).base_channels == 16
    assert judge_config_for(BARS_SPEC).base_channels == 64  # the reference width elsewhere
    assert judge_config_for(BARS_SPEC, {"lr": 5e-4}).lr == 5e-4
    with pytest.raises(ConfigError, match="valid judge options"):
        judge_config_for(BARS_SPEC, {"learning_rate": 1.0})


def test_cached_model_trains_once(tmp_path):
    calls = []

    def build():
        return torch.nn.Linear(2, 1)

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(3.0)
        return {"score": 0.5}

    model, meta = cached_model("things", {"a": 1}, build, train, root=tmp_path)
    again, meta2 = cached_model("things", {"a": 1}, build, train, root=tmp_path)
    assert len(calls) == 1 and not meta["cached"] and meta2["cached"] and meta2["score"] == 0.5
    assert torch.equal(again.weight, torch.full((1, 2), 3.0)) and not again.training
    cached_model("things", {"a": 2}, build, train, root=tmp_path)
    assert len(calls) == 2  # another key is another model


def test_cached_model_records_a_digest_of_its_weights(tmp_path):
    """The key names a recipe; the digest names the weights, which differ when trained elsewhere."""
    import json

    def train(value):
        def fill(model):
            with torch.no_grad():
                model.weight.fill_(value)
                model.bias.zero_()
            return {}
        return fill

    _, first = cached_model("things", {"a": 1}, lambda: torch.nn.Linear(2, 1), train(3.0), root=tmp_path)
    _, again = cached_model("things", {"a": 1}, lambda: torch.nn.Linear(2, 1), train(3.0), root=tmp_path)
    _, other = cached_model("things", {"a": 1}, lambda: torch.nn.Linear(2, 1), train(3.5), root=tmp_path / "elsewhere")
    assert first["weights"] == again["weights"] and len(first["weights"]) == 16
    assert other["weights"] != first["weights"] and other["digest"] == first["digest"]
    meta_path = tmp_path / "things" / first["digest"] / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["weights"]  # a cache written before digests were stored
    meta_path.write_text(json.dumps(meta))
    _, old = cached_model("things", {"a": 1}, lambda: torch.nn.Linear(2, 1), train(3.0), root=tmp_path)
    assert old["weights"] == first["weights"]


def test_fit_model_selects_on_validation_and_stops_at_target():
    data = make_bars(40, 3)
    scores = iter([0.2, 0.9, 0.5, 1.0, 0.3])
    seen_val_sizes = []
    model = torch.nn.Linear(1, 1)

    def loss_fn(m, batch):
        return (m(batch.x.mean(dim=(1, 2, 3, 4))[:, None]) ** 2).mean()

    def score_fn(m, split):
        seen_val_sizes.append(len(split))
        return next(scores)

    result = fit_model(model, loss_fn, score_fn, data, FitConfig(max_steps=100, val_every=2, target=1.0,
                                                                  val_fraction=0.25, batch_size=8),
                       torch.device("cpu"))
    assert result.steps == 8 and result.best_step == 8 and result.best_val == 1.0  # stopped at the 4th check
    assert result.val_items == 10 and result.train_items == 30 and set(seen_val_sizes) == {10}
    with pytest.raises(ConfigError, match="val_fraction"):
        fit_model(model, loss_fn, score_fn, data, FitConfig(val_fraction=0.0), torch.device("cpu"))


def test_trained_judge_ceiling_and_cache(bars_judge):
    # every head is learnt; the ceiling is measured on the test split
    assert bars_judge.ceiling["colour"] == 1.0 and bars_judge.ceiling["direction"] == 1.0
    assert bars_judge.ceiling["static"] == bars_judge.ceiling["joint"] == 1.0
    assert bars_judge.meta["fit"]["val_items"] == 24 and bars_judge.meta["fit"]["train_items"] == 96
    assert re.fullmatch(r"judge-[0-9a-f]{8}@[0-9a-f]{8}", bars_judge.name)  # key @ weights
    again = load_judge(BARS_SPEC, make_bars(120, 0), make_bars(60, 1), config=TINY_JUDGE, log=False)
    assert again.meta["cached"] and again.meta["digest"] == bars_judge.meta["digest"]


def test_judge_never_trains_on_test(tmp_path, monkeypatch):
    # shuffled test labels: the ceiling drops to chance while validation (carved from train) stays perfect
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path))
    test = make_bars(60, 1)
    test.labels["colour"] = np.random.default_rng(0).permutation(test.labels["colour"])
    judge = load_judge(BARS_SPEC, make_bars(120, 0), test, config=TINY_JUDGE, log=False)
    assert judge.meta["fit"]["best_val"] == 1.0
    assert judge.ceiling["direction"] == 1.0 and judge.ceiling["colour"] < 0.7


def test_another_test_selection_reuses_the_judge_and_remeasures_the_ceiling(bars_judge):
    # e.g. `--limit`: the weights depend on train only, the ceiling on the test clips scored
    test = make_bars(60, 1).subset(np.arange(30))
    test.labels["direction"] = 1 - test.labels["direction"]  # wrong labels: the ceiling must follow them
    again = load_judge(BARS_SPEC, make_bars(120, 0), test, config=TINY_JUDGE, log=False)
    assert again.meta["cached"] and again.meta["digest"] == bars_judge.meta["digest"]
    assert again.ceiling["direction"] == 0.0 and again.ceiling["colour"] == 1.0
