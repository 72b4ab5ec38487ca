"""The learning curves behind the CPU protocol: where each model reaches its plateau, and whether it did.

Every model the runner trains with probes (the default) keeps its curves beside it
(``history.json``: ``curve/...`` = the ``mse``, ``leak`` and judge ``swap`` probes on fixed validation
clips at step 0 and every validation point) and a plateau summary in ``meta.json``. This script

* ``--train dbse,cdsvae``: trains those methods under a profile (default ``quick``) through the
  runner, the same models ``seqbench run`` would train and cache (a cached model is reused);
* prints, per model, the headline probe (judge swap mean, else MSE), its final value, the relative
  change over the last quarter of training (a least-squares line through that quarter's probes),
  ``converged`` (change below the threshold), the step and training time at which 90 % of the way to
  the final value was covered, the last-quarter change of the other probes, and the training-loss
  spikes (``step:ratio(term that grew most)``, :func:`seqbench.probes.loss_spikes` / ``spike_term``) that tell an unstable run from one
  still learning;
* ``--fill-lr-scale`` / ``--fill-loss-spikes`` (with ``--rows``) add the ``plateau_lr_scale`` /
  ``late_loss_spikes`` column to rows written before it existed, computed from each model's stored
  schedule / training history (derived values; nothing is re-measured);
* ``--export DIR`` copies every listed model's ``history.json`` and plateau summary to
  ``DIR/<method>-seed<k>-<key8>.json``, so the evidence behind a committed leaderboard outlives the cache;
  ``--from DIR`` reads such exported files instead of the cache.

Examples::

    python benchmarks/learning_curves.py --train dbse,vidtwin            # 32 px synthetic-sprites, quick
    python benchmarks/learning_curves.py --dataset synthetic-sprites     # every cached model of that dataset
    python benchmarks/learning_curves.py --from leaderboards/curves/synthetic-sprites --figure curves.png
    python benchmarks/learning_curves.py --rows leaderboards/results/synthetic-sprites --export leaderboards/curves/synthetic-sprites
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

SHOWN_CHANGES = ("swap/static", "swap/dynamic", "mse", "leak/s_to_d", "leak/d_to_s")


def cached_models(dataset: str, methods: list[str] | None, profile: str | None) -> list[dict[str, Any]]:
    """``{label, meta, history}`` of every cached model of ``dataset`` with a learning curve."""
    from seqbench.plots import curve_label, has_probe_curves
    from seqbench.runner import models_cache

    found = []
    for meta_path in sorted(models_cache().glob("*/*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
            history = json.loads((meta_path.parent / "history.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("dataset") != dataset or (methods and meta.get("method") not in methods):
            continue
        if profile and meta.get("config", {}).get("profile", profile) != profile:
            continue
        if not has_probe_curves(history):
            continue
        found.append({"label": curve_label(meta["method"], meta["seed"], meta_path.parent.name), "meta": meta,
                      "history": history})
    return found


def exported_models(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) | {"label": path.stem} for path in sorted(Path(folder).glob("*.json"))]


def lr_scale(meta: dict[str, Any]) -> float | None:
    """The last quarter's mean learning rate / the peak (:func:`seqbench.probes.late_lr_scale`) of a model."""
    from seqbench.config import MethodConfig
    from seqbench.probes import late_lr_scale

    config = meta.get("config") or {}
    if not meta.get("steps") or "scheduler" not in config:
        return None
    return late_lr_scale(MethodConfig(scheduler=config["scheduler"], warmup_steps=config.get("warmup_steps", 0)),
                         int(meta["steps"]))


def fill_rows(rows_dir: Path, column: str, values: dict[str, Any]) -> int:
    """Add a derived ``column`` to rows written before it existed: ``values`` maps a model key's first 8
    characters to the value (nothing is re-measured); rows of other models get ``None``. Returns the
    number of rows given a value."""
    filled = 0
    for path in sorted(Path(rows_dir).rglob("results.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if all(column in row for row in rows):
            continue
        for row in rows:
            if column not in row:
                row[column] = values.get((row.get("model_key") or "")[:8])
                filled += row[column] is not None
        path.write_text("".join(json.dumps(_in_schema_order(row, column)) + "\n" for row in rows), encoding="utf-8")
    return filled


def _in_schema_order(row: dict[str, Any], column: str) -> dict[str, Any]:
    """``row`` with the columns of :class:`~seqbench.runner.row.ResultRow` up to the last it has or ``column``,
    in order (``None`` where absent): a row stays a prefix of the schema, so a later fill still finds its
    column missing."""
    from seqbench.runner.row import ResultRow

    columns = ResultRow.columns()
    last = max(columns.index(column), *(columns.index(k) for k in row if k in columns))
    return {k: row.get(k) for k in columns[: last + 1]}


def fill_lr_scale(rows_dir: Path, models: list[dict[str, Any]]) -> int:
    """``plateau_lr_scale`` from each model's stored schedule (:func:`lr_scale`) for older rows."""
    return fill_rows(rows_dir, "plateau_lr_scale",
                     {m["label"].rsplit("-", 1)[-1]: lr_scale(m["meta"]) for m in models if m["meta"].get("curve")})


def fill_loss_spikes(rows_dir: Path, models: list[dict[str, Any]]) -> int:
    """``late_loss_spikes`` from each model's stored training history for older rows."""
    from seqbench.probes import late_loss_spikes

    return fill_rows(rows_dir, "late_loss_spikes",
                     {m["label"].rsplit("-", 1)[-1]: late_loss_spikes(m["history"]) for m in models})


def summary_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from seqbench.probes import summarise_history

    rows = []
    for model in models:
        meta, summary = model["meta"], summarise_history(model["history"])
        if summary is None:
            continue
        row = {"model": model["label"], "steps": meta.get("steps"), "probe": summary["key"],
               "final": summary["final"], "change": summary["change"], "converged": summary["converged"],
               "lr_scale": lr_scale(meta),
               "step_90": summary["step_90"], "time_90_s": summary["time_90"],
               "train_s": meta.get("train_wall_s"), "probe_s": meta.get("probe_s")}
        for key in SHOWN_CHANGES:
            row[f"Δ {key}"] = summary["changes"].get(key)
        row["loss spikes"] = format_spikes(model["history"], summary["loss_spikes"])
        rows.append(row)
    return rows


def format_spikes(history: list[dict[str, Any]], spikes: list[tuple[int, float]]) -> str:
    """``step:ratio(term that grew most)`` per training-loss spike (:func:`seqbench.probes.spike_term`), ``-`` for none."""
    from seqbench.probes import spike_term

    def term(step: int) -> str:
        found = spike_term(history, step)
        return f"({found[0]} {found[1]:.0f}x)" if found else ""

    return " ".join(f"{step}:{ratio:.1f}x{term(step)}" for step, ratio in spikes) or "-"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic-sprites")
    parser.add_argument("--methods", default=None, help="comma-separated methods to list (default: all cached)")
    parser.add_argument("--train", default=None, help="comma-separated methods to train first (cached ones are reused)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option for --train, e.g. size=32")
    parser.add_argument("--from", dest="source", default=None, help="a folder of exported curves instead of the cache")
    parser.add_argument("--rows", default=None,
                        help="only the models these result rows name (a results.jsonl or a folder of them)")
    parser.add_argument("--export", default=None, help="copy the listed models' curves to this folder")
    parser.add_argument("--figure", default=None, help="draw the curves overlaid into this PNG")
    parser.add_argument("--fill-lr-scale", action="store_true",
                        help="add plateau_lr_scale to the --rows written before that column existed (from the models' schedules)")
    parser.add_argument("--fill-loss-spikes", action="store_true",
                        help="add late_loss_spikes to the --rows written before that column existed (from the models' histories)")
    args = parser.parse_args(argv)

    methods = args.methods.split(",") if args.methods else None
    if args.train:
        from seqbench.runner import RunOptions, Runner

        trained = args.train.split(",")
        options = {k: v for k, v in (item.split("=", 1) for item in args.data_option)}
        Runner(RunOptions(methods=trained, metrics=["mse"], datasets=[args.dataset], profile=args.profile,
                          seeds=[int(s) for s in args.seeds.split(",")], progress=False, visuals=False,
                          dataset_options={args.dataset: options} if options else {})).run()
        methods = sorted(set(methods or []) | set(trained))
    models = exported_models(Path(args.source)) if args.source else cached_models(args.dataset, methods, None)
    if methods:
        models = [m for m in models if m["meta"].get("method") in methods]
    if args.rows:
        from seqbench.results import load_results

        keys = set(load_results(args.rows)["model_key"].dropna())
        models = [m for m in models if m["label"].rsplit("-", 1)[-1] in {k[:8] for k in keys}]
    rows = summary_rows(models)
    if not rows:
        print(f"no model of {args.dataset} with learning curves" + (f" in {args.source}" if args.source else " in the cache"))
        return 1
    from tabulate import tabulate

    print(tabulate([[_fmt(v) for v in row.values()] for row in rows], headers=list(rows[0]), tablefmt="github"))
    if args.export:
        folder = Path(args.export)
        folder.mkdir(parents=True, exist_ok=True)
        for model in models:
            keep = {k: model["meta"].get(k) for k in ("method", "method_version", "dataset", "fingerprint", "seed",
                                                       "config", "git_sha", "steps", "train_wall_s", "probe_s",
                                                       "selected_weights", "curve")}
            (folder / f"{model['label']}.json").write_text(json.dumps({"meta": keep, "history": model["history"]},
                                                                      default=float))
        print(f"exported {len(models)} curve(s) to {folder}")
    if args.fill_lr_scale:
        if not args.rows:
            parser.error("--fill-lr-scale needs --rows")
        print(f"plateau_lr_scale filled in {fill_lr_scale(Path(args.rows), models)} row(s) under {args.rows}")
    if args.fill_loss_spikes:
        if not args.rows:
            parser.error("--fill-loss-spikes needs --rows")
        print(f"late_loss_spikes filled in {fill_loss_spikes(Path(args.rows), models)} row(s) under {args.rows}")
    if args.figure:
        from seqbench.plots import learning_curves

        histories = {f"{m['meta']['method']}/seed{m['meta']['seed']}": m["history"] for m in models}
        print(f"figure: {learning_curves(histories, args.figure, title=f'{args.dataset}: learning curves')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
