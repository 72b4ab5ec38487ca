"""Core value types shared by every part of seqbench.

These are the nouns of the plugin contract: a method turns a batch of sequences into
:class:`Factors` and back; a dataset adapter describes its data with a :class:`DataSpec`
so that metrics can decide, without running anything, whether they apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Literal, NamedTuple

import torch

Modality = Literal["video", "audio"]


class Factors(NamedTuple):
    """A disentangled code: one static vector per sequence, one dynamic vector per step.

    ``static`` is ``[B, S]`` and ``dynamic`` is ``[B, T, D]``. Methods whose latents are
    spatial flatten them; the framework never looks inside the vectors.
    """

    static: torch.Tensor
    dynamic: torch.Tensor

    def to(self, device: torch.device | str) -> "Factors":
        return Factors(self.static.to(device), self.dynamic.to(device))

    def detach(self) -> "Factors":
        return Factors(self.static.detach(), self.dynamic.detach())

    def index(self, idx: torch.Tensor | slice) -> "Factors":
        return Factors(self.static[idx], self.dynamic[idx])

    @staticmethod
    def cat(parts: "list[Factors]") -> "Factors":
        return Factors(torch.cat([p.static for p in parts]), torch.cat([p.dynamic for p in parts]))

    def swap_with(self, other: "Factors") -> "Factors":
        """Static of ``self`` with the dynamics of ``other`` (the swap protocol's decode input)."""
        return Factors(self.static, other.dynamic)


@dataclass(frozen=True)
class LabelSpec:
    """One ground-truth label of a dataset: static (per sequence) or dynamic (per clip motion)."""

    name: str
    num_classes: int
    kind: Literal["static", "dynamic"]
    class_names: tuple[str, ...] = ()

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes


@dataclass(frozen=True)
class DataSpec:
    """Everything a method or metric may know about a dataset without loading it.

    ``x`` items are float tensors ``[T, C, H, W]`` in ``value_range``. Audio datasets store
    feature vectors as ``C`` feature bins with ``H = W = 1``.
    """

    name: str
    modality: Modality
    frames: int
    channels: int
    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)
    labels: tuple[LabelSpec, ...] = ()
    identity_label: str | None = None
    has_keypoints: bool = False
    keypoint_names: tuple[str, ...] = ()
    family: str = "generic"
    fingerprint: str = ""
    adapter_version: str = "1"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def static_labels(self) -> tuple[LabelSpec, ...]:
        return tuple(label for label in self.labels if label.kind == "static")

    @property
    def dynamic_labels(self) -> tuple[LabelSpec, ...]:
        return tuple(label for label in self.labels if label.kind == "dynamic")

    @property
    def has_identity(self) -> bool:
        return self.identity_label is not None

    def label(self, name: str) -> LabelSpec:
        for label in self.labels:
            if label.name == name:
                return label
        raise KeyError(f"dataset {self.name!r} has no label {name!r}; it has {[l.name for l in self.labels]}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("extra", None)
        return out


@dataclass(frozen=True)
class MetricOutput:
    """A result key a metric produces, and which direction is better."""

    key: str
    higher_is_better: bool
    description: str = ""
    chance_key: str | None = None
    # Shown in the leaderboard's summary table; False puts it with the per-head / per-frame detail
    # keys in the metric's own section (keys emitted under a prefix output are always detail).
    headline: bool = True


@dataclass
class MetricValue:
    """A metric result with its sample count and an optional bootstrap 95% interval."""

    value: float
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    backend: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)
