"""What bounds a method's swap score: does its static code hold the attributes, can its decoder draw them?

For every method of a committed leaderboard this loads the model its rows name (from the cache) and
prints, per static attribute of the dataset:

* ``code``: a linear probe ``s -> label`` (:func:`seqbench.functional.probe_accuracy`, fit on training
  codes, scored on the evaluation's test clips) - is the attribute in the static code at all?
* ``recon``: the judge on the model's own reconstructions ``decode(encode(x))`` (the ``judge`` metric's
  ``recon`` protocol, same judge and clips as the leaderboard) - can the decoder draw it?
* ``swap``: the leaderboard's own swap accuracy (from the rows) - does a swapped code carry it?

A low ``recon`` with a high ``code`` is a rendering limit; a high ``recon`` with a low ``swap`` is a
disentanglement failure. ``--probe-clips`` also scores the judge swap (256 pairs) on the learning-curve
probe's validation clips, on the first 256 validation clips (the selection before 2026-12-03) and on
the test subset, which is how the probe's clip selection was found to matter (docs/protocol.md).

Example::

    python benchmarks/swap_bounds.py --rows leaderboards/results/synthetic-sprites --dataset synthetic-sprites \\
        --methods divid,diffsda,vidtwin,dbse --probe-clips
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def _codes(model: Any, split: Any):
    """The static codes ``[N, S]`` of ``split`` (the metrics' own encoder loop), flattened for a probe."""
    import torch

    from seqbench.metrics._common import encode_split

    static = encode_split(model, split, 128, torch.device("cpu")).static
    return static.reshape(len(static), -1).float().numpy()


def main() -> None:
    from _board import add_board_arguments, open_board

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_board_arguments(parser)
    parser.add_argument("--train-codes", type=int, default=2048, help="training clips the code probe fits on")
    parser.add_argument("--probe-clips", action="store_true", help="also compare the probe's clip selections")
    args = parser.parse_args()
    board = open_board(args)

    import numpy as np
    import torch

    from seqbench.data import carve_validation
    from seqbench.functional import probe_accuracy
    from seqbench.metric import EvalContext, EvalData, evaluation_subset

    spec, test, runner, adapter = board.spec, board.test, board.runner, board.adapter
    statics = [label.name for label in spec.static_labels]
    judge_metric = runner.plugins.metrics.get("judge")
    print(f"{args.dataset}: {len(test)} test clips; per static head: code (linear probe on s) / recon (judge on "
          f"decode(encode(x))) / swap (the rows)")
    for method, unit, note, model in board.cached_models():
        own = board.rows[board.rows["method"] == method]
        start = time.perf_counter()
        train, val = carve_validation(adapter.split("train"), unit.config.val_fraction, seed=0)
        fit = train.subset(np.random.default_rng(0).choice(len(train), min(args.train_codes, len(train)),
                                                           replace=False))
        train_codes, test_codes = _codes(model, fit), _codes(model, test)
        code = {h: probe_accuracy(train_codes, fit.labels[h], test_codes, test.labels[h]) for h in statics}
        ctx = EvalContext(device=torch.device("cpu"), seed=unit.seed, batch_size=64, profile=runner.options.profile,
                          registry=runner.plugins, model_dir=runner.model_dir(unit))
        recon = judge_metric(protocols="recon").evaluate(model, EvalData(spec, train, test), ctx)
        seed_rows = own[own["seed"] == unit.seed].set_index("key")["value"]
        print(f"\n{method} seed {unit.seed} ({unit.model_key}{'; ' + note if note else ''}; "
              f"{time.perf_counter() - start:.0f} s)")
        print(f"  {'head':10s} {'code':>6s} {'recon':>6s} {'swap':>6s}")
        for h in statics:
            swap = seed_rows.get(f"swap/acc_{h}", float("nan"))
            print(f"  {h:10s} {code[h]:6.3f} {recon[f'recon/acc_{h}'].value:6.3f} {float(swap):6.3f}")
        for group in ("static", "dynamic", "joint"):
            swap = seed_rows.get(f"swap/{group}", float("nan"))
            print(f"  {group:10s} {'':>6s} {recon[f'recon/{group}'].value:6.3f} {float(swap):6.3f}")
        if args.probe_clips:
            from seqbench.probes import PROBE_METRICS

            n = min(256, len(val))
            drawn = evaluation_subset(spec.fingerprint, len(val), n, purpose="probe-subset")
            selections = {"first validation clips": np.arange(n),
                          "probe's seeded draw": np.arange(len(val)) if drawn is None else drawn}
            swap_metric = judge_metric(**PROBE_METRICS["judge"])
            for name, items in selections.items():
                part = val.subset(items)
                out = swap_metric.evaluate(model, EvalData(spec, train, part), ctx)
                ids = "-" if part.identity is None else len(np.unique(part.identity))
                print(f"  swap on {name} ({len(part)} clips, {ids} identities): " + " / ".join(
                    f"{out[f'swap/{g}'].value:.3f}" for g in ("static", "dynamic", "joint")))
            out = swap_metric.evaluate(model, EvalData(spec, train, test), ctx)
            print("  swap on the test subset (256 pairs): " + " / ".join(
                f"{out[f'swap/{g}'].value:.3f}" for g in ("static", "dynamic", "joint")))


if __name__ == "__main__":
    main()
