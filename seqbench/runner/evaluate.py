"""Evaluating cells: one metric on one trained model, with its not-applicable and error rows.

Finished cells are cached under their content key (:class:`CellCache`), so a re-run reuses them;
a metric that raises becomes an ``error`` row with its traceback in the run's failure log.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ..errors import NotApplicable
from ..log import format_duration, heartbeat, logger
from ..results import ERROR, NOT_APPLICABLE
from ..run_types import Cell, RunInfo, RunOptions
from ..types import MetricValue
from ..utils import atomic_write_text, cache_root, quarantine
from .models import ModelStore
from .plan import Planner
from .record import Recorder, describe


class CellCache:
    """Finished cells' rows under ``<cache>/cells/<cell_key>.json`` (ignored with ``--retrain``)."""

    def __init__(self, options: RunOptions):
        self.options = options

    def path(self, cell: Cell) -> Path:
        return cache_root() / "cells" / f"{cell.cell_key}.json"

    def get(self, cell: Cell, *, repair: bool = True) -> list[dict[str, Any]] | None:
        """The cell's cached rows; an unreadable entry is moved aside (``repair``) and recomputed."""
        path = self.path(cell)
        if self.options.retrain or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            if repair:
                quarantine(path, exc)
            return None

    def put(self, cell: Cell, rows: list[dict[str, Any]]) -> None:
        """Cache the cell's rows (the caller stores only cells that did not fail)."""
        atomic_write_text(self.path(cell), json.dumps(rows))


class Evaluator:
    """Scores cells: builds each metric's context (test subset, device, the run's plugins) and its rows."""

    def __init__(self, planner: Planner, models: ModelStore, cells: CellCache, recorder: Recorder):
        self.planner, self.models, self.cells, self.recorder = planner, models, cells, recorder
        self.options: RunOptions = planner.options
        self.plugins = planner.plugins

    def evaluate(self, run: RunInfo, cell: Cell, method, device) -> list[dict[str, Any]]:
        """Evaluate one cell, saying so: a line before, a heartbeat while it runs, a line with the run's ETA after."""
        label = f"{cell.unit.label}/{cell.metric}"
        counter = run.state.setdefault("evaluation", {"done": 0, "seconds": 0.0,
                                                      "total": sum(self.cells.get(c) is None for c in run.cells)})
        logger.info(f"{label}: evaluating (cell {counter['done'] + 1}/{counter['total']} to evaluate)")
        start = time.monotonic()
        with heartbeat(lambda elapsed: f"{label}: still evaluating, elapsed {format_duration(elapsed)}"):
            rows = self.evaluate_cell(run, cell, method, device)
        seconds = time.monotonic() - start
        counter["done"] += 1
        counter["seconds"] += seconds
        left = counter["total"] - counter["done"]
        eta = format_duration(counter["seconds"] / counter["done"] * left)
        logger.info(f"{label}: evaluated in {format_duration(seconds)}; {counter['done']}/{counter['total']} cells, "
                  f"evaluation ETA {eta} (not counting training)")
        return rows

    def evaluate_cell(self, run: RunInfo, cell: Cell, method, device) -> list[dict[str, Any]]:
        import numpy as np
        import torch

        from ..data import carve_validation
        from ..metric import EvalContext, EvalData, evaluation_subset

        unit = cell.unit
        metric = self.planner.metric(cell.metric)
        reason = metric.applicable(method, unit.spec)
        if reason:
            return [self.recorder.row(run, unit, cell.metric, cell, None, status=NOT_APPLICABLE, reason=reason)]
        adapter = self.planner.adapter(unit.dataset)
        train, _ = carve_validation(adapter.split("train"), unit.config.val_fraction, seed=0)
        test = adapter.split("test")
        subset = evaluation_subset(unit.spec.fingerprint, len(test), self.planner.eval_clips)
        if subset is not None:
            test = test.subset(subset)
        if self.options.limit:
            test = test.subset(np.arange(min(self.options.limit, len(test))))
        ctx = EvalContext(device=device, seed=unit.seed, limit=self.options.limit,
                          cache_dir=cache_root(), registry=self.plugins, model_dir=self.models.model_dir(unit),
                          profile=self.options.profile)
        start = time.perf_counter()
        try:
            method.eval()
            with torch.no_grad():
                values = metric.evaluate(method, EvalData(unit.spec, train, test), ctx)
        except NotApplicable as exc:
            return [self.recorder.row(run, unit, cell.metric, cell, None, status=NOT_APPLICABLE, reason=str(exc))]
        except Exception as exc:
            self.recorder.record_failure(run, f"{unit.label}/{cell.metric}", exc)
            return [self.recorder.row(run, unit, cell.metric, cell, None, status=ERROR, reason=describe(exc))]
        duration = time.perf_counter() - start
        rows = [self.recorder.row(run, unit, cell.metric, cell, key, status=NOT_APPLICABLE, reason=reason)
                for key, reason in ctx.not_applicable.items()]
        for key, value in values.items():
            mv = value if isinstance(value, MetricValue) else MetricValue(float(value))
            if mv.value is None or not math.isfinite(float(mv.value)):
                reason = (f"{cell.metric} returned {mv.value} for {key!r}: a non-finite value is a failure of the "
                          f"metric (or of the model), not a score")
                rows.append(self.recorder.row(run, unit, cell.metric, cell, key, status=ERROR, reason=reason,
                                      duration=duration))
                continue
            rows.append(self.recorder.row(run, unit, cell.metric, cell, key, value=mv,
                                  higher_is_better=metric.output(key).higher_is_better, duration=duration))
        return rows
