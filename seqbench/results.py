"""Long-format results: one row per (run, dataset, method, seed, metric key), stored as JSONL.

Rows carry their provenance (versions, fingerprints, config hash, git sha, device, profile,
``--limit``) so that leaderboards can refuse to mix incomparable numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .errors import SeqbenchError
from .utils import atomic_write_text

RESULTS_FILE = "results.jsonl"

#: Columns every row has, in display order.
COLUMNS = (
    "run_id", "timestamp", "dataset", "method", "seed", "metric", "key", "value", "higher_is_better",
    "n", "ci_low", "ci_high", "status", "reason", "backend", "profile", "limit", "eval_clips", "metric_version",
    "method_version", "dataset_fingerprint", "config_hash", "model_key", "cell_key", "seqbench_version",
    "git_sha", "device", "duration_s", "method_distribution", "metric_distribution",
)

OK, ERROR, NOT_APPLICABLE = "ok", "error", "not_applicable"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows by rewriting the file atomically: a crash never leaves a truncated line."""
    path = Path(path)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    new = "".join(json.dumps({k: _clean(v) for k, v in row.items()}, sort_keys=False) + "\n" for row in rows)
    atomic_write_text(path, existing + new)


def read_rows(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SeqbenchError(f"{path}:{lineno}: not valid JSON ({exc.msg}); remove or repair that line") from None
    return rows


def results_files(source: Path) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        direct = source / RESULTS_FILE
        return [direct] if direct.exists() else sorted(source.rglob(RESULTS_FILE))
    raise SeqbenchError(f"no results at {source}: pass an output directory of `seqbench run` or a {RESULTS_FILE} file")


def load_results(source: str | Path) -> "pandas.DataFrame":  # noqa: F821
    """All result rows under ``source`` (an output directory or a results JSONL) as a DataFrame."""
    import pandas as pd

    rows = [row for path in results_files(Path(source)) for row in read_rows(path)]
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame[list(COLUMNS) + extra]
    frame["value"] = pd.to_numeric(frame["value"].replace({"inf": math.inf, "-inf": -math.inf}), errors="coerce")
    return frame
