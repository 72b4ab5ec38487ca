"""What the benchmarks that inspect a committed leaderboard's models share: the rows, a runner that
builds the units those rows name, the evaluated test clips, and the cached models.

Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rows``, ``--dataset``, ``--data-option``, ``--set`` and ``--methods``."""
    parser.add_argument("--rows", required=True, help="a leaderboard's rows: leaderboards/results/<dataset>")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-option", action="append", default=[], help="e.g. sprites.size=32")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="the method settings the rows' run was given (e.g. divid.static_encoder=pooled)")
    parser.add_argument("--methods", default="", help="comma-separated; default: every method of the rows")


@dataclass
class Board:
    rows: Any  # the leaderboard's rows (pandas DataFrame) for the dataset
    runner: Any
    adapter: Any
    test: Any  # the evaluated test clips (the profile's fixed subset)
    methods: list[str]

    @property
    def spec(self):
        return self.adapter.spec

    def cached_models(self) -> Iterator[tuple[str, Any, str | None, Any]]:
        """``(method, unit, note, model)`` for each method whose rows' model is in this cache; the others
        are printed as skipped."""
        import torch

        for method in self.methods:
            own = self.rows[self.rows["method"] == method]
            try:
                unit, note = self.runner.unit_for_rows(self.adapter.spec.name, method, own)
            except LookupError as exc:
                print(f"{method}: skipped: {exc}")
                continue
            model = self.runner.load_cached_model(unit, torch.device("cpu"))
            if model is None:
                print(f"{method}: skipped: model {unit.model_key} is not in this cache")
                continue
            yield method, unit, note, model


def open_board(args: argparse.Namespace) -> Board:
    """The board that :func:`add_board_arguments`' arguments name."""
    import torch

    from seqbench.config import parse_scoped_values, parse_set_options
    from seqbench.leaderboard import results_frame, select_rows
    from seqbench.metric import evaluation_subset
    from seqbench.results import load_results
    from seqbench.runner import RunOptions, Runner

    torch.set_grad_enabled(False)
    rows = select_rows(results_frame(load_results(args.rows)), args.dataset, None)
    runner = Runner(RunOptions(methods=[], datasets=[args.dataset], profile=str(rows["profile"].iloc[0]),
                               progress=False,
                               dataset_options=parse_scoped_values(args.data_option, flag="--data-option"),
                               overrides=parse_set_options(args.set)))
    adapter = runner.adapter(args.dataset)
    test = adapter.split("test")
    subset = evaluation_subset(adapter.spec.fingerprint, len(test), runner.eval_clips)
    test = test if subset is None else test.subset(subset)
    methods = [m for m in args.methods.split(",") if m] or sorted(rows["method"].unique())
    return Board(rows, runner, adapter, test, methods)
