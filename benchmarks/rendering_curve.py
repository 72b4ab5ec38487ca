"""Does a decoder's rendering still improve with training? Continue a committed model and watch ``recon``.

Loads the model a leaderboard's rows name (the lowest seed of ``--method``), continues training it
for ``--steps`` more steps through the framework's :class:`~seqbench.trainer.Trainer` (a fresh
schedule of the method's own optimiser settings: warm-up, then its decay over the new steps), and at
every ``--every`` steps scores, on a fixed draw of validation clips, the judge on the model's own
reconstructions (``judge`` ``recon`` protocol: can the decoder draw each attribute from the clip's own
codes?) and the reconstruction MSE. A ``recon`` curve still rising says the rendering was stopped by
the budget; a flat one says it sits on a plateau of this design.

The continued weights are written under ``--workdir`` only (never into the model cache).

Example (DiViD's committed synthetic-sprites model, +1500 steps, one thread)::

    OMP_NUM_THREADS=1 python benchmarks/rendering_curve.py --rows leaderboards/results/synthetic-sprites \\
        --dataset synthetic-sprites --method divid --steps 1500 --every 250 --workdir /tmp/divid-continued
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-option", action="append", default=[])
    parser.add_argument("--method", required=True)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--clips", type=int, default=128, help="validation clips the recon probe decodes")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="write the curve here as JSON")
    args = parser.parse_args()

    import numpy as np
    import torch

    from seqbench.config import parse_scoped_values
    from seqbench.data import carve_validation
    from seqbench.leaderboard import results_frame, select_rows
    from seqbench.metric import EvalContext, EvalData, evaluation_subset
    from seqbench.results import load_results
    from seqbench.runner import RunOptions, Runner
    from seqbench.trainer import Trainer

    rows = select_rows(results_frame(load_results(args.rows)), args.dataset, None)
    runner = Runner(RunOptions(methods=[], datasets=[args.dataset], profile=str(rows["profile"].iloc[0]),
                               progress=False,
                               dataset_options=parse_scoped_values(args.data_option, flag="--data-option")))
    unit, note = runner.unit_for_rows(args.dataset, args.method, rows[rows["method"] == args.method])
    method = runner.load_cached_model(unit, torch.device("cpu"))
    if method is None:
        raise SystemExit(f"model {unit.model_key} of {args.method} is not in this cache: run the rows' command first")
    print(f"{unit.label}: continuing model {unit.model_key}{' (' + note + ')' if note else ''} for {args.steps} steps")
    adapter = runner.adapter(args.dataset)
    train, val = carve_validation(adapter.split("train"), unit.config.val_fraction, seed=0)
    items = evaluation_subset(unit.spec.fingerprint, len(val), args.clips, purpose="probe-subset")
    probe_val = val if items is None else val.subset(items)
    judge = runner.plugins.metrics.get("judge")(protocols="recon")
    mse = runner.plugins.metrics.get("mse")()
    ctx = EvalContext(device=torch.device("cpu"), seed=unit.seed, batch_size=64, profile=runner.options.profile,
                      registry=runner.plugins)
    data = EvalData(unit.spec, train, probe_val)
    start = time.perf_counter()

    calls = []

    def probe(model) -> dict[str, float]:
        calls.append(1)
        with torch.no_grad():
            out = {k: float(v.value) for k, v in judge.evaluate(model, data, ctx).items()
                   if k.startswith("recon/")}
            out["mse"] = float(mse.evaluate(model, data, ctx)["mse"].value)
        print(f"  step {done + (len(calls) - 1) * args.every}: recon/static {out['recon/static']:.3f} "
              + " ".join(f"{k[len('recon/acc_'):]} {v:.3f}" for k, v in out.items() if k.startswith("recon/acc_"))
              + f", mse {out['mse']:.5f} ({time.perf_counter() - start:.0f} s)", flush=True)
        return out

    done = int((runner.models.stored(unit).read_meta() or {}).get("steps", 0))  # the committed model's steps
    method.global_step = 0
    method.config = dataclasses.replace(method.config, steps=args.steps, val_every=args.every,
                                        checkpoint_every=args.every)
    method.train()
    trainer = Trainer(method, train, val, device=torch.device("cpu"), seed=unit.seed + 1000, workdir=args.workdir,
                      progress=False, probe=probe)
    result = trainer.fit()
    curve = [{"step": done + e["step"], **{k[len("curve/"):]: v for k, v in e.items() if k.startswith("curve/")}}
             for e in result.history if any(k.startswith("curve/recon") for k in e)]
    if args.out:
        args.out.write_text(json.dumps({"model_key": unit.model_key, "method": args.method, "dataset": args.dataset,
                                        "continued_steps": args.steps, "curve": curve}, indent=1))
    print(f"done in {time.perf_counter() - start:.0f} s; selected {result.selected} weights at step {result.best_step}")


if __name__ == "__main__":
    main()
