"""``seqbench`` end to end on the third-party toy plugin: run, reuse, failures, bad input, leaderboards."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from seqbench.cli import main
from seqbench.results import load_results

TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke", "--no-progress"]
NO_MLFLOW = ["-p", "no:mlflow_plugin"]


def _run(args, capsys):
    code = main(["run", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_results_leaderboard_and_reuses_cache(toy_plugin, cache_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, stdout, _ = _run([*TOY, *NO_MLFLOW, "--seeds", "0,1", "-o", str(out_dir)], capsys)
    assert code == 0
    frame = load_results(out_dir)
    assert set(frame["seed"]) == {0, 1} and (frame["status"] == "ok").all()
    assert frame["value"].between(0, 1).all()
    board = (out_dir / "leaderboards" / "toy-bars.md").read_text()
    assert "toyae (2 seeds)" in board and "mae ↓" in board and "git sha" in board
    first = frame.set_index("seed")["value"]
    models = list((cache_dir / "models" / "toyae").iterdir())
    assert len(models) == 2 and all((m / "model.pt").exists() and (m / "meta.json").exists() for m in models)

    code, _, _ = _run([*TOY, *NO_MLFLOW, "--seeds", "0,1", "-o", str(out_dir)], capsys)
    assert code == 0
    frame = load_results(out_dir)
    second = frame[frame["run_id"] == frame["run_id"].iloc[-1]]
    assert second["reused"].all()
    assert second.set_index("seed")["value"].equals(first)


def test_cached_model_is_reused_for_a_new_metric(toy_plugin, cache_dir, tmp_path, capsys, monkeypatch):
    _run([*TOY, *NO_MLFLOW, "-o", str(tmp_path / "a")], capsys)
    model = next((cache_dir / "models" / "toyae").iterdir()) / "model.pt"
    mtime = model.stat().st_mtime_ns
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(tmp_path / "b"), "--limit", "5"], capsys)
    assert code == 0 and "reusing cached model" in err
    assert model.stat().st_mtime_ns == mtime


def test_failing_cell_is_recorded_and_run_goes_on(toy_plugin, cache_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, _, err = _run([*TOY, *NO_MLFLOW, "--seeds", "0", "-o", str(out_dir), "--set", "toyae.fail=true"], capsys)
    assert code == 1
    assert "1 cell(s) failed" in err and "toyae was told to fail" in err
    frame = load_results(out_dir)
    assert list(frame["status"]) == ["error"] and "training failed" in frame["reason"].iloc[0]


def test_limit_runs_are_flagged_and_left_out_of_leaderboards(toy_plugin, cache_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), "--limit", "4"], capsys)[0] == 0
    frame = load_results(out_dir)
    assert (frame["limit"] == 4).all() and (frame["n"] == 4).all()
    assert "No comparable results" in (out_dir / "leaderboards" / "toy-bars.md").read_text()


def test_dry_run_prints_plan_without_training(toy_plugin, cache_dir, tmp_path, capsys):
    code, stdout, _ = _run([*TOY, *NO_MLFLOW, "--dry-run", "--seeds", "0,1,2", "-o", str(tmp_path / "o")], capsys)
    assert code == 0 and "3 model(s), 3 cell(s)" in stdout and "to train" in stdout
    assert not (cache_dir / "models").exists() and not (tmp_path / "o").exists()


def test_config_file(toy_plugin, cache_dir, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('methods = "toyae"\nmetrics = ["toy-mean"]\ndataset = "toy-bars"\nprofile = "smoke"\n'
                   'plugins = ["no:mlflow_plugin"]\n[set.toyae]\nsteps = 3\n')
    code, stdout, _ = _run(["--config", str(cfg), "--dry-run", "--no-progress"], capsys)
    assert code == 0 and "3 steps" in stdout


@pytest.mark.parametrize("args, message", [
    (["--methods", "toyea"], "unknown method 'toyea'. Did you mean 'toyae'"),
    (["--metrics", "toy-man"], "unknown metric 'toy-man'. Did you mean 'toy-mean'"),
    (["--dataset", "toy-bar"], "unknown dataset 'toy-bar'. Did you mean 'toy-bars'"),
    (["--set", "toyae.lrr=1"], "no setting 'lrr'. Did you mean lr? Valid keys:"),
    (["--set", "toyae.steps=many"], "toyae.steps='many': expected int"),
    (["--set", "toyae"], "expected METHOD.KEY=VALUE"),
    (["--set", "dbse.lr=1"], "method 'dbse' is not part of this run"),
    (["-p", "no_such_plugin_module"], "cannot import plugin module"),
    (["--set", "toyae.steps=-5"], "--set toyae.steps=-5: steps must be at least 1"),
    (["--set", "toyae.batch_size=0"], "--set toyae.batch_size=0: batch_size must be at least 1"),
    (["--set", "lr=0"], "--set toyae.lr=0.0: lr must be positive"),
    (["--metric-option", "toy-mean.nosuch=1"], "metric option toy-mean.nosuch does not exist; valid options: delay, scale"),
    (["--metric-option", "toy-mean.scale=big"], "toy-mean.scale='big': expected a float"),
    (["--metric-option", "nosuch.k=1"], "unknown metric 'nosuch'. This run's metrics: toy-mean"),
    (["--metric-option", "toy-man.k=1"], "Did you mean 'toy-mean'? This run's metrics: toy-mean"),
    (["--metric-option", "judge.niter=2"], "metric 'judge' is not part of this run (--metrics toy-mean)"),
    (["--metric-option", "garbage"], "--metric-option 'garbage': expected METRIC.KEY=VALUE"),
    (["--data-option", "garbage"], "--data-option 'garbage': expected DATASET.KEY=VALUE"),
    (["--seeds", "0,1,0"], "--seeds 0,1,0: seed(s) 0 given twice"),
])
def test_bad_input_is_actionable_without_traceback(toy_plugin, cache_dir, tmp_path, capsys, args, message):
    base = {"--methods": "toyae", "--metrics": "toy-mean", "--dataset": "toy-bars"}
    argv = ["--profile", "smoke", "--no-progress", "-o", str(tmp_path / "o"), *NO_MLFLOW]
    for flag, value in base.items():
        if flag not in args:
            argv += [flag, value]
    code, stdout, stderr = _run([*argv, *args], capsys)
    assert code == 2
    assert message in stderr, stderr
    assert "Traceback" not in stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_unwritable_output_dir(toy_plugin, cache_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(locked / "out")], capsys)
    assert code == 2 and "not writable" in err and "--output" in err


def test_output_path_that_is_a_file(toy_plugin, cache_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(blocker / "out")], capsys)
    assert code == 2 and "not writable" in err and "Traceback" not in err


def test_broken_plugin_module_via_subprocess(toy_plugin, make_distribution, cache_dir, tmp_path):
    make_distribution(toy_plugin, "seqbench_broken", "seqbench_broken", "raise RuntimeError('boom')\n",
                      entry_name="broken")
    proc = subprocess.run([sys.executable, "-m", "seqbench", "run", *TOY, *NO_MLFLOW, "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "plugin 'broken' from seqbench_broken 0.1 failed to load" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_leaderboard_command_and_mixed_versions(toy_plugin, cache_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    _run([*TOY, *NO_MLFLOW, "-o", str(out_dir)], capsys)
    assert main(["leaderboard", "--from", str(out_dir)]) == 0
    assert "| toyae (1 seed)" in capsys.readouterr().out
    path = out_dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows.append(dict(rows[0], metric_version="2", run_id="other", seed=5))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["leaderboard", "--from", str(out_dir)]) == 2
    assert "refusing to mix metric_version values 1, 2" in capsys.readouterr().err


def test_leaderboard_combines_run_directories(toy_plugin, cache_dir, tmp_path, capsys):
    """Seeds run as separate commands (or machines) make one leaderboard: repeat --from."""
    first, second = tmp_path / "seed0", tmp_path / "seed1"
    assert _run([*TOY, *NO_MLFLOW, "-o", str(first)], capsys)[0] == 0
    assert _run([*TOY, *NO_MLFLOW, "-o", str(second), "--seeds", "1"], capsys)[0] == 0
    board = tmp_path / "board.md"
    assert main(["leaderboard", "--from", str(first), "--from", str(second), "-o", str(board)]) == 0
    assert "| toyae (2 seeds)" in board.read_text()
    assert main(["leaderboard", "--from", str(first), "--dataset", "nope"]) == 2
    assert f"no results for dataset 'nope' in {first}" in capsys.readouterr().err


def test_eval_clips_scores_a_fixed_subset_and_leaderboards_refuse_to_mix_sizes(toy_plugin, cache_dir, tmp_path,
                                                                               capsys):
    from seqbench.metric import evaluation_subset

    out_dir = tmp_path / "out"
    code, _, _ = _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), "--eval-clips", "6"], capsys)
    assert code == 0
    frame = load_results(out_dir)
    assert list(frame["n"]) == [6] and list(frame["eval_clips"]) == [6]
    subset = evaluation_subset("toybars-v1", 16, 6)
    assert len(subset) == 6 and list(subset) == sorted(set(subset))
    assert list(subset) == list(evaluation_subset("toybars-v1", 16, 6))  # a function of the dataset alone
    assert evaluation_subset("toybars-v1", 16, 16) is None and evaluation_subset("toybars-v1", 16, None) is None
    board = (out_dir / "leaderboards" / "toy-bars.md").read_text()
    assert "a fixed seeded subset of 6" in board
    # The whole test split is a different protocol: same model, new cells; a leaderboard with one seed
    # scored each way is refused (re-running one seed just replaces its rows: the newest wins).
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), "--eval-clips", "0"], capsys)
    assert code == 0 and "reusing cached model" in err
    assert "whole split" in (out_dir / "leaderboards" / "toy-bars.md").read_text()
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), "--eval-clips", "6", "--seeds", "1"], capsys)
    assert main(["leaderboard", "--from", str(out_dir)]) == 2
    assert "refusing to mix eval_clips values" in capsys.readouterr().err
    assert _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), "--eval-clips", "-3"], capsys)[0] == 2


def test_two_concurrent_runs_train_a_model_once(toy_plugin, cache_dir, tmp_path):
    """Two ``seqbench run`` processes sharing a cache: one trains, the other waits and reuses the model."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "seqbench", "run", *TOY, *NO_MLFLOW, "--set", "toyae.steps=600"]
    procs = [subprocess.Popen([*cmd, "-o", str(tmp_path / f"out{i}")], env=env, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert sum("trained 600 steps" in e for e in errs) == 1
    assert sum("reusing cached model" in e for e in errs) == 1
    waiting = [e for e in errs if "reusing cached model" in e][0]
    assert "toy-bars/toyae/seed0: waiting for" in waiting and "another seqbench process is training" in waiting


def test_bad_input_is_refused_before_anything_trains(toy_plugin, cache_dir, tmp_path, capsys):
    """Every usage error is found while planning: no model directory, no output directory."""
    out_dir = tmp_path / "o"
    for bad in (["--set", "toyae.batch_size=0"], ["--metric-option", "toy-mean.nosuch=1"], ["--seeds", "2,2"]):
        assert _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), *bad], capsys)[0] == 2
        assert not (cache_dir / "models").exists() and not out_dir.exists()


@pytest.mark.parametrize("toml, message", [
    ('seeds = 1.5', 'seeds = 1.5 should be a list of integers'),
    ('seeds = ["a"]', "should be a list of integers"),
    ('plugins = [1, 2]', "plugins = [1, 2] should be a list of names"),
    ('limit = "ten"', "limit = 'ten' should be an integer"),
    ('set = 3', "set should hold tables, e.g. [set.NAME]"),
])
def test_config_file_values_of_the_wrong_type_name_the_key(toy_plugin, cache_dir, tmp_path, capsys, toml, message):
    cfg = tmp_path / "run.toml"
    cfg.write_text(toml + "\n")
    code, _, err = _run([*TOY, *NO_MLFLOW, "--config", str(cfg), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and message in err and str(cfg) in err and "Traceback" not in err


def test_config_file_seeds_as_a_string_are_coerced(toy_plugin, cache_dir, tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('seeds = "0,1"\n')
    code, stdout, _ = _run([*TOY, *NO_MLFLOW, "--config", str(cfg), "--dry-run"], capsys)
    assert code == 0 and "seed0" in stdout and "seed1" in stdout


def test_unwritable_cache_is_a_one_line_usage_error(toy_plugin, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SEQBENCH_CACHE", str(blocker / "cache"))
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"seqbench: error: cache directory (SEQBENCH_CACHE) {blocker / 'cache'} is not "
                                        f"writable (Not a directory); set SEQBENCH_CACHE to a writable directory"]


def test_blocking_an_unknown_plugin_warns(toy_plugin, cache_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seqbench", "run", *TOY, *NO_MLFLOW, "-p", "no:mlflow_plugn",
                           "--dry-run"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "seqbench: warning: -p no:mlflow_plugn: no plugin is named 'mlflow_plugn'" in proc.stderr
    assert "Did you mean no:mlflow_plugin" in proc.stderr and "Traceback" not in proc.stderr


def test_non_finite_metric_value_is_a_failed_cell(toy_plugin, cache_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, _, err = _run([*TOY, *NO_MLFLOW, "-o", str(out_dir), "--metric-option", "toy-mean.scale=nan"], capsys)
    assert code == 1 and "1 cell(s) failed" in err
    row = load_results(out_dir).iloc[0]
    assert row["status"] == "error" and "returned nan for 'mae'" in row["reason"]


def test_exit_status_is_one_whatever_the_number_of_failed_cells(toy_plugin, cache_dir, tmp_path, capsys):
    code, _, err = _run([*TOY, *NO_MLFLOW, "--seeds", "0,1,2", "-o", str(tmp_path / "o"), "--set", "toyae.fail=true"],
                        capsys)
    assert code == 1 and "3 cell(s) failed" in err


def test_edited_plugin_code_is_never_served_from_the_cache(toy_plugin, cache_dir, tmp_path):
    """A metric whose formula changed (version not bumped) is recomputed; reused values are marked."""
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "-m", "seqbench", "run", *TOY, *NO_MLFLOW, "-o", str(out_dir)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert "(cached)" in again.stdout and "1 cell(s) reused from the cache" in again.stdout
    module = toy_plugin / "seqbench_toy" / "__init__.py"
    module.write_text(module.read_text().replace('.mean().item() * self.resolved_options()["scale"]',
                                                 '.mean().item() * 1000 * self.resolved_options()["scale"]'))
    edited = subprocess.run(cmd, capture_output=True, text=True)
    assert edited.returncode == 0 and "(cached)" not in edited.stdout
    frame = load_results(out_dir)
    runs = list(dict.fromkeys(frame["run_id"]))
    values = [frame[frame["run_id"] == run]["value"].iloc[0] for run in runs]
    assert values[1] == values[0] and values[2] == pytest.approx(1000 * values[0], rel=1e-4)
    assert frame[frame["run_id"] == runs[2]]["reused"].isna().all()
    meta = json.loads(next((out_dir / "runs").glob(f"{runs[2]}/run.json")).read_text())
    assert meta["plugins"]["metrics"] == {"toy-mean": "seqbench_toy 0.1"}
    assert "plugin distributions seqbench_toy 0.1" in (out_dir / "leaderboards" / "toy-bars.md").read_text()


def test_server_process_group_is_stopped_on_sigterm(tmp_path):
    """``seqbench ui``'s server and every child it forks stop when seqbench gets SIGTERM."""
    import signal
    import time

    script = tmp_path / "server.py"
    pids = tmp_path / "pids"
    script.write_text("import os, subprocess, sys, time\n"
                      "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                      f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
                      "time.sleep(600)\n")
    runner = tmp_path / "runner.py"
    runner.write_text("import sys\nfrom seqbench.cli import serve_in_own_group\n"
                      f"sys.exit(serve_in_own_group([sys.executable, {str(script)!r}], grace_s=5))\n")
    proc = subprocess.Popen([sys.executable, str(runner)])
    deadline = time.time() + 60
    while not (pids.exists() and len(pids.read_text().split()) == 2) and time.time() < deadline:
        time.sleep(0.1)
    server, worker = map(int, pids.read_text().split())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return open(f"/proc/{pid}/stat").read().split()[2] == "Z"  # exited, not yet reaped

    deadline = time.time() + 10
    while not (gone(server) and gone(worker)) and time.time() < deadline:
        time.sleep(0.1)
    assert gone(server) and gone(worker)
