"""How much judges trained by one recipe disagree on generated swaps, per recipe (issue: judges you can trust).

Retrained judges that all score >= 99.8% on real clips disagreed by up to 0.12 on a method's swap
accuracies (docs/findings.md): generated clips sit off the real-data manifold, where nothing pinned
the judges down. This script measures, for each judge *recipe* (``JudgeConfig`` overrides), the
disagreement of ``--judges`` independently seeded judges - the ``judge`` metric's
``judge.ensemble`` spread: max - min of swap/static, swap/dynamic and swap/joint across judges - on
the swaps of every given trained model, and each judge's accuracy on the real test clips.

Models are read from the cache (the newest ``models/<method>/*/model.pt`` trained on the dataset),
so run the methods first (``seqbench run --methods ... --profile quick``). Their swap decodes are
cached beside them on first use, so every judge after the first costs only its training and a
forward pass over the decodes. Example::

    python benchmarks/judge_recipes.py --data-option size=32 --methods divid,bcd,diffsda \\
        --recipes "baseline;augment=0.5;augment=0.5,label_smoothing=0.1" --markdown docs/judge-recipes.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

KEYS = ("swap/static", "swap/dynamic", "swap/joint")


def parse_recipes(text: str) -> dict[str, dict[str, str]]:
    """``"baseline;augment=0.5,label_smoothing=0.1"`` -> ``{"baseline": {}, "augment=0.5,...": {...}}``."""
    recipes = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        recipes[part] = {} if part == "baseline" else dict(kv.split("=", 1) for kv in part.split(","))
    return recipes


def newest_model(method: str, fingerprint: str) -> Path:
    from seqbench.runner import models_cache

    found = []
    for meta_path in (models_cache() / method).glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == fingerprint and (meta_path.parent / "model.pt").exists():
            found.append((meta_path.stat().st_mtime, meta_path.parent))
    if not found:
        sys.exit(f"no trained {method} model for this dataset in {models_cache() / method}; run "
                 f"`seqbench run --methods {method} --profile quick` (with the same --data-option) first")
    return max(found)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic-sprites")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--methods", default="divid,bcd,diffsda")
    parser.add_argument("--recipes", default="baseline;augment=0.5;augment=0.5,label_smoothing=0.1")
    parser.add_argument("--judges", type=int, default=3, help="judges per recipe (seeds 0..K-1)")
    parser.add_argument("--eval-clips", type=int, default=512)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()

    import torch

    from seqbench.config import MethodConfig
    from seqbench.data import carve_validation
    from seqbench.metric import EvalContext, EvalData, evaluation_subset
    from seqbench.plugins import load_plugins

    plugins = load_plugins()
    options = dict(kv.split("=", 1) for kv in args.data_option)
    adapter = plugins.datasets.get(args.dataset)(**options)
    spec = adapter.spec
    train, _ = carve_validation(adapter.split("train"), MethodConfig().val_fraction, seed=0)
    test = adapter.split("test")
    subset = evaluation_subset(spec.fingerprint, len(test), args.eval_clips)
    if subset is not None:
        test = test.subset(subset)
    models = {}
    for name in args.methods.split(","):
        folder = newest_model(name, spec.fingerprint)
        meta = json.loads((folder / "meta.json").read_text())
        cls = plugins.methods.get(name)
        config = cls.Config.for_profile("smoke").with_overrides(meta["config"])
        method = cls(config, spec)
        method.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        models[name] = (method.eval(), folder)

    rows = []
    for recipe, overrides in parse_recipes(args.recipes).items():
        metric_options = {"protocols": "swap", "weights": "train", "ensemble": args.judges,
                          **{f"judge_{k}": v for k, v in overrides.items()}}
        start = time.perf_counter()
        ctx_memo: dict = {}
        for name, (method, folder) in models.items():
            metric = plugins.metrics.get("judge")(**metric_options)
            ctx = EvalContext(device=torch.device("cpu"), batch_size=64, model_dir=folder, _memo=ctx_memo)
            with torch.no_grad():
                out = metric.evaluate(method, EvalData(spec, train, test), ctx)
            judges = [v for k, v in ctx_memo.items() if k.startswith("judge:")]
            real = min(min(j.ceiling[label.name] for label in spec.labels) for j in judges)
            spreads = {key: out[f"judge_spread/{key}"].value for key in KEYS}
            rows.append({"recipe": recipe, "method": name, **{k: round(out[k].value, 3) for k in KEYS},
                         **{f"spread {k.split('/')[1]}": round(v, 3) for k, v in spreads.items()},
                         "max spread": round(max(spreads.values()), 3), "min real acc": round(real, 4)})
            print(json.dumps(rows[-1]), flush=True)
        print(f"recipe {recipe}: {time.perf_counter() - start:.0f}s", flush=True)

    from tabulate import tabulate

    table = tabulate(rows, headers="keys", tablefmt="github")
    summary = {}
    for row in rows:
        summary[row["recipe"]] = max(summary.get(row["recipe"], 0.0), row["max spread"])
    text = (f"{table}\n\nLargest disagreement per recipe ({args.judges} judges, {len(models)} methods, "
            f"{len(test)} pairs): " + "; ".join(f"{k}: {v:.3f}" for k, v in summary.items()) + "\n")
    print(text)
    if args.markdown:
        args.markdown.write_text(f"Generated by `python {' '.join(sys.argv)}`\n\n{text}")


if __name__ == "__main__":
    main()
