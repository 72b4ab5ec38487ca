"""benchmarks/bcd_bitrate_sweep.py end to end: two real runner invocations on the toy plugin's clips."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bcd_bitrate_sweep.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bcd_bitrate_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_runs_each_bitrate_and_writes_the_table(toy_plugin, cache_dir, tmp_path):
    sweep = load_script()
    out, table = tmp_path / "sweep", tmp_path / "docs" / "bcd.md"
    assert sweep.main(["--bitrates", "2x1,4x2", "--profile", "smoke", "--dataset", "toy-bars", "--metrics", "mse",
                       "--set", "bcd.patch_size=2", "--output", str(out), "--markdown", str(table),
                       "--perplexity-clips", "8"]) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert [(r["codes"], r["groups"], r["bits"]) for r in rows] == [(2, 1, 1.0), (4, 2, 4.0)]
    for row in rows:
        assert row["seeds"] == 1 and 1.0 <= row["perplexity"] <= row["codes"]
        assert 0 < row["mse"] < 1 and 0 < row["mse_1step"] < 1  # toy clips lie in [0, 1]
        assert math.isnan(row["s_to_d"])  # leak was not asked for: reported as missing, not invented
    text = table.read_text()
    assert "| 2 x 1 | 1.0 |" in text and "| 4 x 2 | 4.0 |" in text and "MSE 1-step" in text
    assert "| chance |" in text and "(mean clip)" in text  # the mse metric's chance: the mean training clip
    assert (out / "bcd-2x1" / "results.jsonl").exists() and (out / "bcd-4x2" / "results.jsonl").exists()


def test_bitrate_parsing_names_the_bad_item():
    sweep = load_script()
    assert sweep.parse_bitrates("8x4, 16") == [(8, 4), (16, 1)]
    try:
        sweep.parse_bitrates("8x4,eight")
    except SystemExit as err:
        assert "'eight'" in str(err) and "CODESxGROUPS" in str(err)
    else:
        raise AssertionError("a bad bitrate must stop the sweep")
