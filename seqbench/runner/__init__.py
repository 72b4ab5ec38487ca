"""The benchmark runner: plan cells, train or reuse models, evaluate metrics, record results.

A *model unit* is one (dataset, method, seed); a *cell* is a unit plus one metric. Trained
models are cached under a content hash of everything that determines them; finished cells are
cached under a hash of the model key and the metric's identity, so re-running reuses both. A
failing cell records its error and the run goes on.

The package is split by stage: :mod:`.plan` (cells and keys, every option checked before anything
trains), :mod:`.models` (model cache, training, distributed setup), :mod:`.evaluate` (cells and
their cache), :mod:`.record` and :mod:`.row` (result rows, failure log, run files, leaderboards)
and :mod:`.execute` (the :class:`Runner` that sequences them). The names below are the ones the
CLI, plots, benchmarks and plugins import from ``seqbench.runner``.
"""

from __future__ import annotations

from ..run_types import (DEFAULT_DATASET, DEFAULT_METHODS, DEFAULT_METRICS, DEFAULT_OUTPUT, Cell, ModelUnit, RunInfo,
                         RunOptions)
from .evaluate import CellCache, Evaluator
from .execute import Runner, check_output_dir
from .models import (DISTRIBUTED_TIMEOUT_H, HISTORY_FILE, ModelStore, cached_model_dir, init_distributed,
                     models_cache)
from .plan import Plan, Planner, apply_overrides, make_unit, model_key, resolve_config
from .record import FAILURE_LOG, Recorder, describe, failure_log
from .row import ResultRow

__all__ = ["Cell", "CellCache", "DEFAULT_DATASET", "DEFAULT_METHODS", "DEFAULT_METRICS", "DEFAULT_OUTPUT",
           "DISTRIBUTED_TIMEOUT_H", "Evaluator", "FAILURE_LOG", "HISTORY_FILE", "ModelStore", "ModelUnit", "Plan",
           "Planner", "Recorder", "ResultRow", "RunInfo", "RunOptions", "Runner", "apply_overrides",
           "cached_model_dir", "check_output_dir", "describe", "failure_log", "init_distributed", "make_unit",
           "model_key", "models_cache", "resolve_config"]
