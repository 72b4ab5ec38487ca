"""Time to append result rows to results.jsonl: linear in the row count (seqbench.results.append_rows).

Appends ``--rows`` rows (default 10,000) in batches of ``--batch`` (default 10, about one cell's
rows) to a fresh file and prints, every 1,000 rows, the time the last 1,000 rows took and the mean
per 1,000 so far: a writer whose cost grew with the file would show the first column rising with
the row count. ``--baseline`` also runs the writer seqbench had before (rewrite the whole file
atomically on every call) on the same rows, for comparison; it is quadratic, so give it fewer rows.

    python benchmarks/results_writer.py [--rows 10000] [--batch 10] [--dir /some/disk] [--baseline 3000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVERY = 1000


def result_row(i: int) -> dict[str, Any]:
    """A row of the real shape and size (every column, provenance strings of the usual lengths)."""
    from seqbench.results import COLUMNS

    row = dict.fromkeys(COLUMNS)
    row.update({"run_id": "20261203-022151-a8f5ae", "timestamp": "2026-12-03T03:24:24+00:00",
                "dataset": "synthetic-sprites", "method": "dbse", "seed": i % 5, "metric": "mse",
                "key": f"mse/frame{i % 8}", "value": 0.0025 + i * 1e-9, "higher_is_better": False, "n": 512,
                "ci_low": 0.0024, "ci_high": 0.0026, "status": "ok", "profile": "quick", "eval_clips": 512,
                "metric_version": "2", "method_version": "2", "dataset_fingerprint": "7382ce070ac82132",
                "config_hash": "20fa70df079addfc", "model_key": "0348d691b93c6e3ed8bc",
                "cell_key": f"{i // 10:020x}", "seqbench_version": "0.1.0",
                "git_sha": "d3f5c59c2a2f142241aaba0dce249fc562f6cee8", "device": "cpu", "duration_s": 114.1,
                "method_distribution": "seqbench 0.1.0", "metric_distribution": "seqbench 0.1.0"})
    return row


def rewrite_whole_file(path: Path, rows: list[dict[str, Any]]) -> None:
    """The writer before issue 18: read the file, add the rows, write it all again atomically."""
    from seqbench.utils import atomic_write_text

    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, existing + "".join(json.dumps(row) + "\n" for row in rows))


def measure(name: str, write: Callable[[Path, list[dict[str, Any]]], None], rows: int, batch: int,
            folder: Path) -> list[float]:
    """Append ``rows`` rows in batches; print and return the seconds each 1,000 rows took."""
    path = folder / f"{name}.jsonl"
    print(f"\n{name}: {rows} rows in batches of {batch} -> {path}")
    print(f"{'rows':>7} {'last 1000 (s)':>14} {'per 1000 so far (s)':>20} {'total (s)':>10} {'file (MB)':>10}")
    laps: list[float] = []
    total = 0.0
    lap_start = 0.0
    for start in range(0, rows, batch):
        chunk = [result_row(i) for i in range(start, min(rows, start + batch))]
        began = time.perf_counter()
        write(path, chunk)
        total += time.perf_counter() - began
        done = start + len(chunk)
        if done % EVERY == 0 or done == rows:
            laps.append(total - lap_start)
            lap_start = total
            print(f"{done:>7} {laps[-1]:>14.3f} {total / done * EVERY:>20.3f} {total:>10.2f} "
                  f"{path.stat().st_size / 1e6:>10.1f}")
    if len(laps) > 1:
        print(f"last 1000 rows / first 1000 rows: {laps[-1] / laps[0]:.2f} (about 1 when the cost per row is constant)")
    return laps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10, help="rows per append_rows call")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--baseline", type=int, default=0, metavar="ROWS",
                        help="also time the previous rewrite-the-file writer on this many rows")
    args = parser.parse_args()

    from seqbench.results import append_rows, load_results

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="results-writer-") as tmp:
        folder = Path(tmp)
        measure("append_rows", append_rows, args.rows, args.batch, folder)
        began = time.perf_counter()
        loaded = len(load_results(folder / "append_rows.jsonl"))
        print(f"load_results: {loaded} rows in {time.perf_counter() - began:.2f} s")
        if args.baseline:
            measure("rewrite_whole_file", rewrite_whole_file, args.baseline, args.batch, folder)


if __name__ == "__main__":
    main()
