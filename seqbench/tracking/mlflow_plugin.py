"""MLflow tracking, implemented as an ordinary seqbench plugin on the run-event hooks.

One parent run per invocation, one nested run per (dataset, method, seed) with the resolved
config as params, training curves and final metrics logged in batches, and tags carrying
versions, fingerprints and the git sha. The store is ``MLFLOW_TRACKING_URI`` when set, else a
SQLite store inside the output directory (MLflow's file store is in maintenance mode). Block
it with ``-p no:mlflow_plugin``.

Tracking failures are this plugin's failures, never the run's: a server that does not answer a
quick health probe, or any error while logging, turns tracking off for the rest of the run with
one warning naming the URI, and the run goes on writing every JSONL row. HTTP requests use a
short timeout and few retries unless ``MLFLOW_HTTP_REQUEST_TIMEOUT`` /
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` are set. Creating the local SQLite store (its schema
migrations) happens under a file lock, so concurrent runs into one fresh output directory do not
race. A run found RUNNING whose process has died on this host is marked KILLED by the next run;
an interrupted run marks itself KILLED.

Rows that never reached the store are sent later: a run whose tracking failed leaves a marker
(``runs/<run_id>/mlflow-unsent``); the next run into the same output directory that reaches a
store logs each such run's rows there (a parent run tagged with the original run id and
``seqbench.synced_late``, a nested run per model with its final metrics, and the ``results.jsonl``
/ ``run.json`` artifacts, so ``seqbench leaderboard --from mlflow`` sees them) and removes the marker.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from seqbench.hookspecs import hookimpl
from seqbench.log import logger

EXPERIMENT = os.environ.get("SEQBENCH_MLFLOW_EXPERIMENT", "seqbench")
#: Defaults for MLflow's HTTP client when the user set none: fail within seconds, not minutes.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
HEALTH_TIMEOUT_S = 5.0
STORE_LOCK = ".mlflow.lock"
UNSENT = "mlflow-unsent"  # marker in runs/<run_id>/ of a run whose rows did not reach the store

F = TypeVar("F", bound=Callable[..., Any])


class TrackingUnavailable(Exception):
    """The tracking store cannot be used for this run (reason in the message)."""


@dataclass(frozen=True)
class TrackingStatus:
    """Where a run was tracked (``uri``), or why tracking was turned off for it (``disabled``)."""

    uri: str | None = None
    disabled: str | None = None


def tracking_status(run) -> TrackingStatus:
    """This plugin's outcome for ``run`` (empty when it did not take part, e.g. ``-p no:mlflow_plugin``).

    The public face of the plugin's per-run state, for the CLI's summary."""
    state = run.state.get("mlflow") or {}
    return TrackingStatus(uri=state.get("uri"), disabled=state.get("disabled"))


def tracking_uri(output: Path) -> str:
    """The MLflow store a run logs to: ``MLFLOW_TRACKING_URI`` or ``<output>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(output).resolve() / 'mlflow.db'}"


def artifact_location(output: Path) -> str:
    return (Path(output).resolve() / "mlartifacts").as_uri()


def check_server(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    """Raise :class:`TrackingUnavailable` unless an ``http(s)`` tracking server answers ``/health`` quickly."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            if response.status >= 500:
                raise TrackingUnavailable(f"health check answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise TrackingUnavailable(f"health check answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:  # refused, timed out, unresolvable host
        reason = getattr(exc, "reason", None) or exc
        raise TrackingUnavailable(f"server unreachable: {reason} (health check, {timeout_s:.0f}s timeout)") from None


def _disable(run, error: BaseException) -> None:
    """Turn tracking off for the rest of ``run``, warning once with the URI and what still holds."""
    state = run.state.setdefault("mlflow", {})
    if state.get("disabled"):
        return
    uri = state.get("uri") or tracking_uri(run.output)
    state["disabled"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    state["uri"] = uri
    marker = Path(run.output) / "runs" / run.run_id / UNSENT
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{uri}\n{state['disabled']}\n")
    except OSError:  # the rows are what matters; the marker only enables the later sync
        pass
    logger.warning(f"MLflow tracking at {uri} failed ({state['disabled']}); tracking is off for this run, which goes "
                   f"on: every result row is in {Path(run.output) / 'results.jsonl'}. Fix or unset "
                   f"MLFLOW_TRACKING_URI, or turn tracking off with `-p no:mlflow_plugin`. The next run into "
                   f"{run.output} that reaches a tracking store sends these rows there.")


def _isolated(hook: F) -> F:
    """A hook whose failure disables tracking for the run instead of failing the run."""

    @functools.wraps(hook)
    def wrapper(run, *args: Any, **kwargs: Any) -> Any:
        if run.state.get("mlflow", {}).get("disabled"):
            return None
        try:
            return hook(run, *args, **kwargs)
        except Exception as exc:  # tracking is a plugin: its failures never cost results
            _disable(run, exc)
            return None

    return wrapper  # type: ignore[return-value]


def _client(run):
    state = run.state.setdefault("mlflow", {})
    if state.get("disabled"):
        raise TrackingUnavailable(state["disabled"])
    if "client" not in state:
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        uri = tracking_uri(run.output)
        state["uri"] = uri
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        check_server(uri)
        client, experiment_id = open_store(uri, run.output)
        state.update(client=client, experiment_id=experiment_id, children={}, steps={})
    return state


def open_store(uri: str, output: Path):
    """``(client, experiment_id)`` of the seqbench experiment, creating store and experiment if needed.

    A local SQLite store is created (schema migrations) under a file lock next to it: two runs
    starting at once into a fresh output directory would otherwise race on ``CREATE TABLE``.
    """
    from mlflow.tracking import MlflowClient

    from seqbench.utils import file_lock

    local = uri.startswith("sqlite:///")
    lock_path = Path(uri[len("sqlite:///"):]).parent / STORE_LOCK if local else None
    with file_lock(lock_path) if lock_path else contextlib.nullcontext():
        client = MlflowClient(tracking_uri=uri)  # opening a new SQLite store runs its schema migrations
        experiment = client.get_experiment_by_name(EXPERIMENT)  # creates the store's schema on first use
        if experiment is None:
            kwargs = {} if os.environ.get("MLFLOW_TRACKING_URI") else {"artifact_location": artifact_location(output)}
            experiment_id = client.create_experiment(EXPERIMENT, **kwargs)
        else:
            experiment_id = experiment.experiment_id
    return client, experiment_id


def mark_dead_runs_killed(client, experiment_id: str) -> list[str]:
    """Runs of this host still RUNNING whose seqbench process is gone (kill -9, power loss): mark them KILLED."""
    host = socket.gethostname()
    found = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING' and "
                                                              f"tags.`seqbench.host` = '{host}'", max_results=1000)
    killed = []
    for stale in found:
        try:
            pid = int(stale.data.tags.get("seqbench.pid", ""))
        except ValueError:
            continue
        if _process_alive(pid):
            continue
        client.set_terminated(stale.info.run_id, status="KILLED")
        killed.append(stale.info.run_id)
    return killed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = str(value)[:6000]


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def _child(run, unit) -> str:
    state = _client(run)
    key = unit.label
    if key not in state["children"]:
        from mlflow.entities import Param, RunTag

        client = state["client"]
        tags = {"mlflow.parentRunId": state["parent"], "mlflow.runName": key, "seqbench.dataset": unit.dataset,
                "seqbench.method": unit.method, "seqbench.seed": str(unit.seed),
                "seqbench.method_version": unit.method_version, "seqbench.dataset_fingerprint": unit.spec.fingerprint,
                "seqbench.model_key": unit.model_key, "seqbench.config_hash": unit.config_hash,
                "seqbench.git_sha": run.provenance["git_sha"], "seqbench.version": run.provenance["seqbench_version"],
                "seqbench.profile": run.options.profile, **_process_tags()}
        child = client.create_run(state["experiment_id"], tags=tags, run_name=key)
        params: dict[str, str] = {}
        _flatten("", unit.config.to_dict(), params)
        params["dataset"], params["method"], params["seed"] = unit.dataset, unit.method, str(unit.seed)
        items = [Param(k, v) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            client.log_batch(child.info.run_id, params=items[start:start + 100])
        state["children"][key] = child.info.run_id
    return state["children"][key]


def _process_tags() -> dict[str, str]:
    """Which process owns a run: lets a later run tell a killed run (process gone) from a live one."""
    return {"seqbench.pid": str(os.getpid()), "seqbench.host": socket.gethostname()}


@hookimpl
@_isolated
def seqbench_run_started(run) -> None:
    from mlflow.entities import Param

    state = _client(run)
    client = state["client"]
    killed = mark_dead_runs_killed(client, state["experiment_id"])
    if killed:
        logger.info(f"MLflow: marked {len(killed)} run(s) of killed seqbench processes as KILLED")
    for marker in sorted((Path(run.output) / "runs").glob(f"*/{UNSENT}")):
        if marker.parent.name != run.run_id:
            sent = sync_unsent_run(client, state["experiment_id"], marker.parent)
            logger.info(f"MLflow: sent {sent} row(s) of run {marker.parent.name}, which did not reach a tracking "
                        f"store when it ran, to {state['uri']}")
    tags = {"mlflow.runName": f"seqbench {run.run_id}", "seqbench.run_id": run.run_id,
            "seqbench.git_sha": run.provenance["git_sha"], "seqbench.version": run.provenance["seqbench_version"],
            "seqbench.profile": run.options.profile, "seqbench.device": run.device, **_process_tags()}
    parent = client.create_run(state["experiment_id"], tags=tags, run_name=f"seqbench {run.run_id}")
    state["parent"] = parent.info.run_id
    params = {"methods": ",".join(run.options.methods), "metrics": ",".join(run.options.metrics),
              "datasets": ",".join(run.options.datasets), "profile": run.options.profile,
              "seeds": ",".join(map(str, run.options.seeds)), "limit": str(run.options.limit),
              "device": run.device}
    for name, version in run.provenance["versions"].items():
        params[f"version.{name}"] = version
    client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in params.items()])


@hookimpl
@_isolated
def seqbench_model_started(run, unit, config) -> None:
    _child(run, unit)


@hookimpl
@_isolated
def seqbench_train_progress(run, unit, step, values) -> None:
    from mlflow.entities import Metric

    state = _client(run)
    now = int(time.time() * 1000)
    metrics = [Metric(f"train/{_metric_name(k)}", float(v), now, int(step)) for k, v in values.items()]
    state["client"].log_batch(_child(run, unit), metrics=metrics)


@hookimpl
@_isolated
def seqbench_cell_finished(run, cell, rows) -> None:
    from mlflow.entities import Metric, RunTag

    state = _client(run)
    now = int(time.time() * 1000)
    metrics, tags = [], []
    for row in rows:
        if row["status"] == "ok" and row["value"] is not None:
            name = _metric_name(f"{cell.metric}/{row['key']}")
            metrics.append(Metric(name, float(row["value"]), now, 0))
            for bound in ("ci_low", "ci_high"):
                if row.get(bound) is not None:
                    metrics.append(Metric(f"{name}.{bound}", float(row[bound]), now, 0))
            if row.get("backend"):
                tags.append(RunTag(f"seqbench.backend.{cell.metric}", str(row["backend"])))
        else:
            tags.append(RunTag(f"seqbench.status.{cell.metric}", f"{row['status']}: {row['reason']}"[:5000]))
    state["client"].log_batch(_child(run, cell.unit), metrics=metrics, tags=tags)


@hookimpl
@_isolated
def seqbench_artifact_produced(run, unit, path, kind) -> None:
    state = _client(run)
    run_id = _child(run, unit) if unit is not None else state["parent"]
    # A model's pictures go to its run's artifact root: MLflow's run-comparison page shows only the
    # root files the compared runs share, so swaps.png of two methods appear there side by side.
    state["client"].log_artifact(run_id, str(path), artifact_path=None if kind == "visuals" else kind)


@hookimpl
@_isolated
def seqbench_run_finished(run, summary) -> None:
    from mlflow.entities import Metric

    state = _client(run)
    client = state["client"]
    interrupted = summary.get("interrupted")
    status = "KILLED" if interrupted else ("FAILED" if summary.get("failed") else "FINISHED")
    for child in state["children"].values():
        client.set_terminated(child, status="KILLED" if interrupted else "FINISHED")
    now = int(time.time() * 1000)
    counts = [Metric(f"cells_{k}", float(v), now, 0) for k, v in summary.items() if isinstance(v, (int, float))]
    client.log_batch(state["parent"], metrics=counts)
    client.set_terminated(state["parent"], status=status)


def sync_unsent_run(client, experiment_id: str, run_dir: Path) -> int:
    """Log a finished run's rows (``run_dir/results.jsonl``) to the store and remove its unsent marker.

    Idempotent: a run already in the store (tag ``seqbench.run_id``) is not logged twice. Returns
    the number of rows sent (0 for a run killed before it wrote any).
    """
    import json

    from mlflow.entities import Metric, RunTag

    from seqbench.results import RESULTS_FILE

    run_id = run_dir.name
    rows_path = run_dir / RESULTS_FILE
    existing = client.search_runs([experiment_id], filter_string=f"tags.`seqbench.run_id` = '{run_id}'", max_results=1)
    rows = []
    if rows_path.exists() and not existing:
        rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
        info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
        tags = {"mlflow.runName": f"seqbench {run_id}", "seqbench.run_id": run_id, "seqbench.synced_late": "true",
                "seqbench.git_sha": str(info.get("git_sha", "")), "seqbench.version": str(info.get("seqbench_version", ""))}
        parent = client.create_run(experiment_id, tags=tags, run_name=f"seqbench {run_id}")
        children: dict[str, str] = {}
        metrics: dict[str, list] = {}
        now = int(time.time() * 1000)
        for row in rows:
            label = f"{row.get('dataset')}/{row.get('method')}/seed{row.get('seed')}"
            if label not in children:
                child = client.create_run(experiment_id, run_name=label, tags={
                    "mlflow.parentRunId": parent.info.run_id, "mlflow.runName": label,
                    "seqbench.dataset": str(row.get("dataset")), "seqbench.method": str(row.get("method")),
                    "seqbench.seed": str(row.get("seed")), "seqbench.synced_late": "true"})
                children[label] = child.info.run_id
            if row.get("status") == "ok" and row.get("value") is not None:
                metrics.setdefault(children[label], []).append(
                    Metric(_metric_name(f"{row.get('metric')}/{row.get('key')}"), float(row["value"]), now, 0))
        for child_id, items in metrics.items():
            for start in range(0, len(items), 500):
                client.log_batch(child_id, metrics=items[start:start + 500])
        for path in (rows_path, run_dir / "run.json"):
            if path.exists():
                client.log_artifact(parent.info.run_id, str(path), artifact_path="results")
        client.log_batch(parent.info.run_id, tags=[RunTag("seqbench.rows", str(len(rows)))])
        for child_id in children.values():
            client.set_terminated(child_id, status="FINISHED")
        client.set_terminated(parent.info.run_id, status="FINISHED")
    (run_dir / UNSENT).unlink(missing_ok=True)
    return len(rows)


def load_results_from_mlflow(output: Path = Path("seqbench-results")) -> "pandas.DataFrame":  # noqa: F821
    """Result rows of every seqbench run in the tracking store (their ``results.jsonl`` artifacts)."""
    import tempfile

    import pandas as pd
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from seqbench.errors import SeqbenchError
    from seqbench.results import load_results

    uri = tracking_uri(output)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise SeqbenchError(f"no seqbench experiment in the MLflow store {uri}; set MLFLOW_TRACKING_URI or run first")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.run_id` != ''", max_results=10000)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            try:
                path = download_artifacts(run_id=run.info.run_id, artifact_path="results/results.jsonl",
                                          dst_path=f"{tmp}/{run.info.run_id}", tracking_uri=uri)
            except Exception:  # a run interrupted before it logged results has none
                continue
            frames.append(load_results(path))
    if not frames:
        raise SeqbenchError(f"no seqbench results logged in the MLflow store {uri}")
    return pd.concat(frames, ignore_index=True)
