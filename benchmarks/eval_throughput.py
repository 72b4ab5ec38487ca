"""Evaluation throughput of the pair-based metrics (judge swap protocol, aed and akd swap variants) on CPU.

Scores an untrained DBSE (quick profile; throughput does not depend on the weights) on the first
``--pairs`` test clips of synthetic-sprites, with the dataset's judge and learned backends loaded
from the cache (trained first if missing, outside the timing). Prints pairs per second per metric:
a pair is one swapped decode plus its judge pass (judge) or its backend measurements (aed, akd),
including the encode of both clips and the backend pass over the reference clips.

    python benchmarks/eval_throughput.py --size 64 --pairs 512 --batch-size 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="synthetic-sprites frame size (64 or 32)")
    parser.add_argument("--pairs", type=int, default=512, help="test clips (= pairs) to score")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--metrics", default="judge,aed,akd")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from seqbench.data import carve_validation
    from seqbench.metric import EvalContext, EvalData
    from seqbench.plugins import load_plugins

    plugins = load_plugins()
    adapter = plugins.datasets.get("synthetic-sprites")(size=args.size)
    spec = adapter.spec
    method_cls = plugins.methods.get("dbse")
    torch.manual_seed(0)
    method = method_cls(method_cls.Config.for_profile("quick", spec.family, spec.name), spec).eval()
    train, _ = carve_validation(adapter.split("train"), 0.1, seed=0)
    test = adapter.split("test")
    options = {"judge": {"protocols": "swap"}, "aed": {"variants": "swap"}, "akd": {"variants": "swap"}}
    print(f"synthetic-sprites {args.size}px, {spec.frames} frames, dbse quick (untrained), device cpu, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}")
    for name in [m.strip() for m in args.metrics.split(",") if m.strip()]:
        metric_cls = plugins.metrics.get(name)
        # warm-up on a few clips: loads (or trains and caches) the judge / backend outside the timing
        warm = EvalData(spec, train, test.subset(np.arange(8)))
        ctx = EvalContext(device=torch.device("cpu"), batch_size=args.batch_size, registry=plugins)
        with torch.no_grad():
            metric_cls(**options.get(name, {})).evaluate(method, warm, ctx)
        data = EvalData(spec, train, test.subset(np.arange(min(args.pairs, len(test)))))
        start = time.perf_counter()
        with torch.no_grad():
            values = metric_cls(**options.get(name, {})).evaluate(method, data, ctx)
        elapsed = time.perf_counter() - start
        n = len(data.test)
        backend = next((v.backend for v in values.values() if getattr(v, "backend", None)), "-")
        print(f"{name:6s} {n / elapsed:8.1f} pairs/s  ({n} pairs in {elapsed:.1f} s, backend {backend})")


if __name__ == "__main__":
    main()
