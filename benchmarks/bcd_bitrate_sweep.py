"""BCD's bitrate trade-off: cross-leakage and reconstruction error against motion bits per frame.

The paper's claim (seed 002): a lower motion bitrate leaves less room for static information in
the motion codes (less S->D / D->S leakage) and costs reconstruction quality. This script runs the
benchmark itself once per bitrate, through the runner (so trained models are cached and a rerun
only evaluates)::

    seqbench run --methods bcd --metrics leak,mse --profile quick \\
        --set bcd.num_codes=K --set bcd.groups=G -o OUT/bcd-KxG

then reads the result rows back and prints (and, with ``--markdown``, writes) one table row per
bitrate: ``bits/frame = G log2(K)``, leakage S->D and D->S (the ``leak`` metric's averages over
labels; lower is better), MSE and PSNR of ``decode(encode(x))``, and the codebook perplexity of the
*test* clips' motion codes (``exp`` of the code-usage entropy) and the MSE of the one-step decode
``E[x | factors]`` (both computed here from the cached model, so they are available whether the model
was trained now or reused; the training-time perplexity is in MLflow as ``train/codebook_perplexity``).

Examples::

    python benchmarks/bcd_bitrate_sweep.py                                   # quick, 1 / 4 / 12 bits per frame
    python benchmarks/bcd_bitrate_sweep.py --bitrates 2x1,4x2,8x4,16x8       # and 32 bits per frame
    python benchmarks/bcd_bitrate_sweep.py --bitrates 2x1,4x2,16x4 --profile smoke --limit 64
    python benchmarks/bcd_bitrate_sweep.py --markdown docs/bcd_bitrate.md --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_BITRATES = "2x1,4x2,8x4"  # 1, 4, 12 bits per frame; 8x4 is the quick default (a cached model is reused)


def parse_bitrates(text: str) -> list[tuple[int, int]]:
    """``"4x2,16x4"`` -> ``[(4, 2), (16, 4)]`` (codebook size x groups)."""
    out = []
    for item in text.split(","):
        codes, _, groups = item.strip().lower().partition("x")
        try:
            out.append((int(codes), int(groups or 1)))
        except ValueError:
            raise SystemExit(f"--bitrates {item!r}: expected CODESxGROUPS, e.g. 8x4") from None
    return out


def run_one(codes: int, groups: int, args: argparse.Namespace, out_dir: Path) -> float:
    """One ``seqbench run`` for this bitrate; returns its wall time in seconds."""
    cmd = [sys.executable, "-m", "seqbench", "run", "--methods", "bcd", "--metrics", args.metrics,
           "--profile", args.profile, "--dataset", args.dataset, "--seeds", args.seeds, "--device", args.device,
           "--set", f"bcd.num_codes={codes}", "--set", f"bcd.groups={groups}", "-o", str(out_dir)]
    for item in args.set:
        cmd += ["--set", item]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if not args.progress:
        cmd.append("--no-progress")
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    code = subprocess.call(cmd)
    if code:
        print(f"warning: seqbench run exited {code} for {codes}x{groups}", file=sys.stderr)
    return time.perf_counter() - start


def load_cached(model_key: str, dataset: str):
    """The cached BCD model ``model_key`` (eval mode, CPU) and the dataset's test split."""
    import torch

    from seqbench.methods.bcd import BCD, BCDConfig
    from seqbench.plugins import load_plugins
    from seqbench.runner import cached_model_dir

    model_dir = cached_model_dir("bcd", model_key)
    meta = json.loads((model_dir / "meta.json").read_text())
    adapter = load_plugins().datasets.get(dataset)()
    config = BCDConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    model = BCD(config, adapter.spec)
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), adapter.split("test"), meta


def code_statistics(model_key: str, dataset: str, clips: int) -> dict[str, float]:
    """On the first ``clips`` test clips: the codebook perplexity of the motion codes, and the MSE of the
    one-step decode ``E[x | content, motion]`` (DDIM with one step from clip noise: the denoiser's
    posterior mean). The one-step MSE measures how much of the clip the factors determine, apart from
    how well a multi-step sampler renders detail (which needs far more training than the quick profile)."""
    import torch

    model, test, meta = load_cached(model_key, dataset)
    config = model.config
    usage = torch.zeros(config.num_codes)
    squared, values = 0.0, 0
    steps, config.sampler_steps = config.sampler_steps, 1
    try:
        with torch.no_grad():
            for start in range(0, min(clips, len(test)), 64):
                x = test.clips(list(range(start, min(start + 64, clips, len(test))))).float()
                _, q = model.encode_model_space(model.to_model_space(x))
                usage += torch.bincount(q.indices.reshape(-1), minlength=config.num_codes).float()
                y = model.decode(model.encode(x), generator=torch.Generator().manual_seed(start))
                squared += float(((y.float() - x) ** 2).sum())
                values += x.numel()
    finally:
        config.sampler_steps = steps
    usage = usage / usage.sum()
    return {"perplexity": float(torch.exp(-(usage * (usage + 1e-10).log()).sum())), "mse_1step": squared / values,
            "train_s": float(meta.get("train_wall_s", math.nan))}


def summarise(out_dir: Path, codes: int, groups: int, args: argparse.Namespace, wall_s: float) -> dict:
    from seqbench.results import load_results

    frame = load_results(out_dir)
    frame = frame[(frame["method"] == "bcd") & (frame["status"] == "ok")]

    def value(key: str) -> float:
        picked = frame.loc[frame["key"] == key, "value"]
        return float(picked.mean()) if len(picked) else math.nan

    keys = frame["model_key"].dropna().unique()
    stats = [code_statistics(k, args.dataset, args.perplexity_clips) for k in keys]
    mean = lambda name: sum(s[name] for s in stats) / len(stats) if stats else math.nan  # noqa: E731
    return {"codes": codes, "groups": groups, "bits": groups * math.log2(codes),
            "s_to_d": value("leak/s_to_d"), "d_to_s": value("leak/d_to_s"), "leakage": value("leak/leakage"),
            "mse": value("mse"), "psnr": value("psnr"), "mse_1step": mean("mse_1step"),
            "perplexity": mean("perplexity"), "seeds": len(keys), "train_s": mean("train_s"), "wall_s": wall_s,
            "chance": {key: value(f"chance/{key}") for key in ("leak/s_to_d", "leak/d_to_s", "leak/leakage", "mse")}}


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    fmt = lambda v, d=3: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"  # noqa: E731
    lines = [f"BCD bitrate sweep on `{args.dataset}`, profile `{args.profile}`, seeds {args.seeds}"
             + (f", `--limit {args.limit}` (not for reporting)" if args.limit else "") + ".",
             "", f"Generated by `python benchmarks/bcd_bitrate_sweep.py {' '.join(args.argv)}`; "
             "what the figures mean: docs/findings.md (BCD).", "",
             "| codes x groups | bits/frame | leak S->D ↓ | leak D->S ↓ | leakage ↓ | MSE ↓ | PSNR ↑ | MSE 1-step ↓ "
             "| perplexity | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["bits"]):
        lines.append(f"| {r['codes']} x {r['groups']} | {fmt(r['bits'], 1)} | {fmt(r['s_to_d'])} | {fmt(r['d_to_s'])} "
                     f"| {fmt(r['leakage'])} | {fmt(r['mse'], 4)} | {fmt(r['psnr'], 2)} | {fmt(r['mse_1step'], 4)} "
                     f"| {fmt(r['perplexity'], 2)} / {r['codes']} | {fmt(r['train_s'], 0)} |")
    chance = rows[0]["chance"] if rows else {}
    if any(not math.isnan(v) for v in chance.values()):
        lines.append(f"| chance | | {fmt(chance['leak/s_to_d'])} | {fmt(chance['leak/d_to_s'])} "
                     f"| {fmt(chance['leak/leakage'])} | {fmt(chance['mse'], 4)} (mean clip) | | "
                     f"{fmt(chance['mse'], 4)} | | |")
    lines += ["", "Leakage: the `leak` metric's probe accuracy (S->D: dynamic labels from the static code; D->S: "
              "static labels from the pooled dynamic code); MSE / PSNR: the `mse` metric (decode(encode(x)) with the "
              "method's sampler); MSE 1-step: the one-step decode E[x | factors] (how much of the clip the factors "
              "determine); perplexity: code usage of the test clips' motion codes (out of the codebook size); train s: "
              "the model's training wall time (from its cache entry; a reused model keeps its original time)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bitrates", default=DEFAULT_BITRATES, help="CODESxGROUPS list (default %(default)s)")
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--dataset", default="synthetic-sprites")
    parser.add_argument("--metrics", default="leak,mse")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N test clips (checks only)")
    parser.add_argument("--set", action="append", default=[], help="further bcd.KEY=VALUE overrides")
    parser.add_argument("--output", default="seqbench-results/bcd-bitrate-sweep", help="one run directory per bitrate")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--perplexity-clips", type=int, default=512)
    parser.add_argument("--progress", action="store_true", help="show the runner's progress bars")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    root = Path(args.output)
    rows = []
    for codes, groups in parse_bitrates(args.bitrates):
        out_dir = root / f"bcd-{codes}x{groups}"
        wall = run_one(codes, groups, args, out_dir)
        rows.append(summarise(out_dir, codes, groups, args, wall))
    table = markdown(rows, args)
    print(table)
    (root / "sweep.json").write_text(json.dumps(rows, indent=2))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
