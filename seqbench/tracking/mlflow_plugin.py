"""MLflow tracking, implemented as an ordinary seqbench plugin on the run-event hooks.

One parent run per invocation, one nested run per (dataset, method, seed) with the resolved
config as params, training curves and final metrics logged in batches, and tags carrying
versions, fingerprints and the git sha. The store is ``MLFLOW_TRACKING_URI`` when set, else a
SQLite store inside the output directory (MLflow's file store is in maintenance mode). Block
it with ``-p no:mlflow_plugin``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from seqbench.hookspecs import hookimpl

EXPERIMENT = os.environ.get("SEQBENCH_MLFLOW_EXPERIMENT", "seqbench")


def tracking_uri(output: Path) -> str:
    """The MLflow store a run logs to: ``MLFLOW_TRACKING_URI`` or ``<output>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(output).resolve() / 'mlflow.db'}"


def artifact_location(output: Path) -> str:
    return (Path(output).resolve() / "mlartifacts").as_uri()


def _client(run):
    state = run.state.setdefault("mlflow", {})
    if "client" not in state:
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        uri = tracking_uri(run.output)
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            kwargs = {} if os.environ.get("MLFLOW_TRACKING_URI") else {"artifact_location": artifact_location(run.output)}
            experiment_id = client.create_experiment(EXPERIMENT, **kwargs)
        else:
            experiment_id = experiment.experiment_id
        state.update(client=client, experiment_id=experiment_id, uri=uri, children={}, steps={})
    return state


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
                "seqbench.profile": run.options.profile}
        child = client.create_run(state["experiment_id"], tags=tags, run_name=key)
        params: dict[str, str] = {}
        _flatten("", unit.config.to_dict(), params)
        params["dataset"], params["method"], params["seed"] = unit.dataset, unit.method, str(unit.seed)
        items = [Param(k, v) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            client.log_batch(child.info.run_id, params=items[start:start + 100])
        state["children"][key] = child.info.run_id
    return state["children"][key]


@hookimpl
def seqbench_run_started(run) -> None:
    from mlflow.entities import Param

    state = _client(run)
    client = state["client"]
    tags = {"mlflow.runName": f"seqbench {run.run_id}", "seqbench.run_id": run.run_id,
            "seqbench.git_sha": run.provenance["git_sha"], "seqbench.version": run.provenance["seqbench_version"],
            "seqbench.profile": run.options.profile, "seqbench.device": run.device}
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
def seqbench_model_started(run, unit, config) -> None:
    _child(run, unit)


@hookimpl
def seqbench_train_progress(run, unit, step, values) -> None:
    from mlflow.entities import Metric

    state = _client(run)
    now = int(time.time() * 1000)
    metrics = [Metric(f"train/{_metric_name(k)}", float(v), now, int(step)) for k, v in values.items()]
    state["client"].log_batch(_child(run, unit), metrics=metrics)


@hookimpl
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
def seqbench_artifact_produced(run, unit, path, kind) -> None:
    state = _client(run)
    run_id = _child(run, unit) if unit is not None else state["parent"]
    state["client"].log_artifact(run_id, str(path), artifact_path=kind)


@hookimpl
def seqbench_run_finished(run, summary) -> None:
    from mlflow.entities import Metric

    state = _client(run)
    client = state["client"]
    status = "FAILED" if summary.get("failed") else "FINISHED"
    for child in state["children"].values():
        client.set_terminated(child, status="FINISHED")
    now = int(time.time() * 1000)
    counts = [Metric(f"cells_{k}", float(v), now, 0) for k, v in summary.items() if isinstance(v, (int, float))]
    client.log_batch(state["parent"], metrics=counts)
    client.set_terminated(state["parent"], status=status)


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
