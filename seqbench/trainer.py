"""The training loop the framework owns, so every method is trained under one protocol.

Device placement, seeding, the optimizer and scheduler from the method's config, gradient
clipping, EMA, mixed precision on CUDA, a NaN/inf guard, periodic checkpoints with exact resume
(the batch order is a pure function of (seed, step), RNG states are saved), and model selection
on a validation split carved from train - never on test.

Data parallel under ``torchrun`` (:func:`distributed_context`): every rank draws the same global
batch order and takes its ``rank::world`` share, gradients are averaged across ranks before
clipping (so a mean-reduced loss gives the single-process update), buffers (BatchNorm statistics)
follow rank 0, and only rank 0 validates, logs and writes checkpoints. Methods need no change:
the framework never calls ``forward``, so ``DistributedDataParallel`` is not used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import MethodConfig
from .data import SplitData
from .errors import TrainingDivergedError
from .method import Method
from .utils import atomic_torch_save

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
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


def build_scheduler(config: MethodConfig, optimizer: torch.optim.Optimizer, steps: int):
    from .errors import ConfigError

    warmup = max(0, config.warmup_steps)
    if config.scheduler not in ("constant", "cosine"):
        raise ConfigError(f"scheduler {config.scheduler!r} is not supported; use constant or cosine")

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.scheduler == "cosine":
            progress = (step - warmup) / max(1, steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """Trains one method on one dataset split with one seed, in ``workdir``."""

    def __init__(self, method: Method, train: SplitData, val: SplitData, *, device: torch.device, seed: int,
                 workdir: Path, progress: bool = True, desc: str = "",
                 on_log: Callable[[int, dict[str, float]], None] | None = None, val_max_clips: int = 512):
        self.method = method.to(device)
        self.config: MethodConfig = method.config
        self.train, self.val = train, val
        self.device, self.seed = device, seed
        self.workdir = Path(workdir)
        self.progress, self.desc = progress, desc or method.name
        self.on_log = on_log
        self.val_max_clips = val_max_clips
        self.steps = total_steps(self.config, len(train))
        self.method.total_steps = self.steps
        self.optimizer = build_optimizer(self.config, [p for p in method.parameters() if p.requires_grad])
        self.scheduler = build_scheduler(self.config, self.optimizer, self.steps)
        self.ema: dict[str, torch.Tensor] | None = None
        if self.config.ema_decay:
            self.ema = {k: v.detach().clone() for k, v in method.state_dict().items()}
        self.use_amp = bool(self.config.amp) and device.type == "cuda"

    # -- checkpoints -----------------------------------------------------------------------
    def _state(self, step: int, best_val: float | None, best_step: int) -> dict[str, Any]:
        state = {"model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": step, "best_val": best_val,
                 "best_step": best_step, "rng_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ema is not None:
            state["ema"] = self.ema
        return state

    def _restore(self, state: dict[str, Any]) -> tuple[int, float | None, int]:
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        if "ema" in state and self.ema is not None:
            self.ema = {k: v.to(self.device) for k, v in state["ema"].items()}
        return int(state["step"]), state["best_val"], int(state["best_step"])

    def _selected_weights(self) -> dict[str, torch.Tensor]:
        return self.ema if self.ema is not None else self.method.state_dict()

    # -- validation ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean validation loss with noise fixed by the seed (training RNG left untouched)."""
        if len(self.val) == 0:
            return None
        live = None
        if self.ema is not None:
            live = {k: v.clone() for k, v in self.method.state_dict().items()}
            self.method.load_state_dict(self.ema)
        self.method.eval()
        total, count = 0.0, 0
        n = min(len(self.val), self.val_max_clips)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.seed + 7919)
            for batch in self.val.iter_batches(min(self.config.batch_size, 256), limit=n):
                batch = batch.to(self.device)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
                    losses = self.method.validation_step(batch)
                total += float(losses["loss"]) * len(batch.x)
                count += len(batch.x)
        self.method.train()
        if live is not None:
            self.method.load_state_dict(live)
        return total / max(1, count)

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        from tqdm.auto import tqdm

        rank, world = distributed_context()
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
            import sys

            if lead:
                print(f"[seqbench] {self.desc}: resuming from checkpoint at step {step}/{self.steps} ({ckpt_path})",
                      file=sys.stderr, flush=True)
        resumed_from = step
        start = time.perf_counter()
        if step < self.steps:
            # Data-dependent parts (a cached VQ autoencoder, normalisation statistics); deterministic,
            # so a resumed run recomputes exactly what the checkpoint already holds.
            self.method.prepare(self.train)
        self.method.train()
        sums: dict[str, float] = {}
        count = 0
        history: list[dict[str, float]] = []
        bar = tqdm(total=self.steps, initial=step, desc=self.desc, disable=not (self.progress and lead),
                   dynamic_ncols=True, unit="step", leave=False)
        try:
            while step < self.steps:
                index = batch_indices(len(self.train), self.config.batch_size, self.seed, step)
                if world > 1:
                    index = index[rank::world]
                batch = self.train.batch(index).to(self.device)
                self.method.global_step = step
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
                    losses = self.method.training_step(batch)
                loss = losses["loss"]
                if not self._all_finite(loss, world):
                    parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                    raise TrainingDivergedError(
                        f"{self.desc}: loss is {float(loss)} at step {step} ({parts}). The cell is stopped. "
                        f"Lower the learning rate (--set {self.method.name}.lr=...) or set a gradient clip "
                        f"(--set {self.method.name}.grad_clip=1.0).")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:
                    self._average_gradients(world)
                if self.config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.config.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                if world > 1:
                    self._broadcast_buffers()
                if self.ema is not None:
                    self._update_ema()
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
                        val = self.validate()
                        if val is not None and self.on_log:
                            self.on_log(step, {"val_loss": val})
                        if val is None or best_val is None or val < best_val:
                            best_val, best_step = val, step
                            atomic_torch_save(self._selected_weights(), self.workdir / BEST)
                if step % max(1, self.config.checkpoint_every) == 0 or step == self.steps:
                    if lead:
                        atomic_torch_save(self._state(step, best_val, best_step), ckpt_path)
                    _barrier(world)
        finally:
            bar.close()
        if world > 1:  # rank 0 selected the best step; every rank returns the same weights
            _barrier(world)
            best_val, best_step = self._broadcast_selection(best_val, best_step)
        # Model selection: the weights with the lowest validation loss (never the test split).
        self.method.load_state_dict(torch.load(self.workdir / BEST, map_location=self.device, weights_only=True))
        self.method.eval()
        return TrainResult(self.steps, best_step, best_val, time.perf_counter() - start, resumed_from, history)

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

        box = [best_val, best_step]
        dist.broadcast_object_list(box, src=0)
        return box[0], int(box[1])

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = float(self.config.ema_decay)
        for key, value in self.method.state_dict().items():
            if value.dtype.is_floating_point:
                self.ema[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                self.ema[key].copy_(value)
