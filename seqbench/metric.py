"""The metric contract: declared outputs and requirements, ``evaluate``, and the evaluation context.

Like torchmetrics, every metric is a class (the plugin) around a pure function on arrays
(the functional core, unit-tested on hand-computed values). A metric that does not apply to
a (method, dataset) pair says why via :meth:`Metric.applicable`; the runner records an explicit
"not applicable" row instead of crashing or leaving a silent gap.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch

from .config import DEFAULT_PROFILE, declared_options, parse_options
from .data import SplitData
from .errors import SeqbenchError
from .types import DataSpec, MetricOutput, MetricValue

if TYPE_CHECKING:
    from .backend import Backend
    from .judges import JudgeConfig, TrainedJudge
    from .method import Method
    from .plugins import Plugins, Registry

T = TypeVar("T")


def fingerprint_seed(fingerprint: str, salt: str = "") -> int:
    """A seed that depends on the dataset only, so every method and run draws the same pairs/subsets.

    Fingerprints are hex content hashes; anything else (a plugin's own tag) is hashed first.
    """
    try:
        seed = int(fingerprint[:8], 16)
    except ValueError:
        seed = int(hashlib.sha256(fingerprint.encode()).hexdigest()[:8], 16)
    if salt:
        seed ^= int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16)
    return seed


def evaluation_subset(fingerprint: str, n_items: int, n_clips: int | None, *,
                      purpose: str = "evaluation-subset") -> np.ndarray | None:
    """Sorted indices of the fixed subset of ``n_clips`` items, or ``None`` for the whole split.

    Seeded by the dataset fingerprint (and ``purpose``) alone: every method, seed and run is scored on
    the same clips. Drawn uniformly, never the first ``n_clips``: splits are stored grouped by identity,
    so a prefix holds a few identities only.
    """
    if n_clips is None or n_clips >= n_items:
        return None
    rng = np.random.default_rng(fingerprint_seed(fingerprint, purpose))
    return np.sort(rng.choice(n_items, size=n_clips, replace=False))


@dataclass(frozen=True)
class Requirements:
    """What a metric needs from the method and the dataset."""

    decode: bool = False
    sample: bool = False
    labels: tuple[str, ...] = ()  # "static", "dynamic", or specific label names
    identity: bool = False
    keypoints: bool = False
    modality: tuple[str, ...] = ("video", "audio")
    backend: str | None = None  # kind of evaluation backend needed (landmarks, identity, pose)


@dataclass
class EvalData:
    """The data a metric sees: the dataset spec, the train split (without val) and the test split."""

    spec: DataSpec
    train: SplitData
    test: SplitData


@dataclass
class EvalContext:
    """Shared evaluation state: device, seed, batch size, caches for judges and fixed pairs."""

    device: torch.device
    seed: int = 0
    batch_size: int = 64
    #: Frames per decode batch. Decoders run on ``decode_frames // T`` clips at a time, not ``batch_size``:
    #: a diffusion decoder's activations for 64 clips of 8 frames at 32 px overflow the CPU's last-level
    #: cache, and 16 clips decode 1.5-1.6x faster per clip (BCD, DiViD, DiffSDA at 32 px, 2 threads;
    #: ``benchmarks/decode_batches.py``). Every method's decodes are the same for any batch split up to
    #: float rounding (tests/test_decode_batches.py; bitwise for the committed 32 px diffusion models, whose
    #: re-evaluated rows are unchanged), so this sets speed only.
    decode_frames: int = 128
    limit: int | None = None
    cache_dir: Path = Path(".")
    #: The evaluated model's cache folder: metrics store per-model artifacts there (the judge's decodes).
    model_dir: Path | None = None
    #: The run's profile: ``smoke`` sizes evaluation models (judges) to seconds.
    profile: str = DEFAULT_PROFILE
    #: The run's loaded plugins (the runner always passes them); read them through :attr:`backends`.
    registry: "Plugins | None" = None
    options: dict[str, Any] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Keys (or key groups, e.g. ``sample/*``) a metric could not compute, with the reason; the
    #: runner records them as "not applicable" rows beside the metric's values.
    not_applicable: dict[str, str] = field(default_factory=dict)

    def skip(self, key: str, reason: str) -> None:
        """Mark ``key`` (one output or a protocol's key group) as not applicable to this cell."""
        self.not_applicable[key] = reason

    @property
    def backends(self) -> "Registry[type[Backend]]":
        """The run's evaluation backends by name: a metric never loads the plugins itself."""
        return plugin_backends(self.registry, "this evaluation context (EvalContext(registry=...))")

    def judge(self, data: EvalData, config: "JudgeConfig", weights: str | None = None) -> "TrainedJudge":
        """The dataset's judge for ``config`` (pinned by ``weights``, see :func:`seqbench.judges.load_judge`),
        loaded or trained once per evaluation context and shared by every metric that asks for it."""
        from .judges import load_judge

        return self.memo(f"judge:{data.spec.fingerprint}:{config}:{weights}",
                         lambda: load_judge(data.spec, data.train, data.test, device=self.device, config=config,
                                            weights=weights))

    def decode_batch_size(self, frames: int) -> int:
        """Clips per decode batch for ``frames``-frame clips (see :attr:`decode_frames`)."""
        return max(1, min(self.batch_size, self.decode_frames // max(1, frames)))

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed: the same noise for every method."""
        return torch.Generator().manual_seed(10_000 * self.seed + offset)

    def memo(self, key: str, build: Callable[[], T]) -> T:
        """Compute once per run (e.g. a judge loaded from the disk cache)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def pairs(self, spec: DataSpec, n_items: int, n_pairs: int | None = None) -> np.ndarray:
        """The fixed evaluation pairs ``[P, 2]`` of test indices for this dataset.

        Seeded by the dataset fingerprint only (not by the method or the run seed), so every
        method is scored on the same pairs. Pairs never match an item with itself.
        """
        n_pairs = n_items if n_pairs is None else n_pairs
        rng = np.random.default_rng(fingerprint_seed(spec.fingerprint))
        a = rng.permutation(n_items)[: min(n_pairs, n_items)] if n_pairs <= n_items else rng.integers(0, n_items, n_pairs)
        shift = rng.integers(1, max(2, n_items), size=len(a))
        b = (a + shift) % n_items
        return np.stack([a, b], axis=1)


def plugin_backends(plugins: "Plugins | None", where: str) -> "Registry[type[Backend]]":
    """``plugins.backends``, or an error naming ``where`` the loaded plugins were missing."""
    if plugins is None:
        raise SeqbenchError(f"no plugins in {where}: the runner passes the loaded plugins (seqbench.load_plugins()); "
                            f"code that evaluates a metric outside a run must pass them too")
    return plugins.backends


def resolve_options(metric_name: str, given: dict[str, Any], defaults: dict[str, Any],
                    prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """``defaults`` updated with ``given``, checked and typed by :func:`seqbench.config.parse_options`.

    A default's type is the option's type (strings are parsed to it; ``None``: a number or text).
    Keys starting with one of ``prefixes`` (e.g. ``judge_``) are passed through for a sub-component.
    An unknown key is an error that lists the valid ones.
    """

    def unknown(key: str, valid: list[str]) -> str:
        listing = f"valid options: {', '.join(valid)}" if valid else f"{metric_name} takes no options"
        return f"metric option {metric_name}.{key} does not exist; {listing}"

    return {**defaults, **parse_options(given, declared_options(defaults), where=f"{metric_name}.",
                                        flag="--metric-option", unknown=unknown, prefixes=prefixes,
                                        keep_native=True)}


class Metric(abc.ABC):
    """Base class of every metric plugin."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    outputs: ClassVar[tuple[MetricOutput, ...]] = ()
    requires: ClassVar[Requirements] = Requirements()
    #: The options this metric accepts (``--metric-option NAME.KEY=VALUE``) with their defaults, so
    #: a typo is a usage error before anything trains. Empty: no options. ``None``: any key is
    #: accepted (the metric checks its options itself, in :meth:`check_options`).
    option_defaults: ClassVar[dict[str, Any] | None] = {}
    #: Key prefixes passed through to a sub-component (e.g. ``judge_`` for the judge's config).
    option_prefixes: ClassVar[tuple[str, ...]] = ()

    #: The run's loaded plugins, set by the runner (:meth:`use_plugins`) before it checks options, so a
    #: metric that checks a sub-component's options (a backend's) finds that component's class.
    plugins: "Plugins | None" = None

    def __init__(self, **options: Any):
        self.options = options

    def use_plugins(self, plugins: "Plugins") -> "Metric":
        """Give this metric the run's loaded plugins (returns ``self``)."""
        self.plugins = plugins
        return self

    @property
    def backends(self) -> "Registry[type[Backend]]":
        """The run's evaluation backends by name (set by :meth:`use_plugins`)."""
        return plugin_backends(self.plugins, f"metric {self.name!r} (Metric.use_plugins)")

    def resolved_options(self) -> dict[str, Any]:
        """The declared defaults updated with the given options (strings parsed to the default's type)."""
        if self.option_defaults is None:
            return dict(self.options)
        return resolve_options(self.name, self.options, self.option_defaults, prefixes=self.option_prefixes)

    def check_options(self) -> None:
        """Raise :class:`~seqbench.errors.ConfigError` for a bad option; the runner calls it before training.

        The default checks keys and types against :attr:`option_defaults`; override to check
        values too (and call ``super().check_options()``).
        """
        self.resolved_options()

    def applicable(self, method: "Method", spec: DataSpec) -> str | None:
        """``None`` when the metric applies; otherwise a reason shown in the "not applicable" row."""
        req = self.requires
        if spec.modality not in req.modality:
            return f"{self.name} needs {'/'.join(req.modality)} data; {spec.name} is {spec.modality}"
        if req.sample and not method.can_sample():
            return f"{method.name} has no prior to sample from"
        if req.identity and not spec.has_identity:
            return f"{spec.name} has no identity labels"
        if req.keypoints and not spec.has_keypoints:
            return f"{spec.name} has no keypoints"
        for need in req.labels:
            if need == "static" and not spec.static_labels:
                return f"{spec.name} has no static labels"
            if need == "dynamic" and not spec.dynamic_labels:
                return f"{spec.name} has no dynamic labels"
            if need not in ("static", "dynamic") and need not in {l.name for l in spec.labels}:
                return f"{spec.name} has no label {need!r}"
        return None

    def output(self, key: str) -> MetricOutput:
        for out in self.outputs:
            if out.key == key:
                return out
        # Metrics may emit per-head keys beyond the declared ones; direction follows the prefix.
        for out in self.outputs:
            if key.startswith(out.key):
                return MetricOutput(key, out.higher_is_better, out.description)
        return MetricOutput(key, True)

    @abc.abstractmethod
    def evaluate(self, method: "Method", data: EvalData, ctx: EvalContext) -> dict[str, MetricValue | float]:
        """Score ``method`` (already trained, in eval mode) and return values per output key."""

    def chance(self, spec: DataSpec) -> dict[str, float]:
        """Chance-level values of this metric's keys on ``spec`` (for the leaderboard's chance row)."""
        return {}
