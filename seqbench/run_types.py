"""The run's contract types: what a ``seqbench run`` is made of, as the run-event hooks see it.

A *model unit* is one (dataset, method, seed); a *cell* is a unit plus one metric; :class:`RunInfo`
is one invocation with its plan and provenance. They live apart from the runner (the engine that
fills them) because :mod:`seqbench.hookspecs` names them: a plugin imports the contract, never the
engine, and the engine imports plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (DEFAULT_DATASET, DEFAULT_METHODS, DEFAULT_METRICS, DEFAULT_OUTPUT, DEFAULT_PROFILE,
                     MethodConfig)
from .types import DataSpec

__all__ = ["Cell", "DEFAULT_DATASET", "DEFAULT_METHODS", "DEFAULT_METRICS", "DEFAULT_OUTPUT", "ModelUnit", "RunInfo",
           "RunOptions"]

# The main job (`seqbench run` without arguments): two methods compared with the disentanglement
# metrics on the embedded dataset, from an empty cache within 20 minutes on 2 CPU cores.


@dataclass
class RunOptions:
    """Everything one ``seqbench run`` was asked for (the command line merged over ``--config``)."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    datasets: list[str] = field(default_factory=lambda: [DEFAULT_DATASET])
    profile: str = DEFAULT_PROFILE
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str | None = None
    output: Path = Path(DEFAULT_OUTPUT)
    limit: int | None = None
    # Test clips every metric sees: a fixed subset seeded by the dataset fingerprint. None = the
    # profile's default (``Profile.eval_clips``); 0 = the whole test split.
    eval_clips: int | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    dry_run: bool = False
    progress: bool = True
    retrain: bool = False
    # Pictures of every model (seqbench_render_visuals) under runs/<run_id>/visuals/ after its cells.
    visuals: bool = True
    # Probe metrics run at every validation point (learning curves ``curve/...``, seqbench.probes);
    # None = the profile's default (mse, leak, judge; smoke: mse), empty = none. They read validation
    # clips only and never change what is trained.
    probes: list[str] | None = None
    # The command line that asked for the run (``seqbench`` arguments, recorded as the run's ``argv`` so the run
    # can be repeated); None = this process's ``sys.argv[1:]``. ``seqbench.cli.main(argv)`` sets it, since a
    # run started in-process (a test, a notebook) has its host's sys.argv.
    command: list[str] | None = None


@dataclass
class ModelUnit:
    """One (dataset, method, seed) model: its resolved config and the cache key of everything that determines it."""

    dataset: str
    method: str
    seed: int
    config: MethodConfig
    spec: DataSpec
    method_version: str
    model_key: str
    config_hash: str

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.method}/seed{self.seed}"


@dataclass
class Cell:
    """One model unit scored by one metric; ``cell_key`` addresses its cached rows."""

    unit: ModelUnit
    metric: str
    metric_version: str
    cell_key: str


@dataclass
class RunInfo:
    """One invocation as the run-event hooks see it: id, plan, provenance, and state for trackers."""

    run_id: str
    output: Path
    options: RunOptions
    started: str
    units: list[ModelUnit]
    cells: list[Cell]
    provenance: dict[str, Any]
    device: str
    state: dict[str, Any] = field(default_factory=dict)  # for tracking plugins (e.g. MLflow run ids)
