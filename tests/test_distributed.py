"""Data-parallel training under a real ``torchrun`` (2 CPU ranks, Gloo) against single-process training."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from seqbench.cli import main
from seqbench.results import load_results

TOY = ["--methods", "toyae", "--metrics", "toy-mean", "--dataset", "toy-bars", "--profile", "smoke", "--no-progress",
       "-p", "no:mlflow_plugin"]


def _model(cache_dir):
    (model_dir,) = list((cache_dir / "models" / "toyae").iterdir())
    return model_dir, torch.load(model_dir / "model.pt", weights_only=True)


def test_torchrun_two_ranks_trains_like_one_process_and_rank0_alone_reports(toy_plugin, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Single process: the reference weights.
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / "single"))
    assert main(["run", *TOY, "-o", str(tmp_path / "out1")]) == 0
    _, reference = _model(tmp_path / "single")

    env = dict(os.environ, SEQBENCH_CACHE=str(tmp_path / "ddp"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "seqbench", "run", *TOY, "-o", str(tmp_path / "out2")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    model_dir, weights = _model(tmp_path / "ddp")
    # Batch 8 split 4 + 4 with averaged gradients of a mean loss = the single-process update.
    for key, value in reference.items():
        torch.testing.assert_close(weights[key], value, atol=1e-5, rtol=1e-4)
    # Rank 0 alone evaluated and wrote: one result row, one run directory.
    frame = load_results(tmp_path / "out2")
    assert len(frame) == 1 and frame["status"].iloc[0] == "ok"
    assert len(list((tmp_path / "out2" / "runs").iterdir())) == 1
    assert '"world_size": 2' in next((tmp_path / "out2" / "runs").iterdir()).joinpath("run.json").read_text()
