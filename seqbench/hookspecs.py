"""The whole plugin contract of seqbench, as pluggy hook specifications.

A plugin is any module (built-in, from the ``seqbench`` entry-point group, or given with
``-p MODULE``) that defines functions decorated with :data:`hookimpl` named like the specs
below. Registration hooks return lists of classes; run-event hooks observe a benchmark run
(MLflow logging is itself a plugin on them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backend import Backend
    from .data import DatasetAdapter
    from .method import Method
    from .metric import Metric
    from .run_types import Cell, ModelUnit, RunInfo
    from .visuals import VisualInputs

PROJECT = "seqbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration -------------------------------------------------------------------------

@hookspec
def seqbench_add_methods() -> list[type["Method"]]:
    """Return method classes (subclasses of :class:`seqbench.Method`) this plugin provides."""


@hookspec
def seqbench_add_metrics() -> list[type["Metric"]]:
    """Return metric classes (subclasses of :class:`seqbench.Metric`)."""


@hookspec
def seqbench_add_datasets() -> list[type["DatasetAdapter"]]:
    """Return dataset adapter classes (subclasses of :class:`seqbench.DatasetAdapter`)."""


@hookspec
def seqbench_add_backends() -> list[type["Backend"]]:
    """Return evaluation backend classes (landmarks, identity, pose, speaker)."""


# -- run events ---------------------------------------------------------------------------

@hookspec
def seqbench_run_started(run: "RunInfo") -> None:
    """A ``seqbench run`` invocation starts; ``run`` holds its id, plan and provenance."""


@hookspec
def seqbench_model_started(run: "RunInfo", unit: "ModelUnit", config: dict[str, Any]) -> None:
    """Training (or loading from cache) of one (dataset, method, seed) model starts."""


@hookspec
def seqbench_train_progress(run: "RunInfo", unit: "ModelUnit", step: int, values: dict[str, float]) -> None:
    """Training losses and statistics (averaged since the last call) at ``step``."""


@hookspec
def seqbench_cell_finished(run: "RunInfo", cell: "Cell", rows: list[dict[str, Any]]) -> None:
    """One (dataset, method, seed, metric) cell finished; ``rows`` are its long-format results."""


@hookspec
def seqbench_artifact_produced(run: "RunInfo", unit: "ModelUnit | None", path: Path, kind: str) -> None:
    """A file was written (results, leaderboard, swap grid...). ``unit`` is None for run-level files."""


@hookspec
def seqbench_run_finished(run: "RunInfo", summary: dict[str, Any]) -> None:
    """The run ended (also after failures); ``summary`` counts ok / failed / skipped cells."""


# -- pictures -----------------------------------------------------------------------------

@hookspec
def seqbench_render_visuals(run: "RunInfo", unit: "ModelUnit", method: "Method", inputs: "VisualInputs",
                            directory: Path) -> list[Path]:
    """Render pictures of the trained ``method`` into ``directory`` and return the files written.

    Called once per (dataset, method, seed) after its cells, with ``inputs`` holding fixed test clips
    shared by every method (see :mod:`seqbench.visuals`). The runner announces each returned file
    with :func:`seqbench_artifact_produced` (kind ``visuals``), so trackers log it with the model's
    run. Each implementation is called on its own: one that raises is a warning, never a failed run.
    """
