"""The ``seqbench`` command line: run, list, leaderboard, show, data, ui.

Conventions follow lm-eval / mteb / pytest: comma-separated names with "did you mean",
``--set METHOD.KEY=VALUE`` overrides, ``-p`` plugins, ``--dry-run`` plans. Errors a user can
act on are printed in one line without a traceback. Exit status: 0 all cells ok, 1 some cells
failed, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, SeqbenchError
from .log import configure_logging, logger

if TYPE_CHECKING:
    from .runner import RunOptions

#: Exit status of ``seqbench``: what happened, in one number (documented in the README).
EXIT_OK = 0  # every cell ok (or not applicable)
EXIT_CELLS_FAILED = 1  # the run finished; some cells failed (the summary counts and lists them)
EXIT_USAGE = 2  # bad input, refused before anything trained (argparse's convention)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM; finished cells are kept, re-running resumes


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .config import DEFAULT_DATASET, DEFAULT_METHODS, DEFAULT_METRICS, DEFAULT_PROFILE, PROFILE_REGISTRY, PROFILES

    parser = argparse.ArgumentParser(prog="seqbench", description="Benchmark sequential-disentanglement methods.")
    parser.add_argument("--version", action="version", version=f"seqbench {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugin_help = "add a plugin module (-p MODULE) or block one (-p no:NAME); repeatable"
    run = sub.add_parser("run", help="train methods and evaluate metrics (default: the embedded benchmark)")
    run.add_argument("--methods", type=_csv, help=f"comma-separated methods (default: {','.join(DEFAULT_METHODS)})")
    run.add_argument("--metrics", type=_csv, help=f"comma-separated metrics (default: {','.join(DEFAULT_METRICS)})")
    run.add_argument("--dataset", "--datasets", dest="datasets", type=_csv,
                     help=f"comma-separated datasets (default: {DEFAULT_DATASET})")
    run.add_argument("--profile", choices=PROFILES, help=f"method size/length profile (default: {DEFAULT_PROFILE})")
    run.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default: 0)")
    run.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--output", "-o", type=Path, help="output directory (default: ./seqbench-results)")
    run.add_argument("--limit", type=_positive_int, help="evaluate on the first N test clips only (not for reporting)")
    eval_defaults = ", ".join(f"{p.eval_clips or 'all'} for --profile {p.name}" for p in PROFILE_REGISTRY.values())
    run.add_argument("--eval-clips", type=int, default=None, metavar="N",
                     help=f"score a fixed, seeded subset of N test clips, the same for every method (default: "
                          f"{eval_defaults}; 0 = all)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.KEY=VALUE",
                     help="override a method setting, e.g. --set dbse.lr=1e-3 (KEY=VALUE for all methods)")
    run.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="DATASET.KEY=VALUE",
                     help="dataset adapter option, e.g. --data-option synthetic-sprites.size=32")
    run.add_argument("--metric-option", dest="metric_options", action="append", default=[],
                     metavar="METRIC.KEY=VALUE", help="metric option, e.g. --metric-option akd.backend=face-alignment")
    run.add_argument("--config", type=Path, help="TOML file with run options and [set.METHOD] tables")
    run.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN", help=plugin_help)
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    run.add_argument("--retrain", action="store_true", help="ignore cached models and cells")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--no-visuals", action="store_true",
                     help="render no pictures (swap grids, traversals...) of the trained models")
    run.add_argument("--probes", type=_csv, metavar="METRICS",
                     help="metrics run at every validation point for learning curves (curve/... in MLflow and "
                          "history.json; default mse,leak,judge where they apply; 'none' for no curves)")

    lst = sub.add_parser("list", help="list registered methods, metrics, datasets, backends or plugins")
    lst.add_argument("what", nargs="?", default="all", choices=("all", "methods", "metrics", "datasets", "backends", "plugins"))
    lst.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN", help=plugin_help)

    board = sub.add_parser("leaderboard", help="render markdown leaderboards from results")
    board.add_argument("--from", dest="sources", action="append", metavar="SOURCE",
                       help="an output directory / results.jsonl, or 'mlflow' to read the tracking store; repeat to "
                            "combine runs (newest row per method, seed and key wins; default seqbench-results)")
    board.add_argument("--dataset", type=_csv, help="only these datasets")
    board.add_argument("--profile", help="only results of this profile")
    board.add_argument("--ci", action="store_true", help="show bootstrap 95%% intervals")
    board.add_argument("-o", "--output", type=Path, help="write to this file (one dataset) or directory")
    board.add_argument("--figures", type=Path, metavar="DIR",
                       help="also draw <dataset>-swaps.png (each method's swap grid on the same clips, from the "
                            "cached models), <dataset>-metrics.png (headline metrics with 95%% intervals) and "
                            "<dataset>-curves.png (learning curves of the cached models) into DIR, and embed them in "
                            "the markdown")
    board.add_argument("--curves", type=Path, metavar="DIR",
                       help="with --figures: exported learning curves (DIR/<dataset>/<method>-seed<k>-<key8>.json, "
                            "benchmarks/learning_curves.py --export) for the models this cache no longer holds")
    board.add_argument("--grids", type=Path, metavar="DIR",
                       help="with --figures: exported swap grids (DIR/<dataset>/<method>-seed<k>-<key8>.png): every "
                            "grid drawn from a cached model is written there, and a model this cache no longer holds "
                            "is drawn from its exported grid, so the swap figure is regenerable without the cache")
    board.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="DATASET.KEY=VALUE",
                       help="dataset option of the runs whose cached models --figures draws (e.g. "
                            "synthetic-sprites.size=64)")
    board.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN", help=plugin_help)

    show = sub.add_parser("show", help="render pictures of a cached trained model (never trains)")
    show.add_argument("--method", required=True, help="the method whose cached model to draw")
    show.add_argument("--dataset", default="synthetic-sprites", help="the dataset it was trained on")
    show.add_argument("--what", type=_csv, default=["all"], metavar="PICTURES",
                      help="comma-separated: recon, swaps, samples, traversal, zeroshot, or all (default)")
    show.add_argument("--on", type=_csv, default=[], metavar="DATASET",
                      help="zero-shot: encode the fixed clips of these datasets (same modality, frames and size)")
    show.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                      help=f"the profile the model was trained with (default: {DEFAULT_PROFILE})")
    show.add_argument("--seed", type=int, default=0, help="the model's seed (default: 0)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.KEY=VALUE",
                      help="the --set overrides the model was trained with")
    show.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="DATASET.KEY=VALUE",
                      help="the dataset options the model was trained with")
    show.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    show.add_argument("--output", "-o", type=Path, default=Path("seqbench-pictures"),
                      help="directory for the PNGs (default: ./seqbench-pictures)")
    show.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN", help=plugin_help)

    data = sub.add_parser("data", help="prepare, describe or verify datasets")
    data.add_argument("action", choices=("prepare", "info", "verify"))
    data.add_argument("name")
    data.add_argument("--source", type=Path, help="directory with the raw files (prepare)")
    data.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE")
    data.add_argument("--strict", action="store_true", help="make a corrupt or unreadable file fatal instead of skipped")
    data.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN", help=plugin_help)

    judges = sub.add_parser("judges", help="list, train, export or import the judges (pinned by their weights digest)")
    judges.add_argument("action", choices=("list", "train", "export", "import"))
    judges.add_argument("file", nargs="?", type=Path, help="the judge file to import, or where to export (export)")
    judges.add_argument("--dataset", default="synthetic-sprites", help="dataset whose judge to train or export")
    judges.add_argument("--data-option", dest="data_options", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, e.g. size=32")
    judges.add_argument("--weights", help="export this judge (file or weights digest) instead of the run default")
    judges.add_argument("--seed", type=int, default=0, help="judge seed (train/export; ensemble members use 1..K-1)")
    judges.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN", help=plugin_help)

    ui = sub.add_parser("ui", help="open the MLflow UI on the results' tracking store")
    ui.add_argument("--output", "-o", type=Path, default=Path("seqbench-results"), help="output directory of the runs")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def run_options(args: argparse.Namespace) -> RunOptions:
    """The :class:`RunOptions` of parsed ``seqbench run`` arguments (the command line over ``--config``)."""
    from .config import run_settings
    from .runner import RunOptions

    given = {name: getattr(args, name) for name in ("methods", "metrics", "datasets", "profile", "seeds", "device",
                                                    "output", "limit", "eval_clips", "overrides", "plugins")}
    given.update(dataset_options=args.data_options, metric_options=args.metric_options)
    return RunOptions(**run_settings(given, args.config))


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import Runner

    options = run_options(args)
    options.dry_run = args.dry_run
    options.command = list(getattr(args, "argv", sys.argv[1:]))
    options.retrain = args.retrain
    options.visuals = not args.no_visuals
    if args.probes is not None:
        options.probes = [] if args.probes == ["none"] else args.probes
    options.progress = not args.no_progress and sys.stderr.isatty()

    runner = Runner(options)
    run = runner.run()
    if options.dry_run:
        return 0
    from .results import load_results

    frame = load_results(run.output)
    mine = frame[frame["run_id"] == run.run_id]
    _print_summary(mine, run)
    return EXIT_CELLS_FAILED if (mine["status"] == "error").any() else EXIT_OK


def _print_summary(frame, run) -> None:
    from tabulate import tabulate

    from .leaderboard import format_value

    rows = []
    reused = frame["reused"].fillna(False).astype(bool) if "reused" in frame else frame["status"] != frame["status"]
    for (_, row), was_reused in zip(frame.iterrows(), reused):
        value = format_value(row["value"]) if row["status"] == "ok" else row["status"]
        if row["status"] == "ok" and isinstance(row["ci_low"], float) and row["ci_low"] == row["ci_low"]:
            value += f" [{format_value(row['ci_low'])}, {format_value(row['ci_high'])}]"
        if was_reused:
            value += " (cached)"
        reason = row["reason"] if isinstance(row["reason"], str) else ""  # pandas turns None into NaN
        key = row["key"] if isinstance(row["key"], str) else ""
        rows.append([row["dataset"], row["method"], row["seed"], row["metric"], key, value, reason[:90]])
    print(tabulate(rows, headers=["dataset", "method", "seed", "metric", "key", "value", "note"], tablefmt="simple"))
    errors = frame[frame["status"] == "error"].drop_duplicates(["dataset", "method", "seed", "metric"])
    if reused.any():
        cells = frame[reused].drop_duplicates(["dataset", "method", "seed", "metric"])
        print(f"\n(cached): {len(cells)} cell(s) reused from the cache, computed earlier with the same code, config "
              f"and data; --retrain recomputes them")
    print(f"\nresults: {run.output / 'results.jsonl'}")
    print(f"leaderboards: {run.output / 'leaderboards'}")
    from .tracking.mlflow_plugin import tracking_status

    tracking = tracking_status(run)
    if tracking.disabled:
        print(f"mlflow: off for this run, {tracking.uri} failed ({tracking.disabled})")
    elif tracking.uri:
        print(f"mlflow: {tracking.uri} (open with `seqbench ui --output {run.output}`)")
    if len(errors):
        print(f"\n{len(errors)} cell(s) failed:", file=sys.stderr)
        for _, row in errors.iterrows():
            print(f"  {row['dataset']}/{row['method']}/seed{row['seed']}/{row['metric']}: {row['reason']}", file=sys.stderr)
        from .runner import failure_log

        log = failure_log(run)
        if log.exists():
            print(f"tracebacks: {log}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    from .plugins import load_plugins

    plugins = load_plugins(args.plugins)
    kinds = ["methods", "metrics", "datasets", "backends"] if args.what == "all" else [args.what]
    for kind in kinds:
        if kind == "plugins":
            print("plugins:")
            for name, origin in sorted(plugins.origins.items()):
                print(f"  {name:28s} {origin}")
            for name, error in sorted(plugins.failed.items()):
                print(f"  {name:28s} FAILED: {error}")
            continue
        registry = getattr(plugins, kind)
        print(f"{kind}:")
        for name in registry.names():
            if name in registry.clashes:
                print(f"  {name:20s} CLASH: {registry.clashes[name]}")
                continue
            cls = registry.get(name)
            description = (getattr(cls, "description", "") or "").strip().splitlines()
            print(f"  {name:20s} {description[0] if description else ''}  [{registry.origin(name)}]")
        if not len(registry):
            print("  (none)")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .config import parse_scoped_values
    from .leaderboard import figure_links, headline_keys, render_dataset, write_leaderboards
    from .plugins import load_plugins
    from .results import load_results

    import pandas as pd

    sources = args.sources or ["seqbench-results"]
    frames = []
    for source in sources:
        if source == "mlflow":
            from .tracking.mlflow_plugin import load_results_from_mlflow

            frames.append(load_results_from_mlflow())
        else:
            frames.append(load_results(source))
    # load_results gives every results column (seqbench.results.COLUMNS): ready for render_dataset as it is
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    source_text = ", ".join(sources)
    plugins = load_plugins(args.plugins)
    datasets = args.dataset or sorted(frame["dataset"].dropna().unique())
    metric_order = list(dict.fromkeys(frame["metric"].dropna()))
    if args.figures:
        from .plots import write_dataset_figures

        for path in write_dataset_figures(frame, args.figures, datasets=datasets, headlines=headline_keys(plugins),
                                          profile=args.profile, swaps=True, plugins=args.plugins,
                                          dataset_options=parse_scoped_values(args.data_options,
                                                                              flag="--data-option"),
                                          curves=args.curves, grids=args.grids):
            if args.output:
                print(f"wrote {path}")
            else:  # stdout carries the markdown: say it in the log
                logger.info(f"wrote {path}")
    if args.output and (len(datasets) > 1 or args.output.is_dir()):
        for path in write_leaderboards(frame, args.output, datasets=datasets, show_ci=args.ci, profile=args.profile,
                                       plugins=plugins, figures_dir=args.figures):
            print(f"wrote {path}")
        return 0
    for dataset in datasets:
        if dataset not in set(frame["dataset"]):
            raise SeqbenchError(f"no results for dataset {dataset!r} in {source_text}; present: "
                                f"{', '.join(sorted(frame['dataset'].dropna().unique()))}")
        board_dir = args.output.parent if args.output else Path.cwd()
        text = render_dataset(frame, dataset, metric_order=metric_order, show_ci=args.ci, profile=args.profile,
                              headlines=headline_keys(plugins), figures=figure_links(dataset, args.figures, board_dir))
        if args.output:
            from .utils import atomic_write_text

            atomic_write_text(args.output, text)
            print(f"wrote {args.output}")
        else:
            print(text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Pictures of one cached model, drawn exactly as a run draws them (same fixed clips), without training."""
    from .config import parse_scoped_values, parse_set_options
    from .runner import RunOptions, Runner
    from .utils import resolve_device
    from .visuals import PICTURES, render_pictures, write_pictures, zero_shot_reason

    what = tuple(PICTURES) if "all" in args.what else tuple(dict.fromkeys(args.what))
    unknown = [name for name in what if name not in PICTURES]
    if unknown:
        raise SeqbenchError(f"--what {','.join(unknown)}: choose from {', '.join(PICTURES)} or all")
    if "zeroshot" in args.what and not args.on:
        raise SeqbenchError("--what zeroshot needs --on DATASET: the dataset whose clips the model encodes "
                            f"zero-shot (same modality, frames and size as {args.dataset})")
    data_options = parse_scoped_values(args.data_options, flag="--data-option")
    options = RunOptions(methods=[args.method], datasets=[args.dataset, *args.on], profile=args.profile,
                         seeds=[args.seed], overrides=parse_set_options(args.overrides), dataset_options=data_options,
                         plugins=args.plugins, progress=False)
    runner = Runner(options)
    unit = runner.unit(args.dataset, args.method, args.seed)
    for other in args.on:
        reason = zero_shot_reason(unit.spec, runner.adapter(other).spec)
        if reason:
            raise SeqbenchError(f"--on {other}: a {args.dataset} model cannot encode it: {reason}")
    method = runner.load_cached_model(unit, resolve_device(args.device))
    if method is None:
        sets = "".join(f" --set {item}" for item in args.overrides)
        sets += "".join(f" --data-option {item}" for item in args.data_options)
        raise SeqbenchError(f"no trained {unit.label} model for the {args.profile} profile in the cache "
                            f"({runner.model_dir(unit)}); train it first with `seqbench run --methods {args.method} "
                            f"--dataset {args.dataset} --profile {args.profile} --seeds {args.seed}{sets}`")
    images, missing = render_pictures(method, runner.visual_inputs(args.dataset, list(args.on)), what)
    for path in write_pictures(images, args.output, unit.spec):
        from PIL import Image

        with Image.open(path) as picture:
            print(f"wrote {path} ({picture.width}x{picture.height})")
    for name, reason in missing.items():
        logger.warning(f"{name}: {reason}")
    return EXIT_OK if images else EXIT_CELLS_FAILED


def cmd_data(args: argparse.Namespace) -> int:
    from .config import parse_key_values
    from .plugins import load_plugins

    plugins = load_plugins(args.plugins)
    cls = plugins.datasets.get(args.name)
    options = parse_key_values(args.data_options)
    if args.strict:
        options["strict"] = True
    adapter = cls(**options)
    if args.action == "prepare":
        path = adapter.prepare(args.source) if args.source is not None else adapter.prepare()
        print(f"prepared {args.name} at {path}")
    elif args.action == "info":
        print(json.dumps(adapter.info(), indent=2, default=str))
    else:
        problems = adapter.verify()
        if problems:
            for problem in problems:
                print(problem)
            print(f"{len(problems)} problem(s) in {args.name}", file=sys.stderr)
            return 1
        print(f"{args.name}: all items readable")
    return 0


def cmd_judges(args: argparse.Namespace) -> int:
    """``seqbench judges list|train|export|import``: judges are files, identified by their weights digest."""
    from . import judge_files

    if args.action == "list":
        from tabulate import tabulate

        rows = judge_files.list_judges()
        if not rows:
            print("no judges yet: `seqbench judges train --dataset NAME` trains one, `seqbench judges import FILE` adds one")
            return 0
        print(tabulate(rows, headers="keys", tablefmt="github"))
        return 0
    if args.action == "import":
        if args.file is None:
            raise ConfigError("seqbench judges import FILE: name the judge file to import")
        folder = judge_files.install_judge(args.file)
        _, card = judge_files.read_judge_file(args.file)
        print(f"imported judge {card['dataset']} weights {card['weights']} (key {card['digest'][:8]}) into {folder}; "
              f"runs on {card['dataset']} {card.get('dataset_options') or ''} now score with it")
        return 0
    import dataclasses

    from .config import MethodConfig, parse_key_values
    from .data import carve_validation
    from .judges import judge_config_for, load_judge
    from .plugins import load_plugins

    plugins = load_plugins(args.plugins)
    options = parse_key_values(args.data_options)
    adapter = plugins.datasets.get(args.dataset)(**options)
    spec = adapter.spec
    # The judge's train items are the runs' (the train split minus the methods' validation part).
    train, _ = carve_validation(adapter.split("train"), MethodConfig().val_fraction, seed=0)
    test = adapter.split("test")
    config = dataclasses.replace(judge_config_for(spec), seed=args.seed)
    weights = args.weights if args.weights else ("train" if args.action == "train" or args.seed else None)
    trained = load_judge(spec, train, test, config=config, weights=weights)
    accuracy = ", ".join(f"{k} {v:.4f}" for k, v in trained.ceiling.items())
    if args.action == "train":
        print(f"{trained.name}: test accuracy {accuracy}")
        return 0
    if args.file is None:
        raise ConfigError("seqbench judges export FILE: name the file to write (e.g. sprites.judge.pt)")
    # the adapter's resolved options (defaults included), so a later change of a default keeps the card valid
    card = judge_files.judge_card(trained, spec, test, dataset_options={**getattr(adapter, "options", {}), **options})
    path = judge_files.export_judge(trained, card, args.file)
    print(f"exported {trained.name} to {path} ({path.stat().st_size / 1e6:.2f} MB); test accuracy {accuracy}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from .tracking.mlflow_plugin import artifact_location, tracking_uri

    uri = tracking_uri(args.output)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise SeqbenchError(f"no MLflow store at {uri}: run `seqbench run --output {args.output}` first, "
                            f"or set MLFLOW_TRACKING_URI")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port)]
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        command += ["--default-artifact-root", artifact_location(args.output)]
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri}); Ctrl-C to stop", flush=True)
    return serve_in_own_group(command)


def serve_in_own_group(command: list[str], grace_s: float = 10.0) -> int:
    """Run a server in its own process group; SIGINT/SIGTERM stop the whole group (uvicorn and its workers)."""
    import signal
    import subprocess

    proc = subprocess.Popen(command, start_new_session=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a batch scheduler, ``kill``) unwinds like Ctrl-C: trackers mark the run KILLED, exit 130."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _one_line_plugin_warnings() -> None:
    """Plugin warnings print as ``seqbench: warning: ...``, not with a file name and a source line."""
    import warnings

    from .plugins import PluginWarning

    original = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if isinstance(category, type) and issubclass(category, PluginWarning):
            return f"seqbench: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


def main(argv: list[str] | None = None) -> int:
    _one_line_plugin_warnings()
    configure_logging()  # one seqbench handler for every command's messages and progress lines
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded by a run as its command line
    if args.command is None:
        parser.print_help()
        return 0
    handlers = {"run": cmd_run, "list": cmd_list, "leaderboard": cmd_leaderboard, "data": cmd_data, "ui": cmd_ui,
                "show": cmd_show, "judges": cmd_judges}
    if args.command == "run":
        _interrupt_on_sigterm()
    try:
        return handlers[args.command](args)
    except SeqbenchError as exc:
        print(f"seqbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("seqbench: interrupted; finished cells are saved, re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
