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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help="a leaderboard's rows: leaderboards/results/<dataset>")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-option", action="append", default=[], help="e.g. sprites.size=32")
    parser.add_argument("--methods", default="", help="comma-separated; default: every method of the rows")
    args = parser.parse_args()

    import numpy as np
    import torch

    from seqbench.config import parse_scoped_values
    from seqbench.data import carve_validation
    from seqbench.functional import compound_label_parts
    from seqbench.judges import judge_config_for
    from seqbench.leaderboard import results_frame, select_rows
    from seqbench.metric import EvalContext, EvalData, evaluation_subset
    from seqbench.results import load_results
    from seqbench.runner import RunOptions, Runner

    torch.set_grad_enabled(False)
    rows = select_rows(results_frame(load_results(args.rows)), args.dataset, None)
    options = parse_scoped_values(args.data_option, flag="--data-option")
    wanted = [m for m in args.methods.split(",") if m] or sorted(rows["method"].unique())
    runner = Runner(RunOptions(methods=[], datasets=[args.dataset], profile=str(rows["profile"].iloc[0]),
                               progress=False, dataset_options=options))
    adapter = runner.adapter(args.dataset)
    spec = adapter.spec
    test = adapter.split("test")
    subset = evaluation_subset(spec.fingerprint, len(test), runner.eval_clips)
    test = test if subset is None else test.subset(subset)
    heads = [(label, compound_label_parts(label.class_names)) for label in spec.dynamic_labels]
    heads = [(label, parts) for label, parts in heads if parts is not None]
    if not heads:
        raise SystemExit(f"{args.dataset} has no <type>-<direction> dynamic label to split")
    judge_metric = runner.plugins.metrics.get("judge")
    judge_module = __import__(judge_metric.__module__, fromlist=["_Decodes"])
    for method in wanted:
        own = rows[rows["method"] == method]
        try:
            unit, note = runner.unit_for_rows(args.dataset, method, own)
        except LookupError as exc:
            print(f"{method}: skipped: {exc}")
            continue
        model = runner.load_cached_model(unit, torch.device("cpu"))
        if model is None:
            print(f"{method}: skipped: model {unit.model_key} is not in this cache")
            continue
        start = time.perf_counter()
        train, _ = carve_validation(adapter.split("train"), unit.config.val_fraction, seed=0)
        data = EvalData(spec, train, test)
        ctx = EvalContext(device=torch.device("cpu"), seed=unit.seed, batch_size=64, profile=runner.options.profile,
                          registry=runner.plugins, model_dir=runner.model_dir(unit))
        metric = judge_metric()
        opts, overrides = metric._options()
        judge = ctx.judge(data, judge_config_for(spec, overrides, ctx.profile), opts["weights"])
        from seqbench.metrics._common import encode_split

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
            print(f"  donors facing different ways ({int(differ.sum())} pairs): static {np.mean(pred[differ] == ds[differ]):.3f}"
                  f" / dynamic {np.mean(pred[differ] == dd[differ]):.3f}")


if __name__ == "__main__":
    main()
