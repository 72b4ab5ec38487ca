"""The evaluation context hands metrics the run's plugins and judges; no plugin loads the plugins itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from seqbench.errors import ConfigError, SeqbenchError
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_backends_come_from_the_plugins_the_runner_passes():
    plugins = load_plugins()
    assert EvalContext(device=CPU, registry=plugins).backends is plugins.backends
    with pytest.raises(SeqbenchError, match="no plugins in this evaluation context"):
        EvalContext(device=CPU).backends


def test_a_metric_checks_its_backend_options_against_the_run_plugins():
    plugins = load_plugins()
    metric = plugins.metrics.get("akd")(backend_bogus=1)
    with pytest.raises(SeqbenchError, match="no plugins in metric 'akd'"):
        metric.check_options()
    with pytest.raises(ConfigError, match="akd.backend_bogus does not exist"):
        metric.use_plugins(plugins).check_options()


def test_the_judge_is_loaded_once_per_context(monkeypatch):
    import seqbench.judges

    calls = []
    monkeypatch.setattr(seqbench.judges, "load_judge", lambda *args, **kwargs: calls.append(kwargs) or len(calls))
    ctx = EvalContext(device=CPU)
    spec = type("Spec", (), {"fingerprint": "abc"})()
    data = EvalData(spec, None, None)
    assert ctx.judge(data, "config", "w1") == ctx.judge(data, "config", "w1") == 1
    assert ctx.judge(data, "config", "train") == 2
    assert [c["weights"] for c in calls] == ["w1", "train"]


def test_no_plugin_module_loads_the_plugins():
    """Plugins get the loaded registry from the runner (EvalContext, Metric.use_plugins), never reload it."""
    folders = [ROOT / "methods", ROOT / "metrics", ROOT / "datasets", ROOT / "seqbench" / "backends"]
    offenders = [str(path.relative_to(ROOT)) for folder in folders for path in sorted(folder.glob("*.py"))
                 if re.search(r"\bload_plugins\s*\(", path.read_text(encoding="utf-8"))]
    assert not offenders
