"""The result row: one long-format record per (run, dataset, method, seed, metric key).

:class:`ResultRow` owns the columns: their names, their order and where each value comes from.
``to_dict()`` is what ``results.jsonl``, the cell cache and the run-event hooks carry, so its keys
and their order are a file format: rows already written (and committed under
``leaderboards/results/``) must keep loading and rendering as they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from .. import __version__
from ..results import OK
from ..run_types import Cell, ModelUnit, RunInfo
from ..types import MetricValue


def utc_now() -> str:
    """The rows' timestamp format: UTC, ISO 8601, whole seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ResultRow:
    """One result with everything that makes it comparable (versions, fingerprints, keys, provenance)."""

    run_id: str
    timestamp: str
    dataset: str
    method: str
    seed: int
    metric: str
    key: str | None
    value: float | None
    higher_is_better: bool | None
    n: int | None
    ci_low: float | None
    ci_high: float | None
    status: str
    reason: str | None
    backend: str | None
    profile: str
    limit: int | None
    eval_clips: int | None
    metric_version: str
    method_version: str
    dataset_fingerprint: str
    config_hash: str
    model_key: str
    cell_key: str | None
    seqbench_version: str
    git_sha: str | None
    device: str
    duration_s: float | None
    method_distribution: str
    metric_distribution: str
    # whether the model was on its plateau (seqbench.probes): None = no learning curve to tell
    converged: bool | None
    plateau_change: float | None
    plateau_probe: str | None
    # mean learning rate of the last quarter / the peak (seqbench.probes.late_lr_scale): a plateau
    # reached as the rate decays to zero may be the schedule's end, not the model's
    plateau_lr_scale: float | None = None
    # training-loss spikes in the last quarter (seqbench.probes.late_loss_spikes): a seed off its plateau
    # with one is unstable rather than still learning
    late_loss_spikes: int | None = None

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The row's keys, in file order."""
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """The row as written to ``results.jsonl`` (keys in :meth:`columns` order)."""
        return {name: getattr(self, name) for name in self.columns()}

    @classmethod
    def build(cls, run: RunInfo, unit: ModelUnit, metric: str, cell: Cell | None, key: str | None,
              value: MetricValue | None = None, *, status: str = OK, reason: str | None = None,
              higher_is_better: bool | None = None, duration: float | None = None, profile: str,
              limit: int | None, eval_clips: int | None, metric_version: str, method_distribution: str,
              metric_distribution: str, curve: dict[str, Any]) -> "ResultRow":
        """The row of one key of one cell (``value`` None: a not-applicable or error row, ``reason`` says why)."""
        return cls(
            run_id=run.run_id, timestamp=utc_now(), dataset=unit.dataset, method=unit.method, seed=unit.seed,
            metric=metric, key=key, value=None if value is None else value.value, higher_is_better=higher_is_better,
            n=None if value is None else value.n, ci_low=None if value is None else value.ci_low,
            ci_high=None if value is None else value.ci_high, status=status, reason=reason,
            backend=None if value is None else value.backend, profile=profile, limit=limit, eval_clips=eval_clips,
            metric_version=metric_version, method_version=unit.method_version,
            dataset_fingerprint=unit.spec.fingerprint, config_hash=unit.config_hash, model_key=unit.model_key,
            cell_key=None if cell is None else cell.cell_key, seqbench_version=__version__,
            git_sha=run.provenance["git_sha"], device=run.device, duration_s=duration,
            method_distribution=method_distribution, metric_distribution=metric_distribution,
            converged=curve.get("converged"), plateau_change=curve.get("change"), plateau_probe=curve.get("key"),
            plateau_lr_scale=curve.get("lr_scale"), late_loss_spikes=curve.get("late_loss_spikes"))
