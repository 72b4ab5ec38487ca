"""The benchmark runner: plan cells, train or reuse models, evaluate metrics, record results.

A *model unit* is one (dataset, method, seed); a *cell* is a unit plus one metric. Trained
models are cached under a content hash of everything that determines them; finished cells are
cached under a hash of the model key and the metric's identity, so re-running reuses both. A
failing cell records its error and the run goes on.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import math
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from . import __version__
from .config import PROFILE_REGISTRY, MethodConfig, get_profile
from .errors import ConfigError, NotApplicable, SeqbenchError
from .log import ProgressLog, configure_logging, format_duration, heartbeat, logger
from .plugins import Plugins, code_digest, load_plugins
from .probes import build_probe_set, default_probes, summarise_history
from .results import ERROR, NOT_APPLICABLE, OK, RESULTS_FILE, append_rows
# The run's contract types live in run_types (the hookspecs name them); re-exported from here too.
from .run_types import (DEFAULT_DATASET, DEFAULT_METHODS, DEFAULT_METRICS, DEFAULT_OUTPUT, Cell, ModelUnit,
                        RunInfo, RunOptions)  # noqa: F401
from .types import DataSpec, MetricValue
from .utils import (atomic_write_text, cache_root, check_cache_dir, content_hash, file_lock, git_sha, quarantine,
                    resolve_device, versions, writable_dir, zip_readable)

FAILURE_LOG = "failures.log"
HISTORY_FILE = "history.json"  # beside a cached model.pt: the training history (learning curves)


def _resolve_names(kind: str, names: list[str], plugins: Plugins) -> list[str]:
    registry = plugins.registry(kind)
    resolved = []
    for name in names:
        registry.get(name)  # raises UnknownNameError with suggestions
        if name not in resolved:
            resolved.append(name)
    return resolved


def resolve_config(method_cls, profile: str, spec: DataSpec, overrides: dict[str, dict[str, Any]]) -> MethodConfig:
    """The method's profile config for this dataset family, with ``--set`` overrides applied."""
    config = apply_overrides(method_cls.Config.for_profile(profile, spec.family), method_cls.name, overrides)
    config.check(owner=f"{method_cls.name}.")
    return config


def apply_overrides(config: MethodConfig, method: str, overrides: dict[str, dict[str, Any]]) -> MethodConfig:
    """``config`` with the ``--set KEY=VALUE`` (every method) and ``--set METHOD.KEY=VALUE`` overrides."""
    for scope in ("*", method):
        if overrides.get(scope):
            config = config.with_overrides(overrides[scope], owner=f"{method}." if scope != "*" else "")
    return config


def model_key(method_cls, config: MethodConfig, spec: DataSpec, seed: int) -> str:
    """Everything that determines a trained model, hashed (cf. lm-eval #4063: key on all of it).

    The method's own source (:func:`~seqbench.plugins.code_digest`) is part of it, so edited code
    trains a new model even when ``version`` was not bumped.
    """
    return content_hash({"method": method_cls.name, "method_version": method_cls.version, "config": config.to_dict(),
                         "dataset": spec.name, "fingerprint": spec.fingerprint, "seed": seed,
                         "seqbench": __version__, "code": code_digest(method_cls)}, length=20)


def make_unit(method_cls, config: MethodConfig, spec: DataSpec, dataset: str, seed: int) -> ModelUnit:
    """The (dataset, method, seed) model with its cache key."""
    return ModelUnit(dataset, method_cls.name, seed, config, spec, method_cls.version,
                     model_key(method_cls, config, spec, seed), content_hash(config.to_dict()))


def check_output_dir(path: Path) -> Path:
    return writable_dir(Path(path).expanduser(), what="output directory", fix="choose another with --output DIR")


# Rank 0 evaluates between trainings while the other ranks wait in the next model's first
# collective, so the group's timeout must outlast the longest evaluation.
DISTRIBUTED_TIMEOUT_H = 12


def init_distributed(device):
    """Join the ``torchrun`` process group: NCCL on CUDA (one GPU per ``LOCAL_RANK``), Gloo on CPU."""
    import datetime

    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(hours=DISTRIBUTED_TIMEOUT_H))
    return device


class Runner:
    """Executes one ``seqbench run`` invocation."""

    def __init__(self, options: RunOptions, plugins: Plugins | None = None):
        self.options = options
        configure_logging()
        self.plugins = plugins or load_plugins(options.plugins)
        self._adapters: dict[str, Any] = {}
        self._visual_inputs: dict[str, Any] = {}
        self._curve_summaries: dict[str, dict[str, Any]] = {}

    @property
    def eval_clips(self) -> int | None:
        """Test clips per evaluation: the option, else the profile's default; ``None`` = the whole split."""
        value = self.options.eval_clips
        if value is None:
            profile = PROFILE_REGISTRY.get(self.options.profile)
            value = profile.eval_clips if profile else None
        if value is not None and value < 0:
            raise ConfigError(f"--eval-clips {value}: give a positive number of test clips, or 0 for all of them")
        return value or None

    # -- planning --------------------------------------------------------------------------
    def adapter(self, name: str):
        if name not in self._adapters:
            cls = self.plugins.datasets.get(name)
            self._adapters[name] = cls(**self.options.dataset_options.get(name, {}))
        return self._adapters[name]

    def plan(self) -> tuple[list[ModelUnit], list[Cell], list[dict[str, Any]]]:
        opts = self.options
        get_profile(opts.profile)
        if not opts.seeds:
            raise ConfigError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2")
        repeated = sorted({seed for seed in opts.seeds if opts.seeds.count(seed) > 1})
        if repeated:
            raise ConfigError(f"--seeds {','.join(map(str, opts.seeds))}: seed(s) {', '.join(map(str, repeated))} "
                              f"given twice; each seed is one model, list it once")
        methods = _resolve_names("method", opts.methods, self.plugins)
        metrics = _resolve_names("metric", opts.metrics, self.plugins)
        datasets = _resolve_names("dataset", opts.datasets, self.plugins)
        self.check_metric_options(metrics)
        self.check_option_scopes("--data-option", "dataset", "--dataset", opts.dataset_options, datasets)
        if opts.probes is None:
            opts.probes = default_probes(opts.profile)
        opts.probes = _resolve_names("metric", opts.probes, self.plugins)  # --probes: metric names
        self.check_option_scopes("--set", "method", "--methods", opts.overrides, [*methods, "*"])
        # Every option's key and type before any data is prepared: --set (ranges depend on the dataset
        # family's profile, checked below) and each dataset's --data-option (its adapter refuses them).
        for method in methods:
            apply_overrides(self.plugins.methods.get(method).Config.for_profile(opts.profile), method, opts.overrides)
        for dataset in datasets:
            self.adapter(dataset)
        units, cells, skipped = [], [], []
        for dataset in datasets:
            spec = self.adapter(dataset).spec
            for method in methods:
                cls = self.plugins.methods.get(method)
                config = resolve_config(cls, opts.profile, spec, opts.overrides)
                reason = cls.supports(spec)
                for seed in opts.seeds:
                    unit = make_unit(cls, config, spec, dataset, seed)
                    key = unit.model_key
                    if reason:
                        skipped += [dict(unit=unit, metric=m, reason=reason) for m in metrics]
                        continue
                    units.append(unit)
                    for metric in metrics:
                        mcls = self.plugins.metrics.get(metric)
                        cell_key = content_hash({"model": key, "metric": metric, "metric_version": mcls.version,
                                                 "metric_code": code_digest(mcls),
                                                 "limit": opts.limit,
                                                 **({"eval_clips": self.eval_clips}
                                                    if self.eval_clips else {}),
                                                 **({"options": opts.metric_options[metric]}
                                                    if opts.metric_options.get(metric) else {})}, length=20)
                        cells.append(Cell(unit, metric, mcls.version, cell_key))
        return units, cells, skipped

    def unit(self, dataset: str, method: str, seed: int) -> ModelUnit:
        """One model of this runner's options (profile, ``--set``, dataset options), as ``plan`` builds it."""
        cls = self.plugins.methods.get(method)
        spec = self.adapter(self.plugins.datasets.get(dataset).name).spec
        reason = cls.supports(spec)
        if reason:
            raise ConfigError(f"{method} on {dataset}: {reason}")
        return make_unit(cls, resolve_config(cls, self.options.profile, spec, self.options.overrides), spec, dataset,
                         seed)

    def metric(self, name: str):
        """The metric ``name`` with this run's ``--metric-option`` values and the run's plugins."""
        return self.plugins.metrics.get(name)(**self.options.metric_options.get(name, {})).use_plugins(self.plugins)

    def check_metric_options(self, metrics: list[str]) -> None:
        """Every ``--metric-option`` names a metric of this run and a key (and value) it accepts; the
        metric checks its own options and those of its sub-components (judge, backend)."""
        self.check_option_scopes("--metric-option", "metric", "--metrics", self.options.metric_options, metrics)
        for name in metrics:
            metric = self.metric(name)
            try:
                metric.check_options()
            except ConfigError as exc:
                message = str(exc)
                raise ConfigError(message if message.startswith(("metric option", "--metric-option")) else
                                  f"--metric-option {name}.…: {message}") from None

    def check_option_scopes(self, flag: str, kind: str, selecting_flag: str, options: dict[str, Any],
                            selected: list[str]) -> None:
        """Every ``flag NAME.KEY=VALUE`` names a ``kind`` plugin of this run (a typo would be ignored).

        ``selected`` may hold ``*`` (``--set KEY=VALUE``: every method)."""
        names = [name for name in selected if name != "*"]
        listing = ", ".join(names)
        for scope in options:
            if scope in selected:
                continue
            if scope in self.plugins.registry(kind):
                raise ConfigError(f"{flag} {scope}.…: {kind} {scope!r} is not part of this run "
                                  f"({selecting_flag} {listing}); add it to {selecting_flag} or drop the option")
            close = difflib.get_close_matches(scope, names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{flag} {scope}.…: unknown {kind} {scope!r}.{hint} This run's {kind}s: {listing}")

    # -- execution -------------------------------------------------------------------------
    def run(self) -> "RunInfo":
        opts = self.options
        check_cache_dir()
        units, cells, skipped = self.plan()
        device = resolve_device(opts.device)
        if opts.dry_run:
            self.print_plan(units, cells, skipped, device)
            return RunInfo("dry-run", Path(opts.output), opts, "", units, cells, {}, str(device))
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world > 1:
            return self._run_distributed(units, cells, skipped, device)
        return self._run(units, cells, skipped, device)

    def _run_distributed(self, units, cells, skipped, device) -> "RunInfo":
        """Under ``torchrun``: every rank trains (data parallel); rank 0 alone evaluates and writes."""
        import torch.distributed as dist

        device = init_distributed(device)
        try:
            if dist.get_rank() == 0:
                return self._run(units, cells, skipped, device)
            for unit in units:  # the same decisions, in the same order, as rank 0's _run_unit
                unit_cells = [c for c in cells if c.unit is unit]
                if any(self._cached_cell(c) is None for c in unit_cells):
                    try:
                        self.load_or_train(None, unit, device)
                    except Exception as exc:  # rank 0 records the failure; keep in step with it
                        self._log(f"rank {dist.get_rank()}: {unit.label}: {_describe(exc)}")
            return RunInfo(f"rank{dist.get_rank()}", Path(self.options.output), self.options, "", units, cells, {},
                           str(device))
        finally:
            dist.destroy_process_group()

    def _run(self, units, cells, skipped, device) -> "RunInfo":
        opts = self.options
        output = check_output_dir(opts.output)
        run = RunInfo(run_id=dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], output=output,
                      options=opts, started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      units=units, cells=cells, device=str(device),
                      provenance={"seqbench_version": __version__, "git_sha": git_sha(), "versions": versions(),
                                  "profile": opts.profile, "seeds": opts.seeds, "limit": opts.limit,
                                  "eval_clips": self.eval_clips, "world_size": int(os.environ.get("WORLD_SIZE", "1") or 1),
                                  "argv": sys.argv[1:], "device": str(device)})
        self.run_info = run
        hook = self.plugins.hook
        hook.seqbench_run_started(run=run)
        summary = {"ok": 0, "failed": 0, "not_applicable": 0, "reused": 0, "failures": []}
        results_path = output / RESULTS_FILE
        all_rows: list[dict[str, Any]] = []
        try:
            for item in skipped:
                rows = [self._row(run, item["unit"], item["metric"], None, None, status=NOT_APPLICABLE,
                                  reason=item["reason"])]
                append_rows(results_path, rows)
                all_rows += rows
                summary["not_applicable"] += 1
            for unit in units:
                unit_cells = [c for c in cells if c.unit is unit]
                rows = self._run_unit(run, unit, unit_cells, device, summary, results_path)
                all_rows += rows
        except BaseException:  # Ctrl-C, SIGTERM, a bug: trackers mark the run KILLED, finished rows stay
            summary["interrupted"] = True
            raise
        finally:
            self._write_run_files(run, all_rows, summary)
            hook.seqbench_run_finished(run=run, summary=summary)
        return run

    def _run_unit(self, run: RunInfo, unit: ModelUnit, cells: list[Cell], device, summary, results_path) -> list:
        hook = self.plugins.hook
        cached = {c.cell_key: self._cached_cell(c) for c in cells}
        out_rows: list[dict[str, Any]] = []
        hook.seqbench_model_started(run=run, unit=unit, config=unit.config.to_dict())
        method = None
        missing = [c for c in cells if cached[c.cell_key] is None]
        if missing:
            try:
                method = self.load_or_train(run, unit, device)
            except Exception as exc:  # the failure of one model must not stop the run
                reason = _describe(exc)
                self._record_failure(run, f"{unit.label}: training", exc)
                for cell in missing:
                    rows = [self._row(run, unit, cell.metric, cell, None, status=ERROR, reason=f"training failed: {reason}")]
                    append_rows(results_path, rows)
                    hook.seqbench_cell_finished(run=run, cell=cell, rows=rows)
                    out_rows += rows
                    summary["failed"] += 1
                    summary["failures"].append(f"{unit.label}/{cell.metric}: training failed: {reason}")
                missing = []
                cells = [c for c in cells if cached[c.cell_key] is not None]
        for cell in cells:
            if cached[cell.cell_key] is not None:
                rows = [dict(r, run_id=run.run_id, reused=True) for r in cached[cell.cell_key]]
                summary["reused"] += 1
            else:
                rows = self._evaluate_with_progress(run, cell, method, device)
                if all(r["status"] in (OK, NOT_APPLICABLE) for r in rows):
                    atomic_write_text(self._cell_path(cell), json.dumps(rows))
            for r in rows:
                if r["status"] == ERROR:
                    summary["failures"].append(f"{unit.label}/{cell.metric}: {r['reason']}")
            status = rows[0]["status"] if rows else OK
            summary["failed" if any(r["status"] == ERROR for r in rows) else
                    ("not_applicable" if status == NOT_APPLICABLE else "ok")] += 1
            append_rows(results_path, rows)
            hook.seqbench_cell_finished(run=run, cell=cell, rows=rows)
            out_rows += rows
        self._render_visuals(run, unit, method, device)
        return out_rows

    # -- pictures --------------------------------------------------------------------------
    @staticmethod
    def visuals_dir(run: RunInfo, unit: ModelUnit) -> Path:
        """``runs/<run_id>/visuals/<dataset>/<method>/seed<k>``: one model's pictures."""
        return run.output / "runs" / run.run_id / "visuals" / unit.dataset / unit.method / f"seed{unit.seed}"

    def visual_inputs(self, dataset: str, others: list[str] = ()):
        """The fixed clips every method's pictures of ``dataset`` are made from (zero-shot from ``others``)."""
        from .visuals import visual_inputs

        key = f"{dataset}|{','.join(others)}"
        if key not in self._visual_inputs:
            self._visual_inputs[key] = visual_inputs(self.adapter(dataset), others=[self.adapter(o) for o in others])
        return self._visual_inputs[key]

    def _render_visuals(self, run: RunInfo, unit: ModelUnit, method, device) -> list[Path]:
        """Pictures of the unit's model through every ``seqbench_render_visuals`` implementation.

        Pictures never fail a run: a model that cannot be loaded, inputs that cannot be read or an
        implementation that raises is a warning, and the run goes on.
        """
        hook = self.plugins.hook
        implementations = hook.seqbench_render_visuals.get_hookimpls()
        if not self.options.visuals or not implementations:
            return []
        try:
            if method is None:  # every cell came from the cache: load the model, never train it for pictures
                method = self.load_cached_model(unit, device)
                if method is None:
                    self._log(f"{unit.label}: no trained model in the cache, no pictures")
                    return []
            others = [d for d in run.options.datasets if d != unit.dataset]
            inputs = self.visual_inputs(unit.dataset, others)
        except Exception as exc:
            self._log(f"{unit.label}: pictures skipped: {_describe(exc)}", logging.WARNING)
            return []
        directory = self.visuals_dir(run, unit)
        written: list[Path] = []
        arguments = {"run": run, "unit": unit, "method": method, "inputs": inputs, "directory": directory}
        for implementation in implementations:
            try:
                paths = implementation.function(*[arguments[name] for name in implementation.argnames])
            except Exception as exc:  # a plugin's pictures are never worth the run
                self._log(f"{unit.label}: pictures of plugin {implementation.plugin_name} failed: {_describe(exc)}",
                          logging.WARNING)
                continue
            for path in paths or []:
                written.append(Path(path))
                hook.seqbench_artifact_produced(run=run, unit=unit, path=Path(path), kind="visuals")
        if written:
            self._log(f"{unit.label}: {len(written)} picture(s) in {directory}")
        return written

    # -- models ----------------------------------------------------------------------------
    def model_dir(self, unit: ModelUnit) -> Path:
        return cache_root() / "models" / unit.method / unit.model_key

    def load_or_train(self, run: RunInfo | None, unit: ModelUnit, device):
        """The unit's cached model, or train it; two processes sharing a cache never train one model twice.

        The second waits on the lock file ``.lock`` in the model directory and then loads what the first
        trained. Under ``torchrun`` the ranks train together, so no lock is taken there.
        """
        from .trainer import distributed_context

        workdir = self.model_dir(unit)
        if distributed_context()[1] > 1:
            return self._load_or_train(run, unit, device)
        lock = workdir / ".lock"

        def waiting() -> None:
            self._log(f"{unit.label}: waiting for {lock}: another seqbench process is training this model; "
                      f"its result will be reused")

        with file_lock(lock, on_wait=waiting):
            return self._load_or_train(run, unit, device)

    def load_cached_model(self, unit: ModelUnit, device):
        """The unit's trained model from the cache, in eval mode, or ``None`` if it was never trained."""
        import torch

        if not (self.model_dir(unit) / "model.pt").exists():
            return None
        torch.manual_seed(unit.seed)
        return self._load_state(self.plugins.methods.get(unit.method)(unit.config, unit.spec), unit, device)

    def _load_state(self, method, unit: ModelUnit, device):
        """``method`` with the cached weights loaded; ``None`` (an unreadable file set aside) if there are none."""
        import torch

        final = self.model_dir(unit) / "model.pt"
        if not final.exists():
            return None
        try:
            state = torch.load(final, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or corrupt: set it aside, retrain (resuming from a checkpoint)
            quarantine(final, exc)
            return None
        method.load_state_dict(state)
        method.to(device).eval()
        self._log(f"{unit.label}: reusing cached model {final.parent}")
        return method

    def _load_or_train(self, run: RunInfo | None, unit: ModelUnit, device):
        import torch

        from .data import carve_validation
        from .trainer import Trainer, distributed_context

        lead = distributed_context()[0] == 0
        cls = self.plugins.methods.get(unit.method)
        adapter = self.adapter(unit.dataset)
        torch.manual_seed(unit.seed)
        method = cls(unit.config, unit.spec)
        workdir = self.model_dir(unit)
        final = workdir / "model.pt"
        if not self.options.retrain:
            cached = self._load_state(method, unit, device)
            if cached is not None:
                return cached
        for partial in ("checkpoint.pt", "best.pt"):  # the trainer resumes from these: they must be readable
            if lead and (workdir / partial).exists() and not zip_readable(workdir / partial):
                quarantine(workdir / partial, OSError("not a complete torch.save archive"))
        if self.options.retrain and lead:
            for stale in ("model.pt", "checkpoint.pt", "best.pt"):
                (workdir / stale).unlink(missing_ok=True)
        train, val = carve_validation(adapter.split("train"), unit.config.val_fraction, seed=0)
        hook = self.plugins.hook

        progress: list[ProgressLog] = []  # created once the trainer knows its schedule

        def on_log(step: int, values: dict[str, float]) -> None:
            hook.seqbench_train_progress(run=run, unit=unit, step=step, values=values)
            if progress and "loss" in values:
                progress[0].update(step, loss=values["loss"])

        probe = None
        if lead and self.options.probes:
            probe, left_out = build_probe_set(self.options.probes, self.plugins.metrics, method, unit.spec, train, val,
                                              device=device, seed=unit.seed, profile=self.options.profile,
                                              options=self.options.metric_options, registry=self.plugins)
            for name, reason in left_out.items():
                self._log(f"{unit.label}: no {name} learning curve: {reason}")
        trainer = Trainer(method, train, val, device=device, seed=unit.seed, workdir=workdir,
                          progress=self.options.progress, desc=unit.label, on_log=on_log if lead else None,
                          probe=probe)
        if not self.options.progress:  # no progress bar (a batch log): steady progress lines instead
            progress.append(ProgressLog(f"{unit.label}: training", trainer.steps))
        result = trainer.fit()
        if not lead:
            return method
        from .utils import atomic_torch_save

        atomic_torch_save(method.state_dict(), final)
        meta = {"method": unit.method, "method_version": unit.method_version, "dataset": unit.dataset,
                "fingerprint": unit.spec.fingerprint, "seed": unit.seed, "config": unit.config.to_dict(),
                "seqbench_version": __version__, "git_sha": git_sha(), "device": str(device),
                "steps": result.steps, "best_step": result.best_step, "best_val_loss": result.best_val,
                "selected_weights": result.selected, "probe_s": result.probe_s,
                "curve": summarise_history(result.history),
                "train_wall_s": result.wall_s, "resumed_from": result.resumed_from,
                "train_clips": len(train), "val_clips": len(val)}
        atomic_write_text(workdir / "meta.json", json.dumps(meta, indent=2))
        # The learning curves beside the model: training losses, validation losses (live and EMA), the
        # method's validation diagnostics (usage/...) and the probe metrics (curve/...) at every logged step.
        atomic_write_text(workdir / HISTORY_FILE, json.dumps(result.history, default=float))
        hook.seqbench_train_progress(run=run, unit=unit, step=result.steps,
                                     values={"train_wall_s": result.wall_s, "best_step": result.best_step})
        self._log(f"{unit.label}: trained {result.steps} steps in {result.wall_s:.1f}s "
                  f"(best val loss {result.best_val} at step {result.best_step}, resumed from {result.resumed_from})")
        return method

    # -- metrics ---------------------------------------------------------------------------
    def _evaluate_with_progress(self, run: RunInfo, cell: Cell, method, device) -> list[dict[str, Any]]:
        """Evaluate one cell, saying so: a line before, a heartbeat while it runs, a line with the run's ETA after."""
        label = f"{cell.unit.label}/{cell.metric}"
        counter = run.state.setdefault("evaluation", {"done": 0, "seconds": 0.0,
                                                      "total": sum(self._cached_cell(c) is None for c in run.cells)})
        self._log(f"{label}: evaluating (cell {counter['done'] + 1}/{counter['total']} to evaluate)")
        start = time.monotonic()
        with heartbeat(lambda elapsed: f"{label}: still evaluating, elapsed {format_duration(elapsed)}"):
            rows = self._evaluate_cell(run, cell, method, device)
        seconds = time.monotonic() - start
        counter["done"] += 1
        counter["seconds"] += seconds
        left = counter["total"] - counter["done"]
        eta = format_duration(counter["seconds"] / counter["done"] * left)
        self._log(f"{label}: evaluated in {format_duration(seconds)}; {counter['done']}/{counter['total']} cells, "
                  f"evaluation ETA {eta} (not counting training)")
        return rows

    def _evaluate_cell(self, run: RunInfo, cell: Cell, method, device) -> list[dict[str, Any]]:
        import numpy as np
        import torch

        from .data import carve_validation
        from .metric import EvalContext, EvalData, evaluation_subset

        unit = cell.unit
        metric = self.metric(cell.metric)
        reason = metric.applicable(method, unit.spec)
        if reason:
            return [self._row(run, unit, cell.metric, cell, None, status=NOT_APPLICABLE, reason=reason)]
        adapter = self.adapter(unit.dataset)
        train, _ = carve_validation(adapter.split("train"), unit.config.val_fraction, seed=0)
        test = adapter.split("test")
        subset = evaluation_subset(unit.spec.fingerprint, len(test), self.eval_clips)
        if subset is not None:
            test = test.subset(subset)
        if self.options.limit:
            test = test.subset(np.arange(min(self.options.limit, len(test))))
        ctx = EvalContext(device=device, seed=unit.seed, limit=self.options.limit,
                          cache_dir=cache_root(), registry=self.plugins, model_dir=self.model_dir(unit),
                          profile=self.options.profile)
        start = time.perf_counter()
        try:
            method.eval()
            with torch.no_grad():
                values = metric.evaluate(method, EvalData(unit.spec, train, test), ctx)
        except NotApplicable as exc:
            return [self._row(run, unit, cell.metric, cell, None, status=NOT_APPLICABLE, reason=str(exc))]
        except Exception as exc:
            self._record_failure(run, f"{unit.label}/{cell.metric}", exc)
            return [self._row(run, unit, cell.metric, cell, None, status=ERROR, reason=_describe(exc))]
        duration = time.perf_counter() - start
        rows = [self._row(run, unit, cell.metric, cell, key, status=NOT_APPLICABLE, reason=reason)
                for key, reason in ctx.not_applicable.items()]
        for key, value in values.items():
            mv = value if isinstance(value, MetricValue) else MetricValue(float(value))
            if mv.value is None or not math.isfinite(float(mv.value)):
                reason = (f"{cell.metric} returned {mv.value} for {key!r}: a non-finite value is a failure of the "
                          f"metric (or of the model), not a score")
                rows.append(self._row(run, unit, cell.metric, cell, key, status=ERROR, reason=reason,
                                      duration=duration))
                continue
            rows.append(self._row(run, unit, cell.metric, cell, key, value=mv,
                                  higher_is_better=metric.output(key).higher_is_better, duration=duration))
        return rows

    def _row(self, run: RunInfo, unit: ModelUnit, metric: str, cell: Cell | None, key: str | None,
             value: MetricValue | None = None, *, status: str = OK, reason: str | None = None,
             higher_is_better: bool | None = None, duration: float | None = None) -> dict[str, Any]:
        mcls = self.plugins.metrics.get(metric)
        curve = self.curve_summary(unit)
        return {
            "run_id": run.run_id, "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "dataset": unit.dataset, "method": unit.method, "seed": unit.seed, "metric": metric, "key": key,
            "value": None if value is None else value.value, "higher_is_better": higher_is_better,
            "n": None if value is None else value.n, "ci_low": None if value is None else value.ci_low,
            "ci_high": None if value is None else value.ci_high, "status": status, "reason": reason,
            "backend": None if value is None else value.backend, "profile": self.options.profile,
            "limit": self.options.limit, "eval_clips": self.eval_clips, "metric_version": mcls.version, "method_version": unit.method_version,
            "dataset_fingerprint": unit.spec.fingerprint, "config_hash": unit.config_hash,
            "model_key": unit.model_key, "cell_key": None if cell is None else cell.cell_key,
            "seqbench_version": __version__, "git_sha": run.provenance["git_sha"], "device": run.device,
            "duration_s": duration, "method_distribution": self.plugins.methods.distribution(unit.method),
            "metric_distribution": self.plugins.metrics.distribution(metric),
            # whether the model was on its plateau (seqbench.probes): None = no learning curve to tell
            "converged": curve.get("converged"), "plateau_change": curve.get("change"),
            "plateau_probe": curve.get("key"),
        }

    def curve_summary(self, unit: ModelUnit) -> dict[str, Any]:
        """The plateau summary the trainer's probes left in the model's ``meta.json`` (``{}`` if none)."""
        memo = self._curve_summaries
        if unit.model_key not in memo:
            try:
                memo[unit.model_key] = json.loads((self.model_dir(unit) / "meta.json").read_text()).get("curve") or {}
            except (OSError, json.JSONDecodeError):
                return {}  # not trained yet: ask again later
        return memo[unit.model_key]

    def _cell_path(self, cell: Cell) -> Path:
        return cache_root() / "cells" / f"{cell.cell_key}.json"

    def _cached_cell(self, cell: Cell, *, repair: bool = True) -> list[dict[str, Any]] | None:
        """The cell's cached rows; an unreadable entry is moved aside (``repair``) and recomputed."""
        path = self._cell_path(cell)
        if self.options.retrain or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            if repair:
                quarantine(path, exc)
            return None

    # -- outputs ---------------------------------------------------------------------------
    @staticmethod
    def failure_log(run: RunInfo) -> Path:
        """``runs/<run_id>/failures.log``: the full traceback of every failed cell of the run."""
        return run.output / "runs" / run.run_id / FAILURE_LOG

    def _record_failure(self, run: RunInfo, label: str, exc: BaseException) -> None:
        """Append the traceback to the run's failure log and say in one line where it is."""
        path = self.failure_log(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"=== {label} failed at {stamp}\n{''.join(traceback.format_exception(exc))}\n")
        self._log(f"{label} failed: {_describe(exc)} (traceback in {path})", logging.WARNING)


    def _write_run_files(self, run: RunInfo, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        from .leaderboard import write_leaderboards

        hook = self.plugins.hook
        run_dir = run.output / "runs" / run.run_id
        meta = {"run_id": run.run_id, "started": run.started,
                "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "summary": {k: v for k, v in summary.items()}, **run.provenance,
                "plugins": self.plugin_distributions(run),
                "methods": run.options.methods, "metrics": run.options.metrics, "datasets": run.options.datasets}
        atomic_write_text(run_dir / "run.json", json.dumps(meta, indent=2, default=str))
        append_rows(run_dir / RESULTS_FILE, rows)  # this run's rows alone, for trackers
        hook.seqbench_artifact_produced(run=run, unit=None, path=run_dir / RESULTS_FILE, kind="results")
        hook.seqbench_artifact_produced(run=run, unit=None, path=run_dir / "run.json", kind="results")
        if rows:
            try:
                paths = write_leaderboards(rows, run.output / "leaderboards", plugins=self.plugins)
            except SeqbenchError as exc:
                self._log(f"leaderboard not written: {exc}")
                paths = []
            for path in paths:
                hook.seqbench_artifact_produced(run=run, unit=None, path=path, kind="leaderboard")
            self._write_figures(run, rows)

    def _write_figures(self, run: RunInfo, rows: list[dict[str, Any]]) -> None:
        """Metrics and learning-curve PNGs beside the leaderboards, logged to the parent run; never fatal."""
        from .leaderboard import headline_keys
        from .plots import write_dataset_figures

        try:
            paths = write_dataset_figures(rows, run.output / "leaderboards", headlines=headline_keys(self.plugins))
        except Exception as exc:  # figures are never worth the run
            self._log(f"figures not drawn: {_describe(exc)}", logging.WARNING)
            return
        for path in paths:
            self.plugins.hook.seqbench_artifact_produced(run=run, unit=None, path=path, kind="figures")

    def plugin_distributions(self, run: RunInfo) -> dict[str, dict[str, str]]:
        """``{kind: {name: "DISTRIBUTION VERSION"}}`` of every plugin this run used (for run.json)."""
        used = {"methods": (self.plugins.methods, run.options.methods),
                "metrics": (self.plugins.metrics, run.options.metrics),
                "datasets": (self.plugins.datasets, run.options.datasets)}
        return {kind: {name: registry.distribution(name) for name in names if name in registry}
                for kind, (registry, names) in used.items()}

    def print_plan(self, units, cells, skipped, device) -> None:
        clips = f"a fixed subset of {self.eval_clips} test clips" if self.eval_clips else "the whole test split"
        print(f"plan: {len(units)} model(s), {len(cells)} cell(s) on {device}, profile {self.options.profile}, "
              f"scored on {clips}")
        for unit in units:
            cached = (self.model_dir(unit) / "model.pt").exists()
            steps = unit.config.steps if unit.config.epochs is None else f"{unit.config.epochs} epochs"
            print(f"  {unit.label}: {steps} steps, batch {unit.config.batch_size}, "
                  f"{'cached' if cached else 'to train'} [{unit.model_key}]")
            for cell in cells:
                if cell.unit is unit:
                    print(f"    - {cell.metric} (v{cell.metric_version}){' cached' if self._cached_cell(cell, repair=False) else ''}")
        for item in skipped:
            print(f"  {item['unit'].label}/{item['metric']}: not applicable ({item['reason']})")

    def _log(self, message: str, level: int = logging.INFO) -> None:
        logger.log(level, message)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
