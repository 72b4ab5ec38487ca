"""Which donor a swapped decode takes its facing direction from, per pair of donor directions.

The judge metric reports one number for a ``<type>-<direction>`` motion head
(``swap/<head>_direction_from_static``). This splits it by the two donors' directions: for every
(static donor's direction, dynamic donor's direction) cell it prints how many of the swap pairs
face the static donor's way, the dynamic donor's way, or neither. A method whose static code holds
only *part* of the direction (e.g. front-vs-side, while left-vs-right comes from the dynamic code)
shows it as cells that follow ``s`` next to cells that follow ``d``; the single number cannot.

It reads the model the rows name from the cache and the judge decodes the run stored beside it
(``<model dir>/decodes/``; decoded again when absent), on the judge metric's own pairs and judge.

Example::

    python benchmarks/direction_split.py --rows leaderboards/results/synthetic-sprites \\
        --dataset synthetic-sprites --data-option synthetic-sprites.size=32 --methods divid
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from _board import add_board_arguments, open_board

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_board_arguments(parser)
    board = open_board(parser.parse_args())

    import numpy as np
    import torch

    from seqbench.data import carve_validation
    from seqbench.functional import compound_label_parts
    from seqbench.judges import judge_config_for
    from seqbench.metric import EvalContext, EvalData
    from seqbench.metrics._common import encode_split

    spec, test, runner = board.spec, board.test, board.runner
    heads = [(label, compound_label_parts(label.class_names)) for label in spec.dynamic_labels]
    heads = [(label, parts) for label, parts in heads if parts is not None]
    if not heads:
        raise SystemExit(f"{spec.name} has no <type>-<direction> dynamic label to split")
    judge_metric = runner.plugins.metrics.get("judge")
    judge_module = __import__(judge_metric.__module__, fromlist=["_Decodes"])
    for method, unit, note, model in board.cached_models():
        start = time.perf_counter()
        train, _ = carve_validation(board.adapter.split("train"), unit.config.val_fraction, seed=0)
        data = EvalData(spec, train, test)
        ctx = EvalContext(device=torch.device("cpu"), seed=unit.seed, batch_size=64, profile=runner.options.profile,
                          registry=runner.plugins, model_dir=runner.model_dir(unit))
        metric = judge_metric()
        opts, overrides = metric._options()
        judge = ctx.judge(data, judge_config_for(spec, overrides, ctx.profile), opts["weights"])
        codes = encode_split(model, test, ctx.batch_size, ctx.device)
        pairs = ctx.pairs(spec, len(test), None if opts["n_pairs"] is None else int(opts["n_pairs"]))
        a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
        clips = judge_module._Decodes(model, data, ctx).get(
            "swap", pairs, lambda: (codes.static[a], codes.dynamic[b], ctx.generator(1)))
        probs = metric._judge_probs(judge, clips, data, ctx)
        print(f"\n{method} seed {unit.seed} ({unit.model_key}{'; ' + note if note else ''}; {len(pairs)} pairs, "
              f"judge {judge.name}; {time.perf_counter() - start:.0f} s)")
        for label, (_, direction) in heads:
            names = list(dict.fromkeys(name.split("-")[1] for name in label.class_names))
            truth = np.asarray(test.labels[label.name])
            pred = direction[probs[label.name].numpy().argmax(1)]
            ds, dd = direction[truth[pairs[:, 0]]], direction[truth[pairs[:, 1]]]
            print(f"  {label.name}: decodes facing the static donor's / the dynamic donor's / neither's way")
            print(f"  {'static donor':>14s} {'dynamic donor':>14s} {'pairs':>6s} {'static':>7s} {'dynamic':>8s} "
                  f"{'neither':>8s}")
            for i, si in enumerate(names):
                for j, dj in enumerate(names):
                    cell = (ds == i) & (dd == j)
                    if not cell.any():
                        continue
                    follow_s, follow_d = pred[cell] == i, pred[cell] == j
                    print(f"  {si:>14s} {dj:>14s} {int(cell.sum()):6d} {follow_s.mean():7.3f} {follow_d.mean():8.3f} "
                          f"{(~follow_s & ~follow_d).mean():8.3f}")
            differ = ds != dd
            print(f"  donors facing different ways ({int(differ.sum())} pairs): "
                  f"static {np.mean(pred[differ] == ds[differ]):.3f}"
                  f" / dynamic {np.mean(pred[differ] == dd[differ]):.3f}")


if __name__ == "__main__":
    main()
