"""The typed result row owns its columns: the keys and order every written ``results.jsonl`` has."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from seqbench.results import COLUMNS
from seqbench.runner.row import ResultRow
from seqbench.types import MetricValue

ROOT = Path(__file__).resolve().parent.parent


def test_the_row_columns_are_the_results_columns_then_the_plateau_summary():
    assert ResultRow.columns() == (*COLUMNS, "converged", "plateau_change", "plateau_probe", "plateau_lr_scale",
                                   "late_loss_spikes")


def test_committed_rows_have_exactly_the_row_columns():
    # rows written before a column was added end where it starts (readers default it to None)
    columns = ResultRow.columns()
    accepted = {columns, columns[: columns.index("plateau_lr_scale")], columns[: columns.index("late_loss_spikes")]}
    files = sorted((ROOT / "leaderboards" / "results").rglob("*.jsonl"))
    assert files
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            assert tuple(json.loads(line)) in accepted, path


def test_build_fills_every_column_from_the_run_unit_cell_and_value():
    run = SimpleNamespace(run_id="r1", provenance={"git_sha": "abc"}, device="cpu")
    unit = SimpleNamespace(dataset="d", method="m", seed=2, method_version="3", spec=SimpleNamespace(fingerprint="fp"),
                           config_hash="ch", model_key="mk")
    cell = SimpleNamespace(cell_key="ck")
    row = ResultRow.build(run, unit, "mse", cell, "mse/x", MetricValue(0.5, n=4, ci_low=0.4, ci_high=0.6, backend="b"),
                          higher_is_better=False, duration=1.5, profile="quick", limit=None, eval_clips=32,
                          metric_version="1", method_distribution="seqbench", metric_distribution="seqbench",
                          curve={"converged": True, "change": 0.01, "key": "curve/mse"}).to_dict()
    assert tuple(row) == ResultRow.columns()
    assert {k: row[k] for k in ("run_id", "dataset", "method", "seed", "metric", "key", "value", "n", "ci_low",
                                "ci_high", "status", "backend", "cell_key", "git_sha", "converged", "plateau_probe")} == {
        "run_id": "r1", "dataset": "d", "method": "m", "seed": 2, "metric": "mse", "key": "mse/x", "value": 0.5,
        "n": 4, "ci_low": 0.4, "ci_high": 0.6, "status": "ok", "backend": "b", "cell_key": "ck", "git_sha": "abc",
        "converged": True, "plateau_probe": "curve/mse"}
    empty = ResultRow.build(run, unit, "mse", None, None, status="error", reason="boom", profile="quick", limit=3,
                            eval_clips=None, metric_version="1", method_distribution="x", metric_distribution="y",
                            curve={}).to_dict()
    assert (empty["value"], empty["n"], empty["backend"], empty["cell_key"], empty["converged"]) == (None,) * 5
