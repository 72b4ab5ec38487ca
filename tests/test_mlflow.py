"""MLflow tracking against a real ``mlflow server`` on loopback, and the default local store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from seqbench.cli import main

TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not become healthy within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _children(client, parent_id):
    experiment = client.get_experiment_by_name("seqbench")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def test_nested_runs_on_a_real_server(toy_plugin, cache_dir, tmp_path, mlflow_server, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert main(["run", *TOY, "--seeds", "0,1", "-o", str(tmp_path / "out")]) == 0
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("seqbench")
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.run_id` != ''")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["methods"] == "toyae" and parent.data.tags["seqbench.profile"] == "smoke"
    children = _children(client, parent.info.run_id)
    assert sorted(c.data.tags["seqbench.seed"] for c in children) == ["0", "1"]
    from seqbench.results import load_results

    results = load_results(tmp_path / "out").set_index("seed")["value"]
    for child in children:
        seed = int(child.data.tags["seqbench.seed"])
        assert child.data.metrics["toy-mean/mae"] == pytest.approx(results[seed])
        assert child.data.params["steps"] == "12" and child.data.params["method"] == "toyae"
        assert child.data.tags["seqbench.dataset_fingerprint"] == "toybars-v1"
        history = client.get_metric_history(child.info.run_id, "train/loss")
        assert [m.step for m in history] == [4, 8, 12]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "results")}
    assert "results/results.jsonl" in artifacts
    leaderboards = {a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")}
    assert "leaderboard/toy-bars.md" in leaderboards
    # The leaderboard can be rebuilt from the tracking store alone.
    assert main(["leaderboard", "--from", "mlflow"]) == 0
    assert "toyae (2 seeds)" in capsys.readouterr().out


def test_default_store_is_inside_the_output_dir(toy_plugin, cache_dir, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    out_dir = tmp_path / "out"
    assert main(["run", *TOY, "-o", str(out_dir)]) == 0
    assert (out_dir / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqbench")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2  # parent + one nested run
    assert any("toy-mean/mae" in r.data.metrics for r in runs)


def test_unreachable_server_costs_no_rows(toy_plugin, cache_dir, tmp_path, monkeypatch, capsys):
    """Nothing listening at MLFLOW_TRACKING_URI: one warning naming the URI, the run goes on, every row kept."""
    uri = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    assert main(["run", *TOY, "--seeds", "0,1", "-o", str(tmp_path / "out")]) == 0
    assert time.monotonic() - start < 60
    captured = capsys.readouterr()
    assert captured.err.count(f"MLflow tracking at {uri} failed") == 1, captured.err
    assert "Traceback" not in captured.err
    assert f"mlflow: off for this run, {uri} failed" in captured.out
    from seqbench.results import load_results

    frame = load_results(tmp_path / "out")
    assert sorted(frame["seed"]) == [0, 1] and (frame["status"] == "ok").all()


def test_runs_of_dead_processes_are_marked_killed(toy_plugin, cache_dir, tmp_path):
    """A run left RUNNING by a process that died (kill -9) is marked KILLED by the next run into the store."""
    import socket

    from mlflow.tracking import MlflowClient

    from seqbench.tracking.mlflow_plugin import open_store, tracking_uri

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    uri = tracking_uri(out_dir)
    client, experiment_id = open_store(uri, out_dir)
    orphan = client.create_run(experiment_id, tags={"seqbench.pid": str(dead.pid), "seqbench.host": socket.gethostname()})
    alive = client.create_run(experiment_id, tags={"seqbench.pid": str(os.getpid()), "seqbench.host": socket.gethostname()})
    assert main(["run", *TOY, "-o", str(out_dir)]) == 0
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"


def test_rows_that_missed_the_server_are_sent_by_the_next_run(toy_plugin, cache_dir, tmp_path, mlflow_server,
                                                              monkeypatch, capsys):
    """Server down: rows kept and a marker left; the next run that reaches a server sends them there."""
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    assert main(["run", *TOY, "-o", str(out)]) == 0
    markers = list((out / "runs").glob("*/mlflow-unsent"))
    assert len(markers) == 1
    missed = markers[0].parent.name
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert main(["run", *TOY, "--seeds", "1", "-o", str(out)]) == 0
    assert not list((out / "runs").glob("*/mlflow-unsent"))
    assert f"sent 1 row(s) of run {missed}" in capsys.readouterr().err
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("seqbench")
    synced = client.search_runs([experiment.experiment_id], filter_string=f"tags.`seqbench.run_id` = '{missed}'")
    assert len(synced) == 1 and synced[0].data.tags["seqbench.synced_late"] == "true"
    child, = _children(client, synced[0].info.run_id)
    from seqbench.results import load_results

    first = load_results(out / "runs" / missed)
    assert child.data.metrics["toy-mean/mae"] == pytest.approx(float(first["value"].iloc[0]))
    # Both runs' rows are now in the store: the leaderboard from MLflow has seeds 0 and 1.
    assert main(["leaderboard", "--from", "mlflow"]) == 0
    assert "toyae (2 seeds)" in capsys.readouterr().out
    # A third run finds nothing left to send and does not log the run twice.
    assert main(["run", *TOY, "-o", str(out)]) == 0
    assert len(client.search_runs([experiment.experiment_id], filter_string=f"tags.`seqbench.run_id` = '{missed}'")) == 1
