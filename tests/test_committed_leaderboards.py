"""The committed leaderboards agree with the committed result rows they cite.

``leaderboards/results/<dataset>/<run_id>/results.jsonl`` holds the rows a committed leaderboard was
made from (from 2026-12 on). Where a row of the leaderboard came from such a run, every one of its
cells must be what the leaderboard code renders from those rows, so a hand edit cannot drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqbench.leaderboard import format_value
from seqbench.results import load_results

ROOT = Path(__file__).resolve().parents[1] / "leaderboards"


def _summary_table(board: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header names and method -> cells of the first (headline) table of a leaderboard."""
    lines = board.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("| method"))
    split = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    heads = split(lines[start])
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = split(line)
        rows[re.sub(r" \(.*", "", cells[0])] = cells
    return heads, rows


def _column_key(head: str) -> tuple[str, str | None]:
    """``"leak/d_to_s [probe-logreg] ↓"`` -> ``("leak/d_to_s", "probe-logreg")``."""
    match = re.fullmatch(r"(\S+)(?: \[(.+)\])? [↑↓]", head)
    assert match, head
    return match.group(1), match.group(2)


@pytest.mark.parametrize("dataset", sorted(p.name for p in (ROOT / "results").iterdir()) if (ROOT / "results").exists()
                         else [])
def test_rows_from_committed_runs_match_their_results(dataset):
    frame = load_results(ROOT / "results" / dataset)
    board = (ROOT / f"{dataset}.md").read_text()
    heads, table = _summary_table(board)
    checked = 0
    for run_id in frame["run_id"].unique():
        if run_id not in board:
            continue  # a run whose rows the leaderboard does not cite
        run = frame[frame["run_id"] == run_id]
        cited = re.search(rf"The (\w+) row [^.]*{re.escape(run_id)}", board)
        methods = [cited.group(1)] if cited else sorted(run["method"].unique())
        for method in methods:
            cells = table[method]
            for head, cell in zip(heads[1:], cells[1:]):
                key, backend = _column_key(head)
                rows = run[(run["method"] == method) & (run["key"] == key) & (run["status"] == "ok")]
                if backend:
                    rows = rows[rows["backend"] == backend]
                text = cell.replace("**", "")
                if rows.empty or (cited and "judge cells are empty" in board and key.startswith(("swap/", "sample/"))):
                    assert text == "-", f"{dataset} {method} {head}: {cell!r} but the run has no such row"
                    continue
                assert text == format_value(float(rows["value"].mean())), f"{dataset} {method} {head}: {cell!r}"
                checked += 1
    assert checked > 0, f"leaderboards/{dataset}.md cites none of the committed runs"
