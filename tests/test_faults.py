"""Fault injection: what a user (or an adversary) does to a run, and what must still hold.

Every test drives real ``seqbench run`` child processes on the third-party toy plugin (the
``smoke`` profile, seconds each): ``kill -9`` at each phase followed by a re-run that must equal an
uninterrupted run, Ctrl-C, a tracking server that is down, two runs into one fresh directory, a
corrupt cache, and every bad input the issue lists - each must give its documented exit status,
one line of message and no traceback. Rows lost and tracebacks shown are counted: both must be 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqbench.results import load_results

# Long enough to be killed in each phase: 600 steps (checkpoints every 100), a 1 s evaluation.
SLOW = ["--set", "toyae.steps=600", "--set", "toyae.checkpoint_every=100", "--set", "toyae.val_every=100",
        "--set", "toyae.log_every=20", "--metric-option", "toy-mean.delay=2"]
TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke", "--seeds", "0,1"]
KEY = ["dataset", "method", "seed", "metric", "key"]


@pytest.fixture(scope="module")
def site(toy_site) -> Path:
    return toy_site


def _env(site: Path, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({"PYTHONPATH": str(site), "SEQBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1",
                "SEQBENCH_PROGRESS_INTERVAL": "0", **extra})
    return env


def _seqbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqbench", *args]


def _values(out_dir: Path, run_id: str | None = None) -> dict[tuple, float]:
    frame = load_results(out_dir)
    run_id = run_id or frame["run_id"].iloc[-1]
    mine = frame[frame["run_id"] == run_id]
    assert (mine["status"] == "ok").all(), mine[["seed", "status", "reason"]]
    return {tuple(row[k] for k in KEY): row["value"] for _, row in mine.iterrows()}


@pytest.fixture(scope="module")
def reference(site, tmp_path_factory) -> dict[tuple, float]:
    """The rows of an uninterrupted run (the slow variant): what a run after a kill must reproduce exactly."""
    return _reference(site, tmp_path_factory, SLOW)


@pytest.fixture(scope="module")
def quick_reference(site, tmp_path_factory) -> dict[tuple, float]:
    """The rows of an uninterrupted smoke run (12 steps): for faults that need no timing."""
    return _reference(site, tmp_path_factory, [])


def _reference(site: Path, tmp_path_factory, extra: list[str]) -> dict[tuple, float]:
    root = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(_seqbench("run", *TOY, *extra, "-p", "no:mlflow_plugin", "-o", str(root / "out")),
                          env=_env(site, root / "cache"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _values(root / "out")


def _interrupt_when(cmd: list[str], env: dict[str, str], pattern: str, sig: int) -> tuple[int, str]:
    """Start ``cmd``, send ``sig`` once a stderr line matches ``pattern``; its exit status and stderr."""
    # The run starts with SIGINT at its default, as under a terminal: a test session started in the
    # background of a non-interactive shell (``pytest &``) ignores SIGINT, its children inherit that, and
    # Python then installs no KeyboardInterrupt handler, so Ctrl-C would never reach the run.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if re.search(pattern, line):
            proc.send_signal(sig)
            break
    else:
        proc.wait()
        pytest.fail(f"the run ended before {pattern!r}:\n{''.join(seen)[-3000:]}")
    rest = proc.stderr.read()
    return proc.wait(timeout=120), "".join(seen) + rest


# The phases of a run, each recognised by the progress line that starts it.
PHASES = {
    "training": r"seed0: training: step (2|3|4)\d\d/600",
    "evaluation": r"seed0/toy-mean: evaluating",
    "result writing": r"seed0/toy-mean: evaluated in",
    "second model's training": r"seed1: training: step (1|2)\d\d/600",  # early: a loaded machine reads stderr late
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_9_then_rerun_equals_an_uninterrupted_run(site, tmp_path, reference, phase):
    out_dir, env = tmp_path / "out", _env(site, tmp_path / "cache")
    cmd = _seqbench("run", *TOY, *SLOW, "-o", str(out_dir))
    code, _ = _interrupt_when(cmd, env, PHASES[phase], signal.SIGKILL)
    assert code == -signal.SIGKILL
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _values(out_dir) == reference  # 0 rows lost, identical numbers
    if phase == "training":
        assert "resuming from checkpoint" in rerun.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("seqbench").experiment_id])
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert "RUNNING" not in statuses.values(), statuses  # the killed run was found and marked
    assert "KILLED" in statuses.values()


def test_ctrl_c_exits_130_keeps_finished_rows_and_marks_the_run_killed(site, tmp_path, reference):
    out_dir, env = tmp_path / "out", _env(site, tmp_path / "cache")
    # every evaluation waits 20 s (the later --metric-option wins; seed 0's costs this test 18 s): however
    # late the reader sees seed 1's training line, the interrupt lands before the run could finish (with
    # 2 s it once exited 0 first in a full CI run)
    cmd = _seqbench("run", *TOY, *SLOW, "--metric-option", "toy-mean.delay=20", "-o", str(out_dir))
    code, err = _interrupt_when(cmd, env, PHASES["second model's training"], signal.SIGINT)
    # the run's stderr with the verdict: what the run had done by the time the signal came
    assert code == 130 and "interrupted; finished cells are saved" in err and "Traceback" not in err, (
        f"exit {code} after SIGINT; the run's stderr:\n{err[-4000:]}")
    kept = load_results(out_dir)
    assert list(kept["seed"]) == [0] and kept["value"].iloc[0] == reference[("toy-bars", "toyae", 0, "toy-mean", "mae")]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("seqbench").experiment_id])
    assert {r.info.status for r in runs} == {"KILLED"}


def test_sigterm_is_an_interruption_too(site, tmp_path):
    out_dir, env = tmp_path / "out", _env(site, tmp_path / "cache")
    code, err = _interrupt_when(_seqbench("run", *TOY, *SLOW, "-o", str(out_dir)), env, PHASES["training"],
                                signal.SIGTERM)
    assert code == 130 and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tracking_server_down_costs_no_rows(site, tmp_path, quick_reference):
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    proc = subprocess.run(_seqbench("run", *TOY, "-o", str(tmp_path / "out")),
                          env=_env(site, tmp_path / "cache", MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(uri) == 1 and "Traceback" not in proc.stderr
    assert _values(tmp_path / "out") == quick_reference
    assert time.monotonic() - start < 120


def test_two_concurrent_runs_into_one_fresh_directory(site, tmp_path, quick_reference):
    """Both runs keep every row and both reach the (new) MLflow store: no race on its schema."""
    out_dir, env = tmp_path / "out", _env(site, tmp_path / "cache")
    procs = [subprocess.Popen(_seqbench("run", *TOY, "-o", str(out_dir)), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errs]
    assert not any("MLflow tracking at" in e for e in errs), errs
    frame = load_results(out_dir)
    run_ids = list(dict.fromkeys(frame["run_id"]))
    assert len(run_ids) == 2 and all(_values(out_dir, run_id) == quick_reference for run_id in run_ids)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("seqbench").experiment_id])
    parents = [r for r in runs if "seqbench.run_id" in r.data.tags]
    assert sorted(r.data.tags["seqbench.run_id"] for r in parents) == sorted(run_ids)
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_corrupt_cache_files_are_named_moved_aside_and_rebuilt(site, tmp_path, quick_reference):
    out_dir, env = tmp_path / "out", _env(site, tmp_path / "cache")
    cmd = _seqbench("run", *TOY, "-p", "no:mlflow_plugin", "-o", str(out_dir))
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    model = sorted((tmp_path / "cache" / "models" / "toyae").glob("*/model.pt"))[0]
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # truncated, as by a full disk
    cell = sorted((tmp_path / "cache" / "cells").glob("*.json"))[0]
    cell.write_text('[{"run_id": ')
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr
    assert f"cached file {model} is unreadable" in rerun.stderr and f"cached file {cell} is unreadable" in rerun.stderr
    assert list(model.parent.glob("model.pt.corrupt-*")) and list(cell.parent.glob(f"{cell.name}.corrupt-*"))
    assert _values(out_dir) == quick_reference


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], dict[str, str], str]]:
    """(arguments, extra environment, the message's start) for every bad input of issue 19."""
    seeds_text = tmp_path / "seeds-text.toml"
    seeds_text.write_text('seeds = "0,x"\n')
    seeds_float = tmp_path / "seeds-float.toml"
    seeds_float.write_text("seeds = 1.5\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return [
        (["--set", "toyae.steps=-5"], {}, "--set toyae.steps=-5: steps must be at least 1"),
        (["--set", "toyae.batch_size=0"], {}, "--set toyae.batch_size=0: batch_size must be at least 1"),
        (["--set", "toyae.lrr=1"], {}, "--set toyae.lrr: ToyConfig has no setting 'lrr'"),
        (["--metric-option", "toy-mean.nosuch=1"], {}, "metric option toy-mean.nosuch does not exist; valid options"),
        (["--metric-option", "nosuch.k=1"], {}, "--metric-option nosuch.…: unknown metric 'nosuch'"),
        (["--metric-option", "judge.niter=3"], {}, "--metric-option judge.…: metric 'judge' is not part of this run"),
        (["--metric-option", "garbage"], {}, "--metric-option 'garbage': expected METRIC.KEY=VALUE"),
        (["--data-option", "garbage"], {}, "--data-option 'garbage': expected DATASET.KEY=VALUE"),
        (["--seeds", "0,0"], {}, "--seeds 0,0: seed(s) 0 given twice"),
        (["--seeds", "a"], {}, "argument --seeds: --seeds 'a': expected comma-separated integers"),
        (["--config", str(seeds_text)], {}, f"--config {seeds_text}: seeds = '0,x' should be a list of integers"),
        (["--config", str(seeds_float)], {}, f"--config {seeds_float}: seeds = 1.5 should be a list of integers"),
        ([], {"SEQBENCH_CACHE": str(blocker / "cache")}, "cache directory (SEQBENCH_CACHE)"),
        (["-o", str(blocker / "out")], {}, f"output directory {blocker / 'out'} is not writable"),
        (["--methods", "toyea"], {}, "unknown method 'toyea'. Did you mean 'toyae'?"),
        (["--eval-clips", "-3"], {}, "--eval-clips -3: give a positive number of test clips"),
        (["--device", "cuda:7"] if not _cuda() else ["--device", "tpu"], {}, "--device"),
    ]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_every_bad_input_is_a_one_line_usage_error_before_work_starts(site, tmp_path):
    cache = tmp_path / "cache"
    base = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke",
            "-p", "no:mlflow_plugin"]
    tracebacks, failures = 0, []
    cases = _bad_inputs(tmp_path)
    for args, extra, message in cases:
        argv = [*base, "-o", str(tmp_path / "out"), *args]
        proc = subprocess.run(_seqbench("run", *argv), env=_env(site, cache, **extra), capture_output=True, text=True,
                              timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("seqbench")]  # not argparse's usage
        tracebacks += "Traceback" in proc.stderr
        if proc.returncode != 2 or len(lines) != 1 or message not in lines[0] or "[seqbench]" in proc.stderr:
            failures.append((args, proc.returncode, proc.stderr[-1500:]))
    assert not failures, failures
    assert tracebacks == 0
    assert not (cache / "models").exists() and not (tmp_path / "out").exists()  # refused before any work
    assert len(cases) >= 17


def test_unknown_plugin_block_warns_and_runs(site, tmp_path):
    proc = subprocess.run(_seqbench("run", *TOY, "-p", "no:mlflow_plugin", "-p", "no:typo", "--dry-run"),
                          env=_env(site, tmp_path / "cache"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.startswith("seqbench: warning: -p no:typo: no plugin is named 'typo'")


def test_failed_cells_exit_1_with_their_tracebacks_in_the_run_log(site, tmp_path):
    out_dir = tmp_path / "out"
    proc = subprocess.run(_seqbench("run", *TOY, "-p", "no:mlflow_plugin", "--set", "toyae.fail=true", "-o",
                                    str(out_dir)), env=_env(site, tmp_path / "cache"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "2 cell(s) failed" in proc.stderr and "Traceback" not in proc.stderr
    log = Path(re.search(r"^tracebacks: (.+)$", proc.stderr, flags=re.M).group(1))
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 2 and 'raise RuntimeError("toyae was told to fail")' in text
    meta = json.loads((log.parent / "run.json").read_text())
    assert meta["summary"]["failed"] == 2


def test_kill_9_during_judge_training_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """The judge phase: a run killed while its (smoke, 60-step) judge trains leaves no half-written judge;
    the re-run trains it again and its rows equal those of an uninterrupted run."""
    args = ["run", "--methods", "dbse", "--metrics", "judge", "--metric-option", "judge.protocols=swap",
            "--dataset", "synthetic-sprites", "--data-option", "synthetic-sprites.size=32", "--profile", "smoke",
            "--eval-clips", "16", "-p", "no:mlflow_plugin", "--no-visuals"]
    def env(cache: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        return {**base, "SEQBENCH_CACHE": str(tmp_path / cache), "OMP_NUM_THREADS": "1",
                "SEQBENCH_PROGRESS_INTERVAL": "0"}

    straight = subprocess.run(_seqbench(*args, "-o", str(tmp_path / "straight")), env=env("a"), capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    cmd = _seqbench(*args, "-o", str(tmp_path / "killed"))
    code, err = _interrupt_when(cmd, env("b"), r"judge synthetic-sprites: (training|step)", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not list((tmp_path / "b" / "judges").glob("*/model.pt"))  # nothing half-written was kept
    rerun = subprocess.run(cmd, env=env("b"), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    weights = [json.loads(p.read_text())["weights"] for c in "ab" for p in (tmp_path / c / "judges").glob("*/meta.json")]
    assert len(set(weights)) == 1 and _values(tmp_path / "killed") == _values(tmp_path / "straight"), weights
