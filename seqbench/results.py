"""Long-format results: one row per (run, dataset, method, seed, metric key), stored as JSONL.

Rows carry their provenance (versions, fingerprints, config hash, git sha, device, profile,
``--limit``) so that leaderboards can refuse to mix incomparable numbers.

The file is an append-only log: :func:`append_rows` adds one line per row and fsyncs, so its cost
does not grow with the file. A process killed mid-write can leave at most a torn last line;
:func:`read_rows` skips it with a warning and the next :func:`append_rows` removes it first.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from .errors import SeqbenchError

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
#: Figures a method's own paper reports, kept beside measured results as clearly marked reference rows:
#: status ``reported``, the citation in ``source``, the paper's wording of the protocol in ``protocol``.
#: Leaderboards show them in their own section and never rank or mix them with measured rows.
REPORTED_FILE = "paper-reported.jsonl"
REPORTED_COLUMNS = ("dataset", "method", "key", "value", "higher_is_better", "source", "protocol")

#: Columns every row has, in display order.
COLUMNS = (
    "run_id", "timestamp", "dataset", "method", "seed", "metric", "key", "value", "higher_is_better",
    "n", "ci_low", "ci_high", "status", "reason", "backend", "profile", "limit", "eval_clips", "metric_version",
    "method_version", "dataset_fingerprint", "config_hash", "model_key", "cell_key", "seqbench_version",
    "git_sha", "device", "duration_s", "method_distribution", "metric_distribution",
)

OK, ERROR, NOT_APPLICABLE, REPORTED = "ok", "error", "not_applicable", "reported"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append one JSON line per row, then fsync: O(1) per row, and a crash tears at most the last line.

    A torn last line that a killed writer left behind is removed first (with a warning), so the
    new rows always start on a fresh line; a complete last row that only lacks its newline is kept.
    An exclusive lock keeps two processes appending to one file from interleaving that repair.
    """
    path = Path(path)
    data = "".join(json.dumps({k: _clean(v) for k, v in row.items()}, sort_keys=False) + "\n"
                   for row in rows).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _lock(fd)
        _end_on_a_fresh_line(fd, path)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if created:  # make the new file's name durable too
        _fsync_directory(path.parent)


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: appends of one write each still do not interleave
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _end_on_a_fresh_line(fd: int, path: Path) -> None:
    """Make the file end with a newline: keep a last row that lacks only it, drop a torn one."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = _last_line_start(fd, size)
    tail = os.pread(fd, size - start, start)
    try:
        json.loads(tail)
    except ValueError:
        log.warning("%s: removing a torn last line (%d bytes) left by an interrupted write", path, len(tail))
        os.ftruncate(fd, start)
    else:
        os.write(fd, b"\n")


def _last_line_start(fd: int, size: int, chunk: int = 1 << 16) -> int:
    """Offset just after the last newline before ``size`` (0 when the file has a single line)."""
    end = size
    while end > 0:
        begin = max(0, end - chunk)
        found = os.pread(fd, end - begin, begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one results file; a torn last line (an interrupted write) is skipped with a warning."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if lineno == len(lines) and not text.endswith("\n"):
                log.warning("%s:%d: skipping a torn last line left by an interrupted write (the next append "
                            "removes it)", path, lineno)
                continue
            raise SeqbenchError(f"{path}:{lineno}: not valid JSON ({exc.msg}); remove or repair that line") from None
    return rows


def results_files(source: Path) -> list[Path]:
    """The results files under ``source``: its own ``results.jsonl``, else every one below it, and
    every ``paper-reported.jsonl`` below it (reference rows, see :data:`REPORTED_FILE`)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        direct = source / RESULTS_FILE
        measured = [direct] if direct.exists() else sorted(source.rglob(RESULTS_FILE))
        return measured + sorted(source.rglob(REPORTED_FILE))
    raise SeqbenchError(f"no results at {source}: pass an output directory of `seqbench run` or a {RESULTS_FILE} file")


def read_reported(path: Path) -> list[dict[str, Any]]:
    """The reference rows of a ``paper-reported.jsonl``, checked: each names its dataset, method, key,
    value, direction, ``source`` (the citation: paper, table) and ``protocol``, and gets status ``reported``."""
    rows = read_rows(path)
    for lineno, row in enumerate(rows, 1):
        missing = [c for c in REPORTED_COLUMNS if row.get(c) in (None, "")]
        if missing:
            raise SeqbenchError(f"{path}: row {lineno} lacks {', '.join(missing)}; every paper-reported row names "
                                f"{', '.join(REPORTED_COLUMNS)} (source = the citation, e.g. 'Bai et al., NeurIPS "
                                f"2021, Table 1')")
        if not isinstance(row["value"], (int, float)) or isinstance(row["value"], bool):
            raise SeqbenchError(f"{path}: row {lineno} ({row['method']} {row['key']}): value {row['value']!r} is not "
                                f"a number; write the figure as the paper prints it, as a number")
        row["status"] = REPORTED
    return rows


def load_results(source: str | Path) -> "pandas.DataFrame":  # noqa: F821
    """All result rows under ``source`` (an output directory or a results JSONL) as a DataFrame."""
    import pandas as pd

    rows = [row for path in results_files(Path(source))
            for row in (read_reported(path) if path.name == REPORTED_FILE else read_rows(path))]
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame[list(COLUMNS) + extra]
    frame["value"] = pd.to_numeric(frame["value"].replace({"inf": math.inf, "-inf": -math.inf}), errors="coerce")
    return frame
