"""Executing a run: :class:`Runner` trains or reuses each model, evaluates its cells and records them.

The parts are apart: :mod:`.plan` (the cells, every option checked first), :mod:`.models` (the model
cache and training), :mod:`.evaluate` (cells and their cache), :mod:`.record` (rows and run files).
The runner sequences them, isolates failures (a failing model or cell is recorded, the run goes on)
and fires the run-event hooks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..log import configure_logging, logger
from ..plugins import Plugins, load_plugins
from ..results import ERROR, NOT_APPLICABLE, OK, RESULTS_FILE
from ..run_types import Cell, ModelUnit, RunInfo, RunOptions
from ..utils import check_cache_dir, git_sha, resolve_device, versions, writable_dir
from .evaluate import CellCache, Evaluator
from .models import ModelStore, init_distributed
from .plan import Plan, Planner
from .record import Recorder, describe, failure_log

if TYPE_CHECKING:
    import pandas as pd


def check_output_dir(path: Path) -> Path:
    """The output directory, created and checked writable (a usage error naming the fix otherwise)."""
    return writable_dir(Path(path).expanduser(), what="output directory", fix="choose another with --output DIR")


class Runner:
    """Executes one ``seqbench run`` invocation."""

    def __init__(self, options: RunOptions, plugins: Plugins | None = None):
        self.options = options
        configure_logging()
        self.plugins = plugins or load_plugins(options.plugins)
        self.planner = Planner(options, self.plugins)
        self.models = ModelStore(self.planner)
        self.cells = CellCache(options)
        self.recorder = Recorder(self.planner, self.models)
        self.evaluator = Evaluator(self.planner, self.models, self.cells, self.recorder)
        self._visual_inputs: dict[str, Any] = {}

    # -- the parts' public faces (the CLI, plots and benchmarks call these) ---------------------
    @property
    def eval_clips(self) -> int | None:
        """Test clips per evaluation: the option, else the profile's default; ``None`` = the whole split."""
        return self.planner.eval_clips

    def adapter(self, name: str):
        """The dataset's adapter with this run's options."""
        return self.planner.adapter(name)

    def plan(self) -> Plan:
        """The run's plan, every option checked (see :meth:`Planner.plan`)."""
        return self.planner.plan()

    def unit(self, dataset: str, method: str, seed: int) -> ModelUnit:
        """One model of this runner's options (profile, ``--set``, dataset options), as ``plan`` builds it."""
        return self.planner.unit(dataset, method, seed)

    def model_dir(self, unit: ModelUnit) -> Path:
        """The unit's folder in the model cache."""
        return self.models.model_dir(unit)

    def unit_for_rows(self, dataset: str, method: str, rows: "pd.DataFrame",
                      seed: int | None = None) -> tuple[ModelUnit, str | None]:
        """The model that result ``rows`` of one method name (``seed``, default their lowest), and a note if
        it is not the one this code would build.

        Rows made on other data than these dataset options give (another fingerprint, e.g. a run made with
        ``--data-option sprites.size=32`` redrawn without it) raise ``LookupError`` naming the option to pass.
        When this code builds another ``model_key`` only because the method's source changed (same
        config hash and method version: a refactor never bumps the version), the rows' model is
        returned with a note. Raises ``LookupError`` (with the reason) when the rows name no model, or
        one of another config or method version.
        """
        seed = int(rows["seed"].min()) if seed is None else int(seed)
        unit = self.unit(dataset, method, seed)
        seed_rows = rows[rows["seed"] == seed]
        keys = seed_rows["model_key"].dropna()
        if keys.empty:
            raise LookupError("the rows name no model")
        made_on = (set(seed_rows["dataset_fingerprint"].dropna().astype(str))
                   if "dataset_fingerprint" in seed_rows.columns else set())
        if made_on and unit.spec.fingerprint not in made_on:
            raise LookupError(f"the rows were made on {dataset} data with fingerprint {', '.join(sorted(made_on))}, "
                              f"these dataset options give {unit.spec.fingerprint}: pass the --data-option the run "
                              f"was made with (its run.json argv holds it)")
        if unit.model_key in set(keys):
            return unit, None
        same_version = seed_rows[seed_rows["method_version"].astype(str) == str(unit.method_version)]
        same_config_keys = same_version[same_version["config_hash"] == unit.config_hash]["model_key"].dropna()
        if not same_config_keys.empty:
            return (dataclasses.replace(unit, model_key=str(same_config_keys.iloc[0])),
                    f"model {same_config_keys.iloc[0]} (the rows'), trained by another revision of the method's source with this "
                    f"config and version")
        pairs = list(same_version[["model_key", "config_hash"]].dropna().drop_duplicates().itertuples(index=False))
        for key, config_hash in pairs:  # options added since, at their defaults?
            candidate = dataclasses.replace(unit, model_key=str(key))
            added = self._options_added_since(candidate, str(config_hash))
            if added is not None:
                return candidate, (f"model {key} (the rows'), trained with this config and version before the "
                                   f"options {', '.join(added) or '-'} were added (here at their defaults)")
        current = unit.config.to_dict()
        for key, config_hash in pairs:  # another config of this version (e.g. a budget changed since): its own
            candidate = self._unit_with_stored_config(dataclasses.replace(unit, model_key=str(key)), str(config_hash))
            if candidate is not None:
                changed = {k: v for k, v in candidate.config.to_dict().items() if current.get(k) != v}
                return candidate, (f"model {key} (the rows'), trained with another config of this method version: "
                                   + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))
        raise LookupError(f"the rows name model {', '.join(map(str, set(keys)))} of another config or method "
                          f"version; this code builds {unit.model_key}")

    def _unit_with_stored_config(self, unit: ModelUnit, config_hash: str) -> ModelUnit | None:
        """``unit`` rebuilt with the config stored beside its cached model ``unit.model_key``, if that config
        is the one the rows hashed (``config_hash``) and every key of it is a setting of this code's config;
        else ``None``. The weights are loaded into the architecture that config describes."""
        from ..utils import content_hash

        meta = self.models.stored(unit).read_meta() or {}
        stored = meta.get("config")
        if not isinstance(stored, dict) or content_hash(stored) != config_hash:
            return None
        if set(stored) - set(unit.config.to_dict()):
            return None
        changes = {k: tuple(v) if isinstance(getattr(unit.config, k), tuple) and isinstance(v, list) else v
                   for k, v in stored.items()}
        config = dataclasses.replace(unit.config, **changes)
        if content_hash(config.to_dict()) != config_hash:  # a key this code adds, away from the stored run
            return None
        return dataclasses.replace(unit, config=config, config_hash=config_hash)

    def _options_added_since(self, unit: ModelUnit, config_hash: str) -> list[str] | None:
        """The config keys this code has and the cached model ``unit.model_key`` was trained without, if
        that model's stored config is the one the rows hashed (``config_hash``), every key they share has
        the same value here, and the new ones are at the method's defaults; else ``None``."""
        import json

        from ..utils import content_hash

        meta = self.models.stored(unit).read_meta() or {}
        stored = meta.get("config")
        if not isinstance(stored, dict) or content_hash(stored) != config_hash:
            return None
        current = json.loads(json.dumps(unit.config.to_dict(), default=str))
        defaults = json.loads(json.dumps(type(unit.config)().to_dict(), default=str))
        if set(stored) - set(current) or any(current[k] != v for k, v in stored.items()):
            return None
        added = sorted(set(current) - set(stored))
        return added if all(current[k] == defaults.get(k) for k in added) else None

    def load_or_train(self, run: RunInfo | None, unit: ModelUnit, device):
        """The unit's cached model, or train it (see :meth:`ModelStore.load_or_train`)."""
        return self.models.load_or_train(run, unit, device)

    def load_cached_model(self, unit: ModelUnit, device):
        """The unit's trained model from the cache, in eval mode, or ``None`` if it was never trained."""
        return self.models.load_cached_model(unit, device)

    def curve_summary(self, unit: ModelUnit) -> dict[str, Any]:
        """The plateau summary of the unit's learning curves (``{}`` if none)."""
        return self.models.curve_summary(unit)

    @staticmethod
    def failure_log(run: RunInfo) -> Path:
        """``runs/<run_id>/failures.log``: the full traceback of every failed cell of the run."""
        return failure_log(run)

    def plugin_distributions(self, run: RunInfo) -> dict[str, dict[str, str]]:
        """``{kind: {name: "DISTRIBUTION VERSION"}}`` of every plugin this run used (for run.json)."""
        return self.recorder.plugin_distributions(run)

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
                if any(self.cells.get(c) is None for c in unit_cells):
                    try:
                        self.models.load_or_train(None, unit, device)
                    except Exception as exc:  # rank 0 records the failure; keep in step with it
                        logger.info(f"rank {dist.get_rank()}: {unit.label}: {describe(exc)}")
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
                                  "argv": list(opts.command) if opts.command is not None else sys.argv[1:],
                                  "device": str(device)})
        self.run_info = run
        hook = self.plugins.hook
        hook.seqbench_run_started(run=run)
        summary = {"ok": 0, "failed": 0, "not_applicable": 0, "reused": 0, "failures": []}
        results_path = output / RESULTS_FILE
        all_rows: list[dict[str, Any]] = []
        try:
            for item in skipped:
                rows = [self.recorder.row(run, item["unit"], item["metric"], None, None, status=NOT_APPLICABLE,
                                  reason=item["reason"])]
                self.recorder.append(results_path, rows)
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
            self.recorder.write_run_files(run, all_rows, summary)
            hook.seqbench_run_finished(run=run, summary=summary)
        return run

    def _run_unit(self, run: RunInfo, unit: ModelUnit, cells: list[Cell], device, summary, results_path) -> list:
        hook = self.plugins.hook
        cached = {c.cell_key: self.cells.get(c) for c in cells}
        out_rows: list[dict[str, Any]] = []
        hook.seqbench_model_started(run=run, unit=unit, config=unit.config.to_dict())
        method = None
        missing = [c for c in cells if cached[c.cell_key] is None]
        if missing:
            try:
                method = self.models.load_or_train(run, unit, device)
            except Exception as exc:  # the failure of one model must not stop the run
                reason = describe(exc)
                self.recorder.record_failure(run, f"{unit.label}: training", exc)
                for cell in missing:
                    rows = [self.recorder.row(run, unit, cell.metric, cell, None, status=ERROR, reason=f"training failed: {reason}")]
                    self.recorder.append(results_path, rows)
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
                rows = self.evaluator.evaluate(run, cell, method, device)
                if all(r["status"] in (OK, NOT_APPLICABLE) for r in rows):
                    self.cells.put(cell, rows)
            for r in rows:
                if r["status"] == ERROR:
                    summary["failures"].append(f"{unit.label}/{cell.metric}: {r['reason']}")
            status = rows[0]["status"] if rows else OK
            summary["failed" if any(r["status"] == ERROR for r in rows) else
                    ("not_applicable" if status == NOT_APPLICABLE else "ok")] += 1
            self.recorder.append(results_path, rows)
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
        from ..visuals import visual_inputs

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
                method = self.models.load_cached_model(unit, device)
                if method is None:
                    logger.info(f"{unit.label}: no trained model in the cache, no pictures")
                    return []
            others = [d for d in run.options.datasets if d != unit.dataset]
            inputs = self.visual_inputs(unit.dataset, others)
        except Exception as exc:
            logger.warning(f"{unit.label}: pictures skipped: {describe(exc)}")
            return []
        directory = self.visuals_dir(run, unit)
        written: list[Path] = []
        arguments = {"run": run, "unit": unit, "method": method, "inputs": inputs, "directory": directory}
        for implementation in implementations:
            try:
                paths = implementation.function(*[arguments[name] for name in implementation.argnames])
            except Exception as exc:  # a plugin's pictures are never worth the run
                logger.warning(f"{unit.label}: pictures of plugin {implementation.plugin_name} failed: "
                               f"{describe(exc)}")
                continue
            for path in paths or []:
                written.append(Path(path))
                hook.seqbench_artifact_produced(run=run, unit=unit, path=Path(path), kind="visuals")
        if written:
            logger.info(f"{unit.label}: {len(written)} picture(s) in {directory}")
        return written

    # -- dry run ---------------------------------------------------------------------------
    def print_plan(self, units, cells, skipped, device) -> None:
        """``--dry-run``: the plan on stdout (the command's output, not a log message)."""
        clips = f"a fixed subset of {self.eval_clips} test clips" if self.eval_clips else "the whole test split"
        print(f"plan: {len(units)} model(s), {len(cells)} cell(s) on {device}, profile {self.options.profile}, "
              f"scored on {clips}")
        for unit in units:
            cached = (self.models.model_dir(unit) / "model.pt").exists()
            steps = unit.config.steps if unit.config.epochs is None else f"{unit.config.epochs} epochs"
            print(f"  {unit.label}: {steps} steps, batch {unit.config.batch_size}, "
                  f"{'cached' if cached else 'to train'} [{unit.model_key}]")
            for cell in cells:
                if cell.unit is unit:
                    print(f"    - {cell.metric} (v{cell.metric_version}){' cached' if self.cells.get(cell, repair=False) else ''}")
        for item in skipped:
            print(f"  {item['unit'].label}/{item['metric']}: not applicable ({item['reason']})")
