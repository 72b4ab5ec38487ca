"""Recording a run: result rows, the failure log, ``run.json``, leaderboards and figures.

Everything a run leaves on disk besides the caches goes through :class:`Recorder`; each file is
also announced to the trackers (``seqbench_artifact_produced``).
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from ..errors import SeqbenchError
from ..log import logger
from ..plugins import Plugins
from ..results import OK, RESULTS_FILE, append_rows
from ..run_types import Cell, ModelUnit, RunInfo
from ..types import MetricValue
from ..utils import atomic_write_text
from .models import ModelStore
from .plan import Planner
from .row import ResultRow, utc_now

FAILURE_LOG = "failures.log"


def describe(exc: BaseException) -> str:
    """An exception in one line: ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


def failure_log(run: RunInfo) -> Path:
    """``runs/<run_id>/failures.log``: the full traceback of every failed cell of the run."""
    return run.output / "runs" / run.run_id / FAILURE_LOG


class Recorder:
    """Builds the run's rows and writes its files."""

    def __init__(self, planner: Planner, models: ModelStore):
        self.planner, self.models = planner, models
        self.options = planner.options
        self.plugins: Plugins = planner.plugins

    def row(self, run: RunInfo, unit: ModelUnit, metric: str, cell: Cell | None, key: str | None,
            value: MetricValue | None = None, *, status: str = OK, reason: str | None = None,
            higher_is_better: bool | None = None, duration: float | None = None) -> dict[str, Any]:
        """One result row (see :class:`~seqbench.runner.row.ResultRow`) as the dict files and hooks carry."""
        return ResultRow.build(run, unit, metric, cell, key, value, status=status, reason=reason,
                               higher_is_better=higher_is_better, duration=duration, profile=self.options.profile,
                               limit=self.options.limit, eval_clips=self.planner.eval_clips,
                               metric_version=self.plugins.metrics.get(metric).version,
                               method_distribution=self.plugins.methods.distribution(unit.method),
                               metric_distribution=self.plugins.metrics.distribution(metric),
                               curve=self.models.curve_summary(unit)).to_dict()

    def append(self, path: Path, rows: list[dict[str, Any]]) -> None:
        """Append rows to a results file (one line each, fsynced)."""
        append_rows(path, rows)

    def record_failure(self, run: RunInfo, label: str, exc: BaseException) -> None:
        """Append the traceback to the run's failure log and say in one line where it is."""
        path = failure_log(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = utc_now()
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"=== {label} failed at {stamp}\n{''.join(traceback.format_exception(exc))}\n")
        logger.warning(f"{label} failed: {describe(exc)} (traceback in {path})")

    def write_run_files(self, run: RunInfo, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        from ..leaderboard import write_leaderboards

        hook = self.plugins.hook
        run_dir = run.output / "runs" / run.run_id
        meta = {"run_id": run.run_id, "started": run.started,
                "finished": utc_now(),
                "summary": {k: v for k, v in summary.items()}, **run.provenance,
                "plugins": self.plugin_distributions(run),
                "methods": run.options.methods, "metrics": run.options.metrics, "datasets": run.options.datasets}
        atomic_write_text(run_dir / "run.json", json.dumps(meta, indent=2, default=str))
        append_rows(run_dir / RESULTS_FILE, rows)  # this run's rows alone, for trackers
        hook.seqbench_artifact_produced(run=run, unit=None, path=run_dir / RESULTS_FILE, kind="results")
        hook.seqbench_artifact_produced(run=run, unit=None, path=run_dir / "run.json", kind="results")
        if rows:
            try:
                paths = write_leaderboards(rows, run.output / "leaderboards", plugins=self.plugins)
            except SeqbenchError as exc:
                logger.info(f"leaderboard not written: {exc}")
                paths = []
            for path in paths:
                hook.seqbench_artifact_produced(run=run, unit=None, path=path, kind="leaderboard")
            self._write_figures(run, rows)

    def _write_figures(self, run: RunInfo, rows: list[dict[str, Any]]) -> None:
        """Metrics and learning-curve PNGs beside the leaderboards, logged to the parent run; never fatal."""
        from ..leaderboard import headline_keys
        from ..plots import write_dataset_figures

        try:
            paths = write_dataset_figures(rows, run.output / "leaderboards", headlines=headline_keys(self.plugins))
        except Exception as exc:  # figures are never worth the run
            logger.warning(f"figures not drawn: {describe(exc)}")
            return
        for path in paths:
            self.plugins.hook.seqbench_artifact_produced(run=run, unit=None, path=path, kind="figures")

    def plugin_distributions(self, run: RunInfo) -> dict[str, dict[str, str]]:
        """``{kind: {name: "DISTRIBUTION VERSION"}}`` of every plugin this run used (for run.json)."""
        used = {"methods": (self.plugins.methods, run.options.methods),
                "metrics": (self.plugins.metrics, run.options.metrics),
                "datasets": (self.plugins.datasets, run.options.datasets)}
        return {kind: {name: registry.distribution(name) for name in names if name in registry}
                for kind, (registry, names) in used.items()}
