"""Loader throughput from the prepared caches versus the training consumption rate of the methods.

Loader: clips per second delivered exactly as the trainer asks for them - the seeded batch of
sorted random indices of ``seqbench.trainer.batch_indices`` read through ``SplitData.batch``
(memory-mapped uint8 rows, converted to float in the value range) - for synthetic-sprites, the
real Sprites (when prepared, or from ``--sprites-source``) and a fixture video dataset (a
UTD-MHAD-layout folder of avi files written with PyAV into a temporary folder, prepared through
the adapter, so its decode time is reported too).

Consumption: clips per second of the training step (forward, backward, optimiser step) of every
registered video method's ``smoke`` and ``quick`` profiles on synthetic-sprites 64 px, the rate
the loader has to keep up with. The loader must beat the fastest of them by at least 10x.

    python benchmarks/loader_throughput.py                       # all three datasets
    python benchmarks/loader_throughput.py --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def loader_rate(split, batch_size: int, seconds: float, seed: int = 0) -> dict[str, float]:
    """Clips/s of trainer-style batches from ``split`` (one warm-up pass over a few batches first)."""
    from seqbench.trainer import batch_indices

    n = len(split)
    for step in range(3):
        split.batch(batch_indices(n, batch_size, seed, step))
    clips, step, start = 0, 3, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = split.batch(batch_indices(n, batch_size, seed, step))
        clips += len(batch.x)
        step += 1
    elapsed = time.perf_counter() - start
    return {"clips_per_s": clips / elapsed, "batches": step - 3, "batch_size": min(batch_size, n),
            "bytes_per_clip": int(np.prod(split.x.shape[1:]) * split.x.dtype.itemsize)}


def consumption_rates(plugins, spec, split, steps: int, profiles: list[str]) -> list[dict]:
    """Training clips/s of every video method and profile (steps after one warm-up step)."""
    from seqbench.trainer import batch_indices, build_optimizer

    out = []
    for name in plugins.methods.names():
        cls = plugins.methods.get(name)
        if cls.supports(spec):
            continue
        for profile in profiles:
            config = cls.Config.for_profile(profile, spec.family, spec.name)
            torch.manual_seed(0)
            method = cls(config, spec)
            method.total_steps = max(1, int(config.steps))
            optimizer = build_optimizer(config, [p for p in method.parameters() if p.requires_grad])
            batches = [split.batch(batch_indices(len(split), config.batch_size, 0, s)) for s in range(steps + 1)]
            start = 0.0
            for i, batch in enumerate(batches):
                if i == 1:
                    start = time.perf_counter()
                method.global_step = i
                loss = method.training_step(batch)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            elapsed = time.perf_counter() - start
            out.append({"method": name, "profile": profile, "batch_size": config.batch_size,
                        "clips_per_s": steps * config.batch_size / elapsed, "seconds_per_step": elapsed / steps})
    return out


def fixture_video_dataset(folder: Path, videos: int, frames: int) -> Path:
    """A UTD-MHAD-layout source: ``videos`` avi files of 160x120, ``frames`` frames each."""
    from seqbench.media import write_video

    rng = np.random.default_rng(0)
    source = folder / "UTD-MHAD"
    for i in range(videos):
        action, subject = i % 27 + 1, i // 27 % 8 + 1
        clip = np.zeros((frames, 120, 160, 3), np.uint8)
        clip[...] = rng.integers(0, 256, 3, dtype=np.uint8)
        for t in range(frames):
            clip[t, 40:80, (4 * t) % 120:(4 * t) % 120 + 40] = 255
        write_video(source / "RGB" / f"a{action}_s{subject}_t{i // 216 + 1}_color.avi", clip)
    return source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="synthetic-sprites,sprites,fixture-video")
    parser.add_argument("--batch-size", type=int, default=128, help="loader batch size (the paper profiles use 128)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per dataset")
    parser.add_argument("--sprites-source", type=Path, help="prepare sprites from this folder first if needed")
    parser.add_argument("--fixture-videos", type=int, default=96)
    parser.add_argument("--consumers", default="smoke,quick", help="method profiles to time ('' to skip)")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from seqbench.errors import SeqbenchError
    from seqbench.plugins import load_plugins

    plugins = load_plugins()
    results: dict = {"loader": [], "consumers": [], "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    with tempfile.TemporaryDirectory(prefix="seqbench-loader-") as tmp:
        for name in wanted:
            try:
                if name == "fixture-video":
                    start = time.perf_counter()
                    source = fixture_video_dataset(Path(tmp), args.fixture_videos, 40)
                    written = time.perf_counter() - start
                    adapter = plugins.datasets.get("utd-mhad")(root=Path(tmp) / "prepared")
                    start = time.perf_counter()
                    adapter.prepare(source)
                    prepare_s = time.perf_counter() - start
                    extra = {"fixture": f"{args.fixture_videos} avi 160x120x40 frames (written in {written:.1f} s)",
                             "prepare_s": round(prepare_s, 2),
                             "decode_videos_per_s": round(args.fixture_videos / prepare_s, 1)}
                else:
                    adapter = plugins.datasets.get(name)()
                    if name == "sprites" and args.sprites_source is not None:
                        from seqbench.media import folder_complete

                        if not folder_complete(adapter.prepared_dir):
                            adapter.prepare(args.sprites_source)
                    extra = {}
                split = adapter.split("train")
                rate = loader_rate(split, args.batch_size, args.seconds)
                results["loader"].append({"dataset": name if name != "fixture-video" else "fixture-video (utd-mhad)",
                                          "shape": list(split.x.shape[1:]), **rate, **extra})
            except SeqbenchError as exc:
                print(f"{name}: skipped ({exc})", file=sys.stderr)
        profiles = [p.strip() for p in args.consumers.split(",") if p.strip()]
        if profiles:
            adapter = plugins.datasets.get("synthetic-sprites")()
            results["consumers"] = consumption_rates(plugins, adapter.spec, adapter.split("train"),
                                                     args.train_steps, profiles)

    print(f"torch threads: {results['threads']}, cpus: {results['cpus']}")
    print(f"{'dataset':28s} {'clip shape':18s} {'clips/s':>10s} {'MB/s':>8s}  notes")
    for row in results["loader"]:
        mb = row["clips_per_s"] * row["bytes_per_clip"] / 1e6
        notes = f"prepare {row['prepare_s']} s ({row['decode_videos_per_s']} videos/s)" if "prepare_s" in row else ""
        print(f"{row['dataset']:28s} {str(tuple(row['shape'])):18s} {row['clips_per_s']:10.0f} {mb:8.0f}  {notes}")
    if results["consumers"]:
        print(f"\n{'method/profile':28s} {'batch':>6s} {'clips/s':>10s} {'s/step':>8s}")
        for row in results["consumers"]:
            print(f"{row['method'] + '/' + row['profile']:28s} {row['batch_size']:6d} {row['clips_per_s']:10.1f} "
                  f"{row['seconds_per_step']:8.3f}")
        fastest = max(results["consumers"], key=lambda r: r["clips_per_s"])
        slowest_loader = min(results["loader"], key=lambda r: r["clips_per_s"]) if results["loader"] else None
        if slowest_loader:
            ratio = slowest_loader["clips_per_s"] / fastest["clips_per_s"]
            results["ratio"] = ratio
            verdict = "OK" if ratio >= 10 else "TOO SLOW"
            print(f"\nslowest loader {slowest_loader['dataset']} / fastest consumer {fastest['method']}/"
                  f"{fastest['profile']}: {ratio:.0f}x ({verdict}: must be >= 10x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if "ratio" not in results or results["ratio"] >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
