"""The README's plugin-author example is a working package: install its entry point and run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_quick_start_matches_ci():
    ci = (README.parent / ".ci" / "run").read_text().replace("--quiet ", "")
    quick = _blocks("bash")[0]
    assert "pip install torch==2.13.0" in quick and "pip install torch==2.13.0" in ci
    assert 'pip install -e ".[test,data,faces]"' in quick and 'pip install -e ".[test,data,faces]"' in ci
    assert "\npytest" in quick and "\npytest" in ci


def test_readme_plugin_package_runs_end_to_end(tmp_path, cache_dir):
    pyproject = next(b for b in _blocks("toml") if "entry-points.seqbench" in b)
    module = next(b for b in _blocks("python") if "seqbench_add_methods" in b)
    meta = tomllib.loads(pyproject)
    name, version = meta["project"]["name"], meta["project"]["version"]
    (entry, target), = meta["project"]["entry-points"]["seqbench"].items()
    site = tmp_path / "site"
    (site / target).mkdir(parents=True)
    (site / target / "__init__.py").write_text(module)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[seqbench]\n{entry} = {target}\n")
    env = dict(os.environ, PYTHONPATH=str(site))

    listed = subprocess.run([sys.executable, "-m", "seqbench", "list", "methods"], env=env, capture_output=True,
                            text=True, check=True)
    assert re.search(r"^\s+linear\s.*seqbench-linear 0.1", listed.stdout, flags=re.M), listed.stdout

    run = subprocess.run([sys.executable, "-m", "seqbench", "run", "--methods", "linear", "--metrics", "mse",
                          "--profile", "smoke", "--data-option", "synthetic-sprites.size=32", "--no-progress",
                          "-p", "no:mlflow_plugin", "-o", str(tmp_path / "out")],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    import seqbench

    frame = seqbench.load_results(tmp_path / "out")
    mse = frame[(frame["key"] == "mse")]["value"].iloc[0]
    chance = frame[(frame["key"] == "chance/mse")]["value"].iloc[0]
    assert 0 < mse < 1 and chance > 0


def test_readme_metric_example_runs_end_to_end(tmp_path, cache_dir):
    """The README's metric plugin, loaded with ``-p``, scores a built-in method and validates its option."""
    module = next(b for b in _blocks("python") if "seqbench_add_metrics" in b)
    site = tmp_path / "site"
    site.mkdir()
    (site / "readme_metric.py").write_text(module)
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    base = [sys.executable, "-m", "seqbench", "run", "--methods", "dbse", "--metrics", "mean-abs", "--profile", "smoke",
            "--data-option", "synthetic-sprites.size=32", "--no-progress", "-p", "no:mlflow_plugin",
            "-p", "readme_metric", "-o", str(tmp_path / "out")]
    bad = subprocess.run([*base, "--metric-option", "mean-abs.clip_batch=2"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "valid options: clip_batches" in bad.stderr
    run = subprocess.run([*base, "--metric-option", "mean-abs.clip_batches=2"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    import seqbench

    row = seqbench.load_results(tmp_path / "out").iloc[0]
    assert row["status"] == "ok" and 0 < row["value"] < 1 and row["n"] > 0
