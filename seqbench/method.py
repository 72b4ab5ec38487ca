"""The method contract: what a sequential-disentanglement model must implement.

The framework owns the training loop, so a method is only a ``torch.nn.Module`` with a
config dataclass and four verbs: ``training_step``, ``encode``, ``decode`` and (optionally)
``sample``. Built-in methods use exactly this API; so does a third-party plugin.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import torch
from torch import nn

from .config import MethodConfig
# Batch is produced by the data (SplitData.batch) and lives with it; re-exported for methods that import it here.
from .data import Batch, SplitData
from .errors import ConfigError, NotApplicable
from .types import DataSpec, Factors

__all__ = ["Batch", "Method", "ObjectiveMethod"]


class Method(nn.Module, metaclass=abc.ABCMeta):
    """Base class of every method plugin.

    Subclasses set ``name`` (the registry key), ``version`` (bump when results change),
    ``Config`` (a :class:`MethodConfig` subclass with ``smoke``/``quick``/``paper`` profiles)
    and ``modalities``; they build their networks in ``__init__(config, spec)``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    modalities: ClassVar[tuple[str, ...]] = ("video",)
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    def __init__(self, config: MethodConfig, spec: DataSpec):
        super().__init__()
        reason = type(self).supports(spec)
        if reason:  # plan() already refused such a run; this guards a method built by hand
            raise ConfigError(reason)
        self.config = config
        self.spec = spec
        # Set by the trainer before every step so schedules (KL annealing, warm-ups) can read it.
        self.global_step = 0
        self.total_steps = max(1, int(getattr(config, "steps", 1)))

    # -- what a method must implement ------------------------------------------------------
    @abc.abstractmethod
    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return a dict of losses; ``loss`` is what the trainer minimises, the rest is logged."""

    @abc.abstractmethod
    def encode(self, x: torch.Tensor) -> Factors:
        """Deterministic codes (posterior means) for ``x`` of shape ``[B, T, C, H, W]``."""

    @abc.abstractmethod
    def decode(self, factors: Factors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sequences ``[B, T, C, H, W]`` in the dataset's value range from (possibly swapped) factors."""

    # -- optional --------------------------------------------------------------------------
    def sample(self, n: int, frames: int, which: Literal["static", "dynamic"], *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """New codes from the method's prior: ``[n, S]`` for static, ``[n, T, D]`` for dynamic."""
        raise NotApplicable(f"{self.name} has no prior to sample from")

    @classmethod
    def can_sample(cls) -> bool:
        return cls.sample is not Method.sample

    def prepare(self, train: "SplitData") -> None:
        """Fit data-dependent parts before the first training step; the default does nothing.

        The trainer calls it once per ``fit`` (also on resume, so it must be deterministic or cached):
        a per-dataset VQ autoencoder for latent diffusion, normalisation statistics of the training
        split. Whatever it sets must live in the module's parameters or buffers, so the checkpoint and
        the cached model carry it.
        """

    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Losses on held-out data for model selection; defaults to ``training_step`` without grad."""
        return self.training_step(batch)

    def train_statistics(self) -> dict[str, float]:
        """Extra values to log during training (codebook perplexity, KL weight...)."""
        return {}

    def validation_diagnostics(self, batch: Batch) -> dict[str, float]:
        """Values computed at every validation point on a fixed batch of validation clips, logged as
        ``usage/<key>`` (e.g. :func:`seqbench.nn.factor_usage`: does the decoder read both factors?).
        Runs in eval mode without gradients under a fixed seed; the default reports nothing."""
        return {}

    def grad_clip_groups(self) -> list[list[nn.Parameter]]:
        """Parameter groups whose gradient norms are clipped separately (``grad_clip``).

        One group by default. A method whose loss adds an independent part - a prior trained on
        detached codes - returns it as its own group, so that part's gradient norm does not set the
        clipping scale of the rest.
        """
        return [[p for p in self.parameters() if p.requires_grad]]

    @classmethod
    def supports(cls, spec: DataSpec) -> str | None:
        """``None`` if the method can run on ``spec``; otherwise the reason it cannot."""
        if spec.modality not in cls.modalities:
            return f"{cls.name} supports {', '.join(cls.modalities)} data, not {spec.modality}"
        return None

    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self.encode(x), generator=generator)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


class ObjectiveMethod(Method):
    """A method whose training objective is one function, ``losses(x, *, generator=None)``.

    Training draws its noise (posterior samples, diffusion noise and times) from the global RNG;
    validation draws it from a generator seeded by the batch's first item, so every checkpoint is
    validated on the same draws and their losses compare. :meth:`validation_losses` is what a method
    overrides to select on another quantity (the full objective, a part of it).
    """

    @abc.abstractmethod
    def losses(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The losses of clips ``x``; ``loss`` is what the trainer minimises, the rest is logged."""

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.losses(batch.x)

    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        seed = int(batch.index[0]) if batch.index.numel() else 0
        return self.validation_losses(batch.x, generator=torch.Generator().manual_seed(seed))

    def validation_losses(self, x: torch.Tensor, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Validation losses under the seeded ``generator``; the training losses by default."""
        return self.losses(x, generator=generator)
