"""benchmarks/row_models.py: the command it prints trains the model a board's rows name again."""

from __future__ import annotations

import json
import shlex
import shutil
from seqbench.cli import main as cli
from seqbench.results import load_results


def test_training_argv_keeps_the_rows_settings_and_replaces_what_a_retraining_changes(benchmark_script):
    script = benchmark_script("row_models")
    argv = ["--methods", "bcd,divid", "--seeds", "0,1", "--dataset", "sprites", "--data-option", "sprites.size=32",
            "--set", "bcd.steps=9000", "--metrics=judge,leak", "--output", "/tmp/x", "--no-progress"]
    assert script.training_argv(argv, "bcd", 1) == [
        "--dataset", "sprites", "--data-option", "sprites.size=32", "--set", "bcd.steps=9000",
        "--methods", "bcd", "--seeds", "1", "--metrics", "mse", "--probes", "none", "--no-visuals", "--no-progress"]


def test_the_printed_command_trains_the_rows_model_again(toy_plugin, cache_dir, tmp_path, capsys, benchmark_script):
    rows = tmp_path / "rows"
    assert cli(["run", "--methods", "toyae", "--metrics", "mse", "--dataset", "toy-bars", "--profile", "smoke",
                "--seeds", "1", "--no-progress", "--output", str(rows), "-p", "no:mlflow_plugin"]) == 0
    first = load_results(rows)
    key = str(first["model_key"].iloc[0])
    capsys.readouterr()

    script = benchmark_script("row_models")
    script.main(["--rows", str(rows), "--dataset", "toy-bars"])
    out = capsys.readouterr().out
    assert f"toyae seed 1: rows' model {key} (in this cache)" in out and "this checkout builds it" in out
    assert "-p no:mlflow_plugin" in out  # the rows' own options are kept
    command = next(line.strip() for line in out.splitlines() if line.strip().startswith("seqbench run"))

    shutil.rmtree(cache_dir / "models")  # the cache that trained it is gone
    again = tmp_path / "again"
    assert cli([*shlex.split(command)[1:], "--output", str(again)]) == 0
    second = load_results(again)
    assert set(second["model_key"]) == {key}
    mse = lambda frame: frame.loc[frame["key"] == "mse", "value"].tolist()  # noqa: E731
    assert mse(second) == mse(first)  # the same weights: the same MSE, to the last digit

    # rows this checkout cannot build (another source): the commit they were made at is named
    results = next(rows.glob("**/results.jsonl"))
    record = json.loads(next(rows.glob("**/run.json")).read_text())
    results.write_text(results.read_text().replace(key, "0" * 20))
    script.main(["--rows", str(rows), "--dataset", "toy-bars"])
    out = capsys.readouterr().out
    assert f"this checkout builds {key}; the rows were made at {str(record['git_sha'])[:12]}" in out
    assert "--worktrees DIR checks" in out
