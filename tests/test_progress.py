"""Progress in batch logs: steady lines (step, loss, elapsed, ETA) through the ``seqbench`` logger."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import torch

from seqbench.log import ProgressLog, heartbeat

TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke",
       "-p", "no:mlflow_plugin"]
LINE = re.compile(r"^\[seqbench\] toy-bars/toyae/seed0: training: step (\d+)/40, loss [\d.e+-]+, elapsed \d+s, ETA")


def test_progress_lines_every_tenth_and_at_the_end():
    lines: list[str] = []
    progress = ProgressLog("job", 100, interval_s=3600, emit=lines.append)
    for step in range(1, 101):
        progress.update(step, loss=1.0 / step)
    assert [int(re.search(r"step (\d+)/100", line).group(1)) for line in lines] == [1, *range(10, 101, 10)]
    assert lines[-1].startswith("job: step 100/100, loss 0.01, elapsed") and "ETA 0s" in lines[-1]


def test_progress_lines_by_time_alone():
    lines: list[str] = []
    progress = ProgressLog("judge", 1000, interval_s=0.05, fractions=0, emit=lines.append)
    progress.update(1, loss=2.0)
    progress.update(2, loss=2.0)  # too soon
    time.sleep(0.06)
    progress.update(3, loss=1.0)
    assert len(lines) == 2 and "step 3/1000, loss 1" in lines[1] and "ETA" in lines[1]


def test_heartbeat_speaks_while_work_runs(capsys):
    from seqbench.log import configure_logging

    configure_logging()
    with heartbeat(lambda elapsed: f"still busy after {elapsed:.1f}s", interval_s=0.05):
        time.sleep(0.2)
    assert capsys.readouterr().err.count("still busy after") >= 2


def test_batch_log_shows_training_and_evaluation_progress(toy_plugin, cache_dir, tmp_path):
    """``seqbench run > log 2>&1``: stderr is a file, so progress comes as lines, not a bar."""
    log = tmp_path / "log"
    with log.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "seqbench", "run", *TOY, "--set", "toyae.steps=40",
                               "-o", str(tmp_path / "out")], stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text()
    assert proc.returncode == 0, text
    steps = [int(m.group(1)) for m in map(LINE.match, text.splitlines()) if m]
    assert steps[0] == 4 and steps[-1] == 40 and len(steps) >= 5, text
    assert "toy-bars/toyae/seed0/toy-mean: evaluating (cell 1/1 to evaluate)" in text
    assert re.search(r"toy-mean: evaluated in \d+s; 1/1 cells, evaluation ETA 0s", text)


def test_judge_style_training_reports_progress(monkeypatch):
    """:func:`seqbench.trainer.fit_model` (judges, learned backends) logs steps with elapsed and ETA."""
    from seqbench.data import SplitData
    from seqbench.trainer import FitConfig, fit_model

    monkeypatch.setenv("SEQBENCH_PROGRESS_INTERVAL", "0")
    rng = np.random.default_rng(0)
    data = SplitData(x=rng.random((40, 2, 1, 4, 4), dtype=np.float32), labels={"y": rng.integers(0, 2, 40)},
                     identity=np.arange(40))
    model = torch.nn.Linear(32, 2)
    lines: list[str] = []
    fit_model(model, lambda m, batch: m(batch.x.flatten(1)).logsumexp(1).mean(), lambda m, split: 0.0, data,
              FitConfig(max_steps=6, val_every=3, batch_size=8), torch.device("cpu"), desc="probe", log=lines.append)
    assert any(re.match(r"probe: training: step 1/6, loss [\d.]+, elapsed \d+s, ETA", line) for line in lines), lines
    assert any(re.match(r"probe: step 6/6, loss .*validation score .*elapsed \d+s, ETA at most 0s", line)
               for line in lines), lines
