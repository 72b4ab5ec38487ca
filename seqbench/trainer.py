"""The training loop the framework owns, so every model is trained under one protocol.

One loop for everything that learns: the methods (:class:`Trainer`), and through :func:`fit_model`
the evaluation models the metrics use (judges, learned backends) and the VQ autoencoder of the latent
methods.

Device placement, seeding, the optimizer and scheduler from the method's config, gradient
clipping, EMA, mixed precision on CUDA, a NaN/inf guard, periodic checkpoints with exact resume
(the batch order is a pure function of (seed, step), RNG states are saved), and model selection
on a validation split carved from train - never on test.

EMA (``ema_decay``) is :class:`torch.optim.swa_utils.AveragedModel` over the *parameters only*,
with the decay warmed up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates. Version 1 of
the loop started the average at the initial weights with the full decay and averaged buffers too:
at step 3000 with decay 0.999, 5% of the evaluated weights were still the initialisation (61% at
the step-500 checkpoint), and a VQ codebook (a buffer) was averaged into one its decoder never saw.
Buffers (codebooks, BatchNorm statistics) always come from the live model. At every validation
point both the live and the EMA weights are validated and the better one is kept; which one was
selected is recorded (:attr:`TrainResult.selected`). Methods may also report diagnostics at
validation (:meth:`~seqbench.method.Method.validation_diagnostics`, logged as ``usage/...``) and
ask for per-group gradient clipping (:meth:`~seqbench.method.Method.grad_clip_groups`).

Data parallel under ``torchrun`` (:func:`distributed_context`): every rank draws the same global
batch order and takes its ``rank::world`` share, gradients are averaged across ranks before
clipping (so a mean-reduced loss gives the single-process update), buffers (BatchNorm statistics)
follow rank 0, and only rank 0 validates, logs and writes checkpoints. Methods need no change:
the framework never calls ``forward``, so ``DistributedDataParallel`` is not used.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .config import MethodConfig
from .data import SplitData, carve_validation
from .errors import ConfigError, TrainingDivergedError
from .log import ProgressLog, format_duration, logger
from .method import Method
from .utils import atomic_torch_save

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
# Clips of the validation split the method's validation diagnostics see: a fixed draw (seed 0) in
# drawn order, never the first ones - splits are stored grouped by identity, and the factor-usage
# diagnostic pairs each clip with its neighbour in the batch (:func:`seqbench.nn.factor_usage`).
DIAGNOSTIC_CLIPS = 64


def diagnostic_items(n_val: int) -> np.ndarray:
    """Indices of the validation clips the diagnostics see: ``DIAGNOSTIC_CLIPS`` drawn with seed 0, unsorted.

    Why unsorted and drawn: the first 64 clips of synthetic-sprites' validation split are 7 characters
    in 9 motions each, so rolling the batch by one handed most clips the static code of the *same*
    character and "static shuffled" measured the motion the static code carries, not appearance.
    """
    return np.random.default_rng(0).permutation(n_val)[:DIAGNOSTIC_CLIPS]


# Rank r seeds its RNG with seed + RANK_SEED_STRIDE * r: ranks draw different noise, rank 0 the
# single-process stream.
RANK_SEED_STRIDE = 100_003


def distributed_context() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised ``torch.distributed`` group; ``(0, 1)`` otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@dataclass
class TrainResult:
    steps: int
    best_step: int
    best_val: float | None
    wall_s: float
    resumed_from: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    selected: str = "live"  # which weights model selection kept: "live" or "ema"
    probe_s: float = 0.0  # seconds of wall_s spent in the probe set


def ema_decay_at(decay: float, updates: int) -> float:
    """The warmed-up EMA decay after ``updates`` averaging steps: ``min(decay, (1 + n) / (10 + n))``.

    Early weights are forgotten quickly (0.1 after the first update, 0.5 after 8, 0.9 after 80), so
    the average follows training instead of being anchored at the initialisation.
    """
    return min(float(decay), (1.0 + updates) / (10.0 + updates))


def _warmup_ema(decay: float):
    """``multi_avg_fn`` for :class:`~torch.optim.swa_utils.AveragedModel` with the warmed-up decay."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        weight = 1.0 - ema_decay_at(decay, int(num_averaged))
        torch._foreach_lerp_(averaged, current, weight)

    return update


def total_steps(config: MethodConfig, n_train: int) -> int:
    """``config.steps``, or ``config.epochs`` converted to steps for this train-set size."""
    if config.epochs is not None:
        per_epoch = max(1, n_train // max(1, min(config.batch_size, n_train)))
        return max(1, math.ceil(config.epochs * per_epoch))
    return max(1, int(config.steps))


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the batch at ``step``: epoch-wise permutations seeded by (seed, epoch).

    A pure function of its arguments, which is what makes resume exact without saving a
    data-loader state. The last incomplete batch of each epoch is dropped.
    """
    batch_size = min(batch_size, n)
    per_epoch = max(1, n // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return np.sort(order[position * batch_size:(position + 1) * batch_size])


def build_optimizer(config: MethodConfig, params) -> torch.optim.Optimizer:
    from .errors import ConfigError

    name = config.optimizer.lower()
    kwargs = dict(lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, **kwargs)
    if name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    raise ConfigError(f"optimizer {config.optimizer!r} is not supported; use adam or adamw")


def lr_factor(config: MethodConfig, step: int, steps: int) -> float:
    """The learning rate at ``step`` of a ``steps``-step run, as a fraction of ``config.lr`` (warm-up, then
    constant or cosine decay to 0)."""
    from .errors import ConfigError

    if config.scheduler not in ("constant", "cosine"):
        raise ConfigError(f"scheduler {config.scheduler!r} is not supported; use constant or cosine")
    warmup = max(0, config.warmup_steps)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if config.scheduler == "cosine":
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def build_scheduler(config: MethodConfig, optimizer: torch.optim.Optimizer, steps: int):
    lr_factor(config, 0, steps)  # validates the scheduler name before training
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps))


class Trainable(Protocol):
    """What the :class:`Trainer` trains: a :class:`~seqbench.method.Method`, or an evaluation model
    wrapped by :func:`fit_model` (judges, learned backends, the VQ autoencoder)."""

    config: MethodConfig
    name: str
    global_step: int
    total_steps: int
    #: ``validation_diagnostics(batch) -> {name: value}``, or ``None`` when the model has none (the
    #: Trainer then builds no diagnostic batch)
    validation_diagnostics: Callable[[Any], dict[str, float]] | None

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]: ...
    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]: ...
    def prepare(self, train: SplitData) -> None: ...
    def train_statistics(self) -> dict[str, float]: ...
    def grad_clip_groups(self) -> list[list[nn.Parameter]]: ...


class Trainer:
    """Trains one method (any :class:`Trainable`) on one dataset split with one seed, in ``workdir``.

    The defaults are a method's: batches are ``train.batch(index)``, the validation loss is the mean
    of ``validation_step`` over the validation clips, and training is data parallel under
    ``torchrun``. An evaluation model (:func:`fit_model`) replaces ``make_batch(train, index)`` (a
    batch of targets a :class:`~seqbench.data.Batch` lacks), ``val_loss(val)`` (a score of the whole
    split, negated), stops early once the validation loss reaches ``stop_below``, and trains in one
    process (``distributed=False``: it is fitted on first use, possibly on one rank only).
    """

    def __init__(self, method: Trainable, train: SplitData, val: SplitData, *, device: torch.device, seed: int,
                 workdir: Path, progress: bool = True, desc: str = "",
                 on_log: Callable[[int, dict[str, float]], None] | None = None, val_max_clips: int = 512,
                 probe: Callable[[Any], dict[str, float]] | None = None,
                 make_batch: Callable[[SplitData, np.ndarray], Any] | None = None,
                 val_loss: Callable[[SplitData], float] | None = None, stop_below: float | None = None,
                 distributed: bool = True):
        self.method = method.to(device)
        self.config: MethodConfig = method.config
        self.train, self.val = train, val
        self.device, self.seed = device, seed
        self.workdir = Path(workdir)
        self.progress, self.desc = progress, desc or method.name
        self.on_log = on_log
        self.val_max_clips = val_max_clips
        self.probe = probe
        self.probe_s = 0.0  # seconds spent in probes (not training)
        self.history: list[dict[str, float]] = []  # restored from a checkpoint on resume
        self.train_s_before = 0.0  # training seconds of the runs before a resume
        self.steps = total_steps(self.config, len(train))
        self.method.total_steps = self.steps
        self.optimizer = build_optimizer(self.config, [p for p in method.parameters() if p.requires_grad])
        self.scheduler = build_scheduler(self.config, self.optimizer, self.steps)
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        if self.config.ema_decay:
            self.ema = torch.optim.swa_utils.AveragedModel(method, multi_avg_fn=_warmup_ema(self.config.ema_decay),
                                                           use_buffers=False)
        self.use_amp = bool(self.config.amp) and device.type == "cuda"
        self.selected = "live"  # which weights the best checkpoint holds
        self.make_batch, self.val_loss, self.stop_below = make_batch, val_loss, stop_below
        self.distributed = distributed

    # -- checkpoints -----------------------------------------------------------------------
    def _state(self, step: int, best_val: float | None, best_step: int, history: list[dict[str, float]],
               train_s: float) -> dict[str, Any]:
        state = {"model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": step, "best_val": best_val,
                 "best_step": best_step, "selected": self.selected, "rng_cpu": torch.get_rng_state(),
                 # the learning curves so far and the training seconds behind them: a resumed run's
                 # history.json is the whole run's, not the part after the restart
                 "history": history, "train_s": train_s}
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def _restore(self, state: dict[str, Any]) -> tuple[int, float | None, int]:
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        if "ema" in state and self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.selected = str(state.get("selected", "live"))
        self.history = list(state.get("history", []))
        self.train_s_before = float(state.get("train_s", 0.0))
        return int(state["step"]), state["best_val"], int(state["best_step"])

    def ema_weights(self) -> dict[str, torch.Tensor]:
        """The live state dict with every parameter replaced by its EMA (buffers stay live)."""
        if self.ema is None:
            raise RuntimeError("this trainer keeps no EMA (ema_decay is unset)")
        weights = dict(self.method.state_dict())
        for name, value in self.ema.module.named_parameters():
            weights[name] = value.detach()
        return weights

    def _candidates(self) -> list[tuple[str, dict[str, torch.Tensor] | None]]:
        """Weights to validate: the live ones (``None`` = as loaded) and, with EMA, the average."""
        return [("live", None)] + ([("ema", self.ema_weights())] if self.ema is not None else [])

    # -- validation ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, weights: dict[str, torch.Tensor] | None = None) -> float | None:
        """Mean validation loss with noise fixed by the seed (training RNG left untouched).

        ``weights`` (e.g. :meth:`ema_weights`) are validated in place of the live ones, which are
        restored afterwards.
        """
        if len(self.val) == 0:
            return None
        if self.val_loss is not None:
            with self._evaluating(weights):
                return float(self.val_loss(self.val))
        total, count = 0.0, 0
        n = min(len(self.val), self.val_max_clips)
        with self._evaluating(weights):
            for batch in self.val.iter_batches(min(self.config.batch_size, 256), limit=n):
                batch = batch.to(self.device)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
                    losses = self.method.validation_step(batch)
                total += float(losses["loss"]) * len(batch.x)
                count += len(batch.x)
        return total / max(1, count)

    @contextlib.contextmanager
    def _evaluating(self, weights: dict[str, torch.Tensor] | None):
        """Eval mode under ``weights`` (``None``: the live ones) and a fixed seed; live weights,
        train mode and the training RNG are restored afterwards."""
        live = None
        if weights is not None:
            live = {k: v.clone() for k, v in self.method.state_dict().items()}
            self.method.load_state_dict(weights)
        self.method.eval()
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(self.seed + 7919)
                yield
        finally:
            self.method.train()
            if live is not None:
                self.method.load_state_dict(live)

    @torch.no_grad()
    def diagnostics(self, weights: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """The method's validation diagnostics on the validation clips of :func:`diagnostic_items` (none for
        a model without diagnostics, e.g. a judge)."""
        if len(self.val) < 2 or self.method.validation_diagnostics is None:
            return {}
        with self._evaluating(weights):
            batch = self.val.batch(diagnostic_items(len(self.val))).to(self.device)
            values = self.method.validation_diagnostics(batch)
        return {f"usage/{k}": float(v) for k, v in values.items()}

    def run_probe(self, weights: dict[str, torch.Tensor] | None, train_s: float) -> dict[str, float]:
        """The probe set on ``weights`` (``None``: the live ones) as ``curve/<key>``, with the training
        seconds so far (``curve/train_s``, probe time excluded) - the x axis of time-to-plateau."""
        if self.probe is None:
            return {}
        start = time.perf_counter()
        with self._evaluating(weights), torch.no_grad():
            values = self.probe(self.method)
        self.probe_s += time.perf_counter() - start
        return {**{f"curve/{k}": float(v) for k, v in values.items()}, "curve/train_s": float(train_s)}

    # -- the loop --------------------------------------------------------------------------
    @torch.enable_grad()  # an evaluation model may be fitted on first use inside a metric's no_grad
    def fit(self) -> TrainResult:
        from tqdm.auto import tqdm

        rank, world = distributed_context() if self.distributed else (0, 1)
        lead = rank == 0
        self.workdir.mkdir(parents=True, exist_ok=True)
        ckpt_path = self.workdir / CHECKPOINT
        torch.manual_seed(self.seed + RANK_SEED_STRIDE * rank)
        step, best_val, best_step = 0, None, -1
        _barrier(world)  # every rank sees the same checkpoint
        if ckpt_path.exists():
            step, best_val, best_step = self._restore(torch.load(ckpt_path, map_location=self.device, weights_only=True))
            if world > 1:
                torch.manual_seed(self.seed + RANK_SEED_STRIDE * rank + step)
            if lead:
                logger.info(f"{self.desc}: resuming from checkpoint at step {step}/{self.steps} ({ckpt_path})")
        resumed_from = step
        start = time.perf_counter()
        if step < self.steps:
            # Data-dependent parts (a cached VQ autoencoder, normalisation statistics); deterministic,
            # so a resumed run recomputes exactly what the checkpoint already holds.
            self.method.prepare(self.train)
        self.method.train()
        sums: dict[str, float] = {}
        count = 0
        history = self.history

        def train_s() -> float:
            return self.train_s_before + time.perf_counter() - start - self.probe_s
        bar = tqdm(total=self.steps, initial=step, desc=self.desc, disable=not (self.progress and lead),
                   dynamic_ncols=True, unit="step", leave=False)
        if lead and step == 0 and step < self.steps and self.probe is not None:
            # The curve's starting point (the untrained model), also where the probes load their judge.
            initial = {"step": 0, **self.run_probe(None, 0.0)}
            history.append(initial)
            if self.on_log:
                self.on_log(0, {k: v for k, v in initial.items() if k != "step"})
        try:
            while step < self.steps:
                index = batch_indices(len(self.train), self.config.batch_size, self.seed, step)
                if world > 1:
                    index = index[rank::world]
                if self.make_batch is not None:
                    batch = self.make_batch(self.train, index)
                else:
                    batch = self.train.batch(index).to(self.device)
                self.method.global_step = step
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
                    losses = self.method.training_step(batch)
                loss = losses["loss"]
                if not self._all_finite(loss, world):
                    parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                    fix = (f"Lower the learning rate (--set {self.method.name}.lr=...) or set a gradient clip "
                           f"(--set {self.method.name}.grad_clip=1.0)." if isinstance(self.method, Method)
                           else "Lower its learning rate.")
                    raise TrainingDivergedError(
                        f"{self.desc}: loss is {float(loss.detach())} at step {step} ({parts}). Training is "
                        f"stopped. {fix}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:
                    self._average_gradients(world)
                if self.config.grad_clip:
                    for group in self.method.grad_clip_groups():
                        torch.nn.utils.clip_grad_norm_(group, self.config.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                if world > 1:
                    self._broadcast_buffers()
                if self.ema is not None:
                    self.ema.update_parameters(self.method)
                step += 1
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                count += 1
                bar.update(1)
                if step % max(1, self.config.log_every) == 0 or step == self.steps:
                    values = self._mean_over_ranks({k: v / count for k, v in sums.items()}, world)
                    values.update(self.method.train_statistics())
                    values["lr"] = self.scheduler.get_last_lr()[0]
                    bar.set_postfix(loss=f"{values['loss']:.4g}")
                    history.append({"step": step, **values})
                    if self.on_log and lead:
                        self.on_log(step, values)
                    sums, count = {}, 0
                if step % max(1, self.config.val_every) == 0 or step == self.steps:
                    if lead:
                        scored = [(name, weights, self.validate(weights)) for name, weights in self._candidates()]
                        name, weights, val = min(scored, key=lambda c: math.inf if c[2] is None else c[2])
                        logged = {f"val_loss_{n}": v for n, _, v in scored if v is not None and len(scored) > 1}
                        if val is not None:
                            logged["val_loss"] = val
                        logged.update(self.diagnostics(weights))
                        logged.update(self.run_probe(weights, train_s()))
                        if logged:
                            history.append({"step": step, **logged})
                            if self.on_log:
                                self.on_log(step, logged)
                        if val is None or best_val is None or val < best_val:
                            best_val, best_step, self.selected = val, step, name
                            atomic_torch_save(weights if weights is not None else self.method.state_dict(),
                                              self.workdir / BEST)
                        if self.stop_below is not None and val is not None and val <= self.stop_below:
                            break  # early stop (evaluation models: the target score is reached)
                if step % max(1, self.config.checkpoint_every) == 0 or step == self.steps:
                    if lead:
                        atomic_torch_save(self._state(step, best_val, best_step, history, train_s()), ckpt_path)
                    _barrier(world)
        finally:
            bar.close()
        if world > 1:  # rank 0 selected the best step; every rank returns the same weights
            _barrier(world)
            best_val, best_step = self._broadcast_selection(best_val, best_step)
        # Model selection: the weights with the lowest validation loss (never the test split).
        self.method.load_state_dict(torch.load(self.workdir / BEST, map_location=self.device, weights_only=True))
        self.method.eval()
        return TrainResult(step, best_step, best_val, time.perf_counter() - start, resumed_from, history,
                           self.selected, self.probe_s)

    # -- data parallel ---------------------------------------------------------------------
    def _all_finite(self, loss: torch.Tensor, world: int) -> bool:
        """Whether the loss is finite on every rank (all ranks stop together on a divergence)."""
        finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item() > 0)

    @torch.no_grad()
    def _average_gradients(self, world: int) -> None:
        """All-reduce every gradient in one flat buffer and divide by the world size."""
        import torch.distributed as dist

        params = [p for p in self.method.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for p, g in zip(params, grads):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).to(g.dtype).clone()
            offset += n

    @torch.no_grad()
    def _broadcast_buffers(self) -> None:
        import torch.distributed as dist

        for buffer in self.method.buffers():
            if buffer.dtype.is_floating_point:  # running statistics; counters and flags agree already
                dist.broadcast(buffer, src=0)

    def _mean_over_ranks(self, values: dict[str, float], world: int) -> dict[str, float]:
        if world == 1 or not values:
            return values
        import torch.distributed as dist

        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / world for k, v in zip(keys, t.tolist())}

    def _broadcast_selection(self, best_val: float | None, best_step: int) -> tuple[float | None, int]:
        import torch.distributed as dist

        box = [best_val, best_step, self.selected]
        dist.broadcast_object_list(box, src=0)
        self.selected = box[2]
        return box[0], int(box[1])


# ------------------------------------------------------------------ evaluation models (judges, backends)
# The small supervised models the metrics use (judges, learned backends) and the VQ autoencoder of the
# latent methods train through the same Trainer, wrapped by fit_model: the same batch order
# (batch_indices), NaN guard, optimizer, selection on validation and progress lines. They are fitted
# once per dataset and cached whole (seqbench.model_store), so they train in a temporary folder
# (no resume) without EMA, in one process, and never touch the caller's RNG.

@dataclass(frozen=True)
class FitConfig:
    """Optimisation of an evaluation model: Adam, fixed batch order, selection on validation.

    Training stops at ``max_steps`` or as soon as the validation score reaches ``target``; the
    weights kept are those of the best validation score (ties: the earliest).
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 32
    max_steps: int = 5000
    val_every: int = 250
    target: float | None = None
    val_fraction: float = 0.1
    seed: int = 0

    def training_config(self) -> MethodConfig:
        """The :class:`~seqbench.config.MethodConfig` the Trainer reads: constant learning rate, no
        clipping or EMA, one checkpoint at the end, the loss logged every step (progress lines)."""
        return MethodConfig(optimizer="adam", lr=self.lr, betas=tuple(self.betas), batch_size=self.batch_size,
                            steps=self.max_steps, scheduler="constant", checkpoint_every=self.max_steps,
                            val_every=self.val_every, val_fraction=self.val_fraction, log_every=1)


@dataclass
class FitResult:
    steps: int
    best_step: int
    best_val: float
    wall_s: float
    train_items: int
    val_items: int
    final_loss: float = math.nan  # the training loss of the last step

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Supervised(nn.Module):
    """An evaluation model and its loss as a :class:`Trainable`."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor], config: MethodConfig,
                 name: str):
        super().__init__()
        self.model, self.loss_fn, self.config, self.name = model, loss_fn, config, name
        self.global_step, self.total_steps = 0, config.steps

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        return {"loss": self.loss_fn(self.model, batch)}

    validation_step = training_step

    def prepare(self, train: SplitData) -> None:
        pass

    def train_statistics(self) -> dict[str, float]:
        return {}

    validation_diagnostics = None  # an evaluation model reports none

    def grad_clip_groups(self) -> list[list[nn.Parameter]]:
        return [[p for p in self.parameters() if p.requires_grad]]


def fit_model(model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
              score_fn: Callable[[nn.Module, SplitData], float] | None, data: SplitData, config: FitConfig,
              device: torch.device, *, desc: str = "model", log: Callable[[str], None] | None = None,
              make_batch: Callable[[SplitData, np.ndarray], Any] | None = None) -> FitResult:
    """Train ``model`` with the :class:`Trainer` on ``data`` minus a validation part carved from it
    (by identity when known).

    ``loss_fn(model, batch)`` returns the loss of a batch: by default a
    :class:`~seqbench.method.Batch` already on ``device``, or whatever ``make_batch(train_part,
    index)`` builds (for targets a Batch lacks, such as keypoints);
    ``score_fn(model, split)`` (model in eval mode, under no_grad) scores a split, higher is better;
    ``None`` trains without validation and keeps the last weights. Batches follow
    :func:`seqbench.trainer.batch_indices`, a pure function of (seed, step), and the RNG is seeded
    from ``config.seed`` inside a fork of the caller's, so the result depends only on the data, the
    config and the device's arithmetic - never on what ran before.
    """
    import tempfile

    if score_fn is None:
        train, val = data, data.subset(np.arange(0))
    else:
        train, val = carve_validation(data, config.val_fraction, seed=config.seed)
        if len(val) == 0:
            raise ConfigError(f"{desc}: val_fraction={config.val_fraction} leaves no validation items out of "
                              f"{len(data)}; use a positive val_fraction and a larger train split")
    wrapped = _Supervised(model, loss_fn, config.training_config(), desc)
    progress = ProgressLog(f"{desc}: training", config.max_steps, fractions=0, emit=log) if log else None
    start, last = time.perf_counter(), {"loss": math.nan}

    def on_log(step: int, values: dict[str, float]) -> None:
        if "loss" in values:
            last["loss"] = values["loss"]
            if progress is not None:  # between validations: a line every interval (SEQBENCH_PROGRESS_INTERVAL)
                progress.update(step, loss=values["loss"])
        if "val_loss" in values and log:
            elapsed = time.perf_counter() - start
            log(f"{desc}: step {step}/{config.max_steps}, loss {last['loss']:.4f}, validation score "
                f"{-values['val_loss']:.4f} (target {config.target}), elapsed {format_duration(elapsed)}, "
                f"ETA at most {format_duration(elapsed / step * (config.max_steps - step))}")

    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), tempfile.TemporaryDirectory(prefix="seqbench-fit-") as workdir:
        trainer = Trainer(wrapped, train, val, device=device, seed=config.seed, workdir=Path(workdir), progress=False,
                          desc=desc, on_log=on_log, make_batch=make_batch, distributed=False,
                          val_loss=None if score_fn is None else (lambda split: -float(score_fn(model, split))),
                          stop_below=None if config.target is None or score_fn is None else -config.target)
        result = trainer.fit()
    model.eval()
    best_val = -result.best_val if result.best_val is not None else -math.inf
    return FitResult(steps=result.steps, best_step=result.best_step, best_val=best_val,
                     wall_s=time.perf_counter() - start, train_items=len(train), val_items=len(val),
                     final_loss=last["loss"])
