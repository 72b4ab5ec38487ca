"""Shared fixtures: an isolated cache, and a real third-party plugin distribution on disk.

The third-party package is installed the way pip would leave it for the import system: a
package folder plus a ``*.dist-info`` folder with ``METADATA`` and ``entry_points.txt`` in a
directory on ``sys.path`` (and ``PYTHONPATH`` for subprocesses). No registry is monkeypatched.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

TOY_PLUGIN = '''
"""A third-party seqbench plugin: a tiny dataset, a linear autoencoder method and a metric."""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import seqbench
from seqbench import hookimpl
from seqbench.types import LabelSpec


class ToyBars(seqbench.DatasetAdapter):
    name = "toy-bars"
    description = "a bar moving over 4 frames; bar brightness is static"
    embedded = True

    def build_spec(self):
        return seqbench.DataSpec(name=self.name, modality="video", frames=4, channels=1, height=8, width=8,
                                 labels=(LabelSpec("shade", 2, "static"), LabelSpec("direction", 2, "dynamic")),
                                 identity_label="identity", family="toy", fingerprint="toybars-v1")

    def load_split(self, split):
        rng = np.random.default_rng(0 if split == "train" else 1)
        n = 48 if split == "train" else 16
        shade = rng.integers(0, 2, n)
        direction = rng.integers(0, 2, n)
        x = np.zeros((n, 4, 1, 8, 8), np.float32)
        for i in range(n):
            for t in range(4):
                col = 2 + t if direction[i] == 0 else 5 - t
                x[i, t, 0, :, col] = 0.5 + 0.5 * shade[i]
        return seqbench.SplitData(x=x, labels={"shade": shade, "direction": direction}, identity=np.arange(n))


@dataclass
class ToyConfig(seqbench.MethodConfig):
    static_dim: int = 4
    dynamic_dim: int = 4
    fail: bool = False
    profiles = {"smoke": {"steps": 12, "batch_size": 8, "lr": 1e-2, "val_every": 4, "checkpoint_every": 4,
                          "log_every": 4},
                "quick": {"steps": 30, "batch_size": 8, "lr": 1e-2, "val_every": 10, "checkpoint_every": 5},
                "paper": {"steps": 100}}


class ToyAE(seqbench.Method):
    name = "toyae"
    description = "linear static/dynamic autoencoder (test plugin)"
    Config = ToyConfig

    def __init__(self, config, spec):
        super().__init__(config, spec)
        pixels = spec.channels * spec.height * spec.width
        self.static_enc = nn.Linear(pixels, config.static_dim)
        self.dynamic_enc = nn.Linear(pixels, config.dynamic_dim)
        self.dec = nn.Linear(config.static_dim + config.dynamic_dim, pixels)

    def encode(self, x):
        flat = x.flatten(2)
        return seqbench.Factors(self.static_enc(flat.mean(1)), self.dynamic_enc(flat))

    def decode(self, factors, *, generator=None):
        b, t, _ = factors.dynamic.shape
        z = torch.cat([factors.static[:, None].expand(b, t, -1), factors.dynamic], -1)
        return self.dec(z).view(b, t, self.spec.channels, self.spec.height, self.spec.width)

    def training_step(self, batch):
        if self.config.fail:
            raise RuntimeError("toyae was told to fail")
        loss = ((self.reconstruct(batch.x) - batch.x) ** 2).mean()
        return {"loss": loss}


class ToyMean(seqbench.Metric):
    name = "toy-mean"
    description = "mean absolute reconstruction error (test plugin)"
    outputs = (seqbench.MetricOutput("mae", higher_is_better=False),)
    option_defaults = {"scale": 1.0, "delay": 0.0}

    def evaluate(self, method, data, ctx):
        import time

        time.sleep(self.resolved_options()["delay"])  # a slow evaluation, for fault-injection tests
        x = data.test.clips(np.arange(len(data.test))).to(ctx.device)
        err = (method.reconstruct(x) - x).abs().mean().item() * self.resolved_options()["scale"]
        return {"mae": seqbench.MetricValue(err, n=len(x))}


@hookimpl
def seqbench_add_datasets():
    return [ToyBars]


@hookimpl
def seqbench_add_methods():
    return [ToyAE]


@hookimpl
def seqbench_add_metrics():
    return [ToyMean]
'''


def write_distribution(root: Path, dist: str, module: str, source: str, entry_name: str | None = None) -> Path:
    """Lay out a package plus its ``.dist-info`` (METADATA, entry_points.txt) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / module).mkdir(exist_ok=True)
    (root / module / "__init__.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[seqbench]\n{entry_name or module} = {module}\n")
    return root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("SEQBENCH_CACHE", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return path


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch) -> Path:
    """The third-party distribution ``seqbench-toy`` on ``sys.path`` and ``PYTHONPATH``."""
    root = write_distribution(tmp_path / "site", "seqbench_toy", "seqbench_toy", TOY_PLUGIN, entry_name="toy")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    import importlib

    importlib.invalidate_caches()
    yield root
    sys.modules.pop("seqbench_toy", None)


@pytest.fixture
def benchmark_script():
    """A loader of ``benchmarks/<name>.py`` as a module (the scripts are not a package), to call its functions."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def make_distribution():
    """The :func:`write_distribution` helper, for tests that lay out further packages."""
    return write_distribution


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory) -> Path:
    """The toy distribution laid out once per session, for subprocess-only tests (``PYTHONPATH``)."""
    return write_distribution(tmp_path_factory.mktemp("toy-site"), "seqbench_toy", "seqbench_toy", TOY_PLUGIN,
                              entry_name="toy")
