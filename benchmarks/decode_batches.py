"""Decode speed per clip against the decode batch size, for the cached models of a committed board.

Why: evaluation decodes thousands of clips (the judge alone 4096 per model: swap, recon and 2 x 3
prior samples), and a diffusion decoder's activations for a large batch overflow the CPU's
last-level cache. This measures ms per clip of ``decode(encode(x))`` on the board's first ``--clips``
test clips at each batch size, and checks that the decodes are *identical* to those of the first
size (noise is drawn batch after batch from one generator), so the batch size is a speed setting
only (:attr:`seqbench.metric.EvalContext.decode_frames`). Run it on a quiet machine::

    OMP_NUM_THREADS=2 python benchmarks/decode_batches.py --rows leaderboards/results/sprites \\
        --dataset sprites --data-option sprites.size=32 --methods bcd,diffsda,divid,dbse
"""

from __future__ import annotations

import argparse
import time

from _board import add_board_arguments, open_board


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_board_arguments(parser)
    parser.add_argument("--clips", type=int, default=64, help="test clips decoded per setting")
    parser.add_argument("--batches", default="64,32,16,8",
                        help="decode batch sizes in clips; the first is the reference")
    parser.add_argument("--repeats", type=int, default=2, help="timings per setting; the best is printed")
    args = parser.parse_args()

    import numpy as np
    import torch

    from seqbench.types import Factors

    sizes = [int(v) for v in args.batches.split(",") if v.strip()]
    board = open_board(args)
    frames = board.spec.frames
    print(f"{board.spec.name}, {frames} frames, {args.clips} clips, {torch.get_num_threads()} threads; "
          f"ms per clip (frames per batch), identical to batch {sizes[0]}?")
    for method, _unit, _note, model in board.cached_models():
        x = board.test.clips(np.arange(min(args.clips, len(board.test))))
        codes = model.encode(x)
        n = len(x)

        def decode(batch: int) -> torch.Tensor:
            generator = torch.Generator().manual_seed(0)
            return torch.cat([model.decode(Factors(codes.static[s:s + batch], codes.dynamic[s:s + batch]),
                                           generator=generator) for s in range(0, n, batch)])

        reference = decode(sizes[0])
        cells = []
        for batch in sizes:
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                y = decode(batch)
                best = min(best, time.perf_counter() - start)
            same = bool(torch.equal(y, reference))
            cells.append(f"{batch}: {1000 * best / n:.1f} ({batch * frames}) {'same' if same else 'DIFFERENT'}")
        print(f"{method:10s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
