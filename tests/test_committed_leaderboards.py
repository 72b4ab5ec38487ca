"""Every committed leaderboard is exactly what its committed result rows render.

``leaderboards/results/<dataset>/<run_id>/results.jsonl`` holds the rows a committed leaderboard was
made from; ``seqbench leaderboard --from leaderboards/results/<dataset> --dataset <dataset> --figures
leaderboards/figures --curves leaderboards/curves --grids leaderboards/grids -o leaderboards/`` regenerates the board byte for byte, so a hand edit cannot
drift and rows of an older protocol cannot hide in it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.results import load_results

ROOT = Path(__file__).resolve().parents[1] / "leaderboards"


BOARDS = sorted(p.stem for p in ROOT.glob("*.md"))


@pytest.mark.parametrize("dataset", BOARDS)
def test_every_committed_board_is_exactly_what_its_committed_rows_render(dataset):
    """``seqbench leaderboard --from leaderboards/results/<dataset> --figures leaderboards/figures -o
    leaderboards/`` reproduces the committed board byte for byte: nothing in it is hand-made, and no
    row from an older protocol hides in it."""
    from seqbench.leaderboard import results_frame, figure_links, headline_keys, render_dataset
    from seqbench.plugins import load_plugins

    results = ROOT / "results" / dataset
    assert results.is_dir(), f"leaderboards/{dataset}.md has no committed rows under {results}"
    frame = load_results(results)
    text = render_dataset(results_frame(frame), dataset, metric_order=list(dict.fromkeys(frame["metric"].dropna())),
                          headlines=headline_keys(load_plugins()),
                          figures=figure_links(dataset, ROOT / "figures", ROOT))
    assert text == (ROOT / f"{dataset}.md").read_text()
