"""Trained models: the content-addressed model cache, training on a miss, and distributed setup.

A model lives under ``<cache>/models/<method>/<model_key>/`` (``model.pt``, ``meta.json`` and the
learning curves in ``history.json``); two processes sharing a cache never train one model twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..log import ProgressLog, logger
from ..model_store import StoredModel
from ..plugins import Plugins
from ..probes import build_probe_set, summarise_history
from ..run_types import ModelUnit, RunInfo, RunOptions
from ..utils import atomic_write_text, cache_root, git_sha, quarantine, zip_readable
from .plan import Planner

HISTORY_FILE = "history.json"  # beside a cached model.pt: the training history (learning curves)


def models_cache() -> Path:
    """``<cache>/models``: every trained model, one folder per ``<method>/<model_key>`` (:func:`cached_model_dir`)."""
    return cache_root() / "models"


def cached_model_dir(method: str, model_key: str) -> Path:
    """``<cache>/models/<method>/<model_key>``: the one place the model cache's layout is spelled out (result
    rows name a model by ``method`` and ``model_key`` alone)."""
    return models_cache() / method / str(model_key)

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


class ModelStore:
    """The run's trained models: from the cache, or trained now (with probes) and cached."""

    def __init__(self, planner: Planner):
        self.planner = planner
        self.options: RunOptions = planner.options
        self.plugins: Plugins = planner.plugins
        self._curve_summaries: dict[str, dict[str, Any]] = {}

    def model_dir(self, unit: ModelUnit) -> Path:
        """``<cache>/models/<method>/<model_key>``: everything cached about one trained model."""
        return cached_model_dir(unit.method, unit.model_key)

    def stored(self, unit: ModelUnit) -> StoredModel:
        """The unit's ``model.pt`` + ``meta.json`` (:class:`~seqbench.model_store.StoredModel`), locked by
        ``.lock`` in the same folder, beside the trainer's checkpoints and the learning curves."""
        workdir = self.model_dir(unit)
        return StoredModel(workdir, workdir / ".lock")

    def load_or_train(self, run: RunInfo | None, unit: ModelUnit, device):
        """The unit's cached model, or train it; two processes sharing a cache never train one model twice.

        The second waits on the lock file ``.lock`` in the model directory and then loads what the first
        trained. Under ``torchrun`` the ranks train together, so no lock is taken there.
        """
        from ..trainer import distributed_context

        stored = self.stored(unit)
        if distributed_context()[1] > 1:
            return self._load_or_train(run, unit, device)

        def waiting() -> None:
            logger.info(f"{unit.label}: waiting for {stored.lock_path}: another seqbench process is training this "
                        f"model; its result will be reused")

        with stored.lock(waiting):
            return self._load_or_train(run, unit, device)

    def load_cached_model(self, unit: ModelUnit, device):
        """The unit's trained model from the cache, in eval mode, or ``None`` if it was never trained."""
        import torch

        if not self.stored(unit).exists():
            return None
        torch.manual_seed(unit.seed)
        return self._load_state(self.plugins.methods.get(unit.method)(unit.config, unit.spec), unit, device)

    def _load_state(self, method, unit: ModelUnit, device):
        """``method`` with the cached weights loaded; ``None`` (an unreadable file set aside) if there are none."""
        stored = self.stored(unit)
        state = stored.load_state()  # None: never trained, or unreadable and set aside (retrain, resuming)
        if state is None:
            return None
        method.load_state_dict(state)
        method.to(device).eval()
        logger.info(f"{unit.label}: reusing cached model {stored.folder}")
        return method

    def _load_or_train(self, run: RunInfo | None, unit: ModelUnit, device):
        import torch

        from ..data import carve_validation
        from ..trainer import Trainer, distributed_context

        lead = distributed_context()[0] == 0
        cls = self.plugins.methods.get(unit.method)
        adapter = self.planner.adapter(unit.dataset)
        torch.manual_seed(unit.seed)
        method = cls(unit.config, unit.spec)
        workdir = self.model_dir(unit)
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
                logger.info(f"{unit.label}: no {name} learning curve: {reason}")
        trainer = Trainer(method, train, val, device=device, seed=unit.seed, workdir=workdir,
                          progress=self.options.progress, desc=unit.label, on_log=on_log if lead else None,
                          probe=probe)
        if not self.options.progress:  # no progress bar (a batch log): steady progress lines instead
            progress.append(ProgressLog(f"{unit.label}: training", trainer.steps))
        result = trainer.fit()
        if not lead:
            return method
        meta = {"method": unit.method, "method_version": unit.method_version, "dataset": unit.dataset,
                "fingerprint": unit.spec.fingerprint, "seed": unit.seed, "config": unit.config.to_dict(),
                "seqbench_version": __version__, "git_sha": git_sha(), "device": str(device),
                "steps": result.steps, "best_step": result.best_step, "best_val_loss": result.best_val,
                "selected_weights": result.selected, "probe_s": result.probe_s,
                "probe_items": probe.items if probe is not None else None,
                "curve": summarise_history(result.history),
                "train_wall_s": result.wall_s, "resumed_from": result.resumed_from,
                "train_clips": len(train), "val_clips": len(val)}
        self.stored(unit).publish(method.state_dict(), meta)
        # The learning curves beside the model: training losses, validation losses (live and EMA), the
        # method's validation diagnostics (usage/...) and the probe metrics (curve/...) at every logged step.
        atomic_write_text(workdir / HISTORY_FILE, json.dumps(result.history, default=float))
        hook.seqbench_train_progress(run=run, unit=unit, step=result.steps,
                                     values={"train_wall_s": result.wall_s, "best_step": result.best_step})
        logger.info(f"{unit.label}: trained {result.steps} steps in {result.wall_s:.1f}s "
                  f"(best val loss {result.best_val} at step {result.best_step}, resumed from {result.resumed_from})")
        return method

    def _late_loss_spikes(self, unit: ModelUnit) -> int | None:
        """:func:`~seqbench.probes.late_loss_spikes` of a model trained before summaries carried it."""
        import json

        from ..probes import late_loss_spikes

        try:
            history = json.loads((self.stored(unit).folder / "history.json").read_text())
        except (OSError, ValueError):
            return None
        return late_loss_spikes(history)

    def curve_summary(self, unit: ModelUnit) -> dict[str, Any]:
        """The plateau summary the trainer's probes left in the model's ``meta.json`` (``{}`` if none)."""
        memo = self._curve_summaries
        if unit.model_key not in memo:
            meta = self.stored(unit).read_meta()
            if meta is None:
                return {}  # not trained yet: ask again later
            curve = dict(meta.get("curve") or {})
            if curve and meta.get("steps"):
                from ..probes import late_lr_scale

                # derived from the stored config here, so models trained before it existed get it too
                curve["lr_scale"] = late_lr_scale(unit.config, int(meta["steps"]))
            if curve and "late_loss_spikes" not in curve:
                curve["late_loss_spikes"] = self._late_loss_spikes(unit)
            memo[unit.model_key] = curve
        return memo[unit.model_key]
