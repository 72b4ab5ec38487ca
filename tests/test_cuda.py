"""Every built-in method and metric on a CUDA device (skipped where torch sees no GPU).

The CPU suite cannot see device mix-ups: a decode left on the GPU and handed to numpy failed every
judge cell on an H200 (the shared ``decode_batches`` helper now returns CPU tensors, like
``encode_split``). This is the check that ran there, through the real entry point: the smoke
profile of every registered video method with every metric that applies on synthetic-sprites, and
of every speech method on synthetic-speech, with pictures on.
"""

from __future__ import annotations

import pytest
import torch

from seqbench.cli import main
from seqbench.results import load_results

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

VIDEO = ["--methods", "dbse,spyl,cdsvae,divid,diffsda,vidtwin,bcd", "--metrics", "judge,leak,mse,akd,aed,size"]
SPEECH = ["--methods", "dbse,spyl,cdsvae,diffsda", "--dataset", "synthetic-speech", "--metrics", "eer,leak,mse,size"]


@pytest.mark.parametrize("args", [VIDEO, SPEECH], ids=["video", "speech"])
def test_every_method_and_metric_runs_on_cuda(args, cache_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["run", *args, "--profile", "smoke", "--device", "cuda", "--no-progress",
                 "-p", "no:mlflow_plugin", "-o", str(out)]) == 0
    rows = load_results(out)
    assert set(rows["method"]) == set(args[1].split(","))
    broken = rows[~rows["status"].isin(["ok", "not_applicable"])]
    assert broken.empty, broken[["method", "metric", "key", "status", "reason"]].to_string()
    assert (rows["device"].astype(str).str.startswith("cuda")).all()

