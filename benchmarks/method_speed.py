"""Training and decoding cost of the methods, per method and profile.

For every (method, profile) it builds the method on a synthetic-sprites-shaped spec (no data is
read: speed does not depend on pixel values or weights) and measures

* training steps and samples (clips) per second (the framework's optimizer, batch size of the
  profile, after warm-up; the fastest of ``--steps`` steps, the least disturbed by other load on a
  shared machine; timed at the last steps of the profile's schedule so terms a method switches on
  after a warm-up are paid for),
* decode time per clip (``decode(encode(x))``, best of two) and the network evaluations per decoded
  frame (NFE), plus, for DiffSDA, the ODE-inversion reconstruction (``reconstruct``) per clip,
* peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on CPU (each
  cell runs in a fresh subprocess so the peaks do not mix).

CPU by default; ``--device cuda`` when one is available.

``--quality MODEL_DIR`` instead scores a *trained* model from the runner's cache
(``$SEQBENCH_CACHE/models/<method>/<key>``, config read from its ``meta.json``) on the first
``--clips`` test clips of its dataset, once per decoder setting in ``--sweep`` (``ddim:N`` for DDIM
with N steps, ``ddpm`` for the full ancestral chain, ``heun:N`` for DiffSDA's Heun sampler with N
steps, ``recon`` for DiffSDA's ODE-inversion reconstruction): reconstruction MSE / PSNR of
``decode(encode(x))`` against ``x``, seconds per clip and NFE - the quality/speed trade-off.

Examples::

    python benchmarks/method_speed.py                                  # every method; smoke+quick; CPU
    python benchmarks/method_speed.py --methods dbse,spyl,cdsvae --profiles quick,paper --modality audio
    python benchmarks/method_speed.py --device cuda --profiles smoke,quick,paper
    python benchmarks/method_speed.py --methods divid --set divid.sampler_steps=50 --size 32
    python benchmarks/method_speed.py --quality $SEQBENCH_CACHE/models/divid/<key> --sweep ddim:5,ddim:10,ddim:50,ddpm
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def best_of(repeats: int, fn, sync) -> float:
    """Fastest of ``repeats`` timed calls (the least disturbed by other load on a shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_spec(modality: str, size: int, frames: int):
    """The data shape the benchmark feeds: synthetic-sprites (video) or synthetic-speech (audio: 201 bins)."""
    from seqbench.types import DataSpec

    if modality == "audio":
        return DataSpec("synthetic-speech", "audio", frames, 201, 1, 1, family="speech", fingerprint="bench")
    return DataSpec("synthetic-sprites", "video", frames, 3, size, size, family="sprites", fingerprint="bench")


def measure(method_name: str, profile: str, device_name: str, size: int, frames: int, steps: int,
            decode_clips: int, threads: int | None, overrides: dict[str, str], repeats: int = 2,
            modality: str = "video") -> dict:
    import torch

    from seqbench.config import parse_set_options
    from seqbench.method import Batch, Method
    from seqbench.plugins import load_plugins
    from seqbench.runner import resolve_config
    from seqbench.trainer import build_optimizer

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    plugins = load_plugins()
    cls = plugins.methods.get(method_name)
    spec = bench_spec(modality, size, frames)
    config = resolve_config(cls, profile, spec, parse_set_options(
        [f"{k}={v}" for k, v in overrides.items() if k.split(".")[0] == method_name]))
    torch.manual_seed(0)
    method = cls(config, spec).to(device)
    params = sum(p.numel() for p in method.parameters())
    optimizer = build_optimizer(config, [p for p in method.parameters() if p.requires_grad])
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(config.batch_size, frames, spec.channels, spec.height, spec.width, generator=gen).to(device)
    batch = Batch(x, {}, torch.arange(config.batch_size))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    method.train()
    times = []
    for i in range(steps + 1):  # the first step is warm-up
        # Time the end of the schedule, where every scheduled term is on (SPYL's contrastive terms
        # are skipped before its warm-up, which made step 0 ~7x cheaper than a real step).
        method.global_step = method.total_steps
        sync()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(config.amp) and device.type == "cuda"):
            loss = method.training_step(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if i:
            times.append(time.perf_counter() - start)
    method.eval()
    clips = x[:decode_clips]
    with torch.no_grad():
        method.decode(method.encode(clips[:1]), generator=torch.Generator().manual_seed(0))  # warm-up
        decode_s = best_of(repeats, lambda: method.decode(method.encode(clips), generator=torch.Generator()),
                           sync) / len(clips)
        recon_s = None
        if type(method).reconstruct is not Method.reconstruct:  # a method-specific reconstruction path
            recon_s = best_of(repeats, lambda: method.reconstruct(clips, generator=torch.Generator()), sync) / len(clips)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method_name, "profile": profile, "device": device_name, "size": size, "frames": frames,
            "modality": modality, "params_M": params / 1e6, "batch": config.batch_size,
            "steps_per_s": 1.0 / min(times), "samples_per_s": config.batch_size / min(times),
            "decode_s_per_clip": decode_s, "nfe": int(getattr(method, "nfe", 1)),
            "reconstruct_s_per_clip": recon_s, "peak_mem_MB": peak_mb, "threads": torch.get_num_threads()}


def quality(model_dir: str, sweep: list[str], clips: int, device_name: str, threads: int | None,
            data_options: dict[str, str]) -> list[dict]:
    """Reconstruction quality and decode time of a trained model under several decoder settings."""
    import dataclasses
    from pathlib import Path

    import numpy as np
    import torch

    from seqbench.functional import mse as mse_fn
    from seqbench.functional import psnr as psnr_fn
    from seqbench.nn import heun_nfe
    from seqbench.plugins import load_plugins

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    meta = json.loads((Path(model_dir) / "meta.json").read_text())
    plugins = load_plugins()
    cls = plugins.methods.get(meta["method"])
    adapter = plugins.datasets.get(meta["dataset"])(**data_options)
    spec = adapter.spec
    if spec.fingerprint != meta["fingerprint"]:
        raise SystemExit(f"{model_dir} was trained on {meta['dataset']} with fingerprint {meta['fingerprint']}, "
                         f"not {spec.fingerprint}: pass the run's dataset options, e.g. --data-option size=32")
    base = cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    test = adapter.split("test")
    x = test.batch(np.arange(min(clips, len(test)))).x.to(device)
    lo, hi = spec.value_range
    rows = []
    for setting in sweep:
        kind, _, n = setting.partition(":")
        if kind == "ddim":
            config, nfe = dataclasses.replace(base, sampler="ddim", sampler_steps=int(n)), None
        elif kind == "ddpm":
            config, nfe = dataclasses.replace(base, sampler="ddpm"), None
        elif kind in ("heun", "recon"):
            config = dataclasses.replace(base, sampler_steps=int(n or base.sampler_steps))
            nfe = heun_nfe(config.sampler_steps) if kind == "heun" else (
                heun_nfe(config.sampler_steps) + 2 * config.sampler_steps - 3)
        else:
            raise SystemExit(f"unknown sweep setting {setting!r}; use ddim:N, ddpm, heun:N or recon[:N]")
        method = cls(config, spec)
        method.load_state_dict(torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=True))
        method.to(device).eval()
        start = time.perf_counter()
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            out = method.reconstruct(x, generator=gen) if kind == "recon" else method.decode(method.encode(x), generator=gen)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / len(x)
        out = out.float().clamp(lo, hi).cpu().numpy()
        ref = x.cpu().numpy()
        rows.append({"method": meta["method"], "setting": setting, "nfe": nfe or int(getattr(method, "nfe", 1)),
                     "mse": float(np.mean(mse_fn(ref, out))),
                     "psnr": float(np.mean(psnr_fn(ref, out, data_range=hi - lo, max_db=100.0))),
                     "s_per_clip": seconds, "clips": len(x)})
        print(f"  {setting}: done", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="all", help="comma-separated methods, or 'all' registered ones")
    parser.add_argument("--modality", default="video", choices=("video", "audio"),
                        help="video: synthetic-sprites frames of --size; audio: synthetic-speech 201-bin spectra")
    parser.add_argument("--profiles", default="smoke,quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64, help="frame size (synthetic-sprites: 64 or 32)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up step)")
    parser.add_argument("--decode-clips", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                        help="config override, as in `seqbench run --set`")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--quality", default=None, metavar="MODEL_DIR",
                        help="score a trained cached model under the --sweep decoder settings")
    parser.add_argument("--sweep", default="ddim:5,ddim:10,ddim:20,ddim:50,ddpm")
    parser.add_argument("--clips", type=int, default=8, help="test clips for --quality")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option of the run that trained the --quality model (e.g. size=32)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: METHOD:PROFILE in this process
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)

    if args.quality:
        from tabulate import tabulate

        rows = quality(args.quality, [s.strip() for s in args.sweep.split(",") if s.strip()], args.clips,
                       args.device, args.threads, dict(o.split("=", 1) for o in args.data_option))
        print(f"device {args.device}, {rows[0]['clips'] if rows else 0} test clips")
        print(tabulate([[r["method"], r["setting"], r["nfe"], f"{r['mse']:.4g}", f"{r['psnr']:.2f}",
                         f"{r['s_per_clip']:.3g}"] for r in rows],
                       headers=["method", "decoder", "NFE/frame", "MSE", "PSNR (dB)", "s/clip"], tablefmt="github"))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)
        return

    if args.one:
        method, profile = args.one.split(":")
        row = measure(method, profile, args.device, args.size, args.frames, args.steps, args.decode_clips,
                      args.threads, overrides, modality=args.modality)
        print(json.dumps(row))
        return

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods == ["all"]:
        from seqbench.plugins import load_plugins

        registry = load_plugins().methods
        spec = bench_spec(args.modality, args.size, args.frames)
        methods = [m for m in registry.names() if registry.get(m).supports(spec) is None]
    rows = []
    for method in methods:
        for profile in [p.strip() for p in args.profiles.split(",") if p.strip()]:
            cmd = [sys.executable, os.path.abspath(__file__), "--one", f"{method}:{profile}", "--device", args.device,
                   "--size", str(args.size), "--frames", str(args.frames), "--steps", str(args.steps),
                   "--decode-clips", str(args.decode_clips), "--modality", args.modality] + sum((["--set", s] for s in args.set), [])
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{method}/{profile}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  measured {method}/{profile}", file=sys.stderr, flush=True)
    from tabulate import tabulate

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    shape = "201 bins" if args.modality == "audio" else f"{args.size}px"
    print(f"device {args.device}, {args.modality} {shape} x {args.frames} frames, load average {load:.1f}")
    table = [[r["method"], r["profile"], f"{r['params_M']:.2f}", r["batch"], f"{r['steps_per_s']:.3g}",
              f"{r['samples_per_s']:.3g}",
              f"{r['decode_s_per_clip']:.3g}", r["nfe"],
              "-" if r["reconstruct_s_per_clip"] is None else f"{r['reconstruct_s_per_clip']:.3g}",
              f"{r['peak_mem_MB']:.0f}"] for r in rows]
    print(tabulate(table, headers=["method", "profile", "params (M)", "batch", "train steps/s", "samples/s",
                                   "decode s/clip",
                                   "NFE/frame", "reconstruct s/clip", "peak MB"], tablefmt="github"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
