"""The dataset-adapter contract and the in-memory / memory-mapped split the framework trains on.

An adapter turns whatever layout users have on disk into :class:`SplitData`: an array of clips
``[N, T, C, H, W]`` (uint8 or float32, possibly memory-mapped), integer labels per clip, an
identity per clip, and optional keypoints. The framework batches and normalises it.
"""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from .errors import DataNotFoundError
from .types import DataSpec

Split = Literal["train", "val", "test"]


@dataclass
class Batch:
    """A training or evaluation batch, as :meth:`SplitData.batch` yields it.

    ``x`` is ``[B, T, C, H, W]`` in the dataset's value range; ``index`` are the rows of the split.
    """

    x: torch.Tensor
    labels: dict[str, torch.Tensor]
    index: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device, non_blocking=True), {k: v.to(device) for k, v in self.labels.items()},
                     self.index)


@dataclass
class SplitData:
    """One split of a dataset, as arrays.

    ``x`` is ``[N, T, C, H, W]``; uint8 arrays are mapped to ``[0, 1]`` and then to the spec's
    value range when batched, float arrays are taken as already in range. ``labels`` maps each
    label name to an int array ``[N]``; ``identity`` groups clips of the same subject (used to
    carve validation splits without leaking subjects); ``keypoints`` is ``[N, T, K, 2]`` pixels.
    ``validation_groups``, when set, replaces ``identity`` as the unit the validation carve keeps
    whole: datasets whose test split is cut by another unit than the subject (synthetic-speech: by
    utterance, every speaker in both splits) set it so validation mimics test.
    """

    x: np.ndarray
    labels: dict[str, np.ndarray]
    identity: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    ids: np.ndarray | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    validation_groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        for name, values in self.labels.items():
            if len(values) != n:
                raise ValueError(f"label {name!r} has {len(values)} entries for {n} clips")
        if self.ids is None:
            self.ids = np.arange(n)

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> "SplitData":
        index = np.asarray(index)
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        if isinstance(self.x, _LazyRows):
            x = _LazyRows(self.x.base, self.x.rows[index])
        elif isinstance(self.x, np.memmap):
            x = _LazyRows(self.x, index)
        else:
            x = self.x[index]
        return SplitData(x=x,
                         labels={k: v[index] for k, v in self.labels.items()},
                         identity=pick(self.identity), keypoints=pick(self.keypoints), ids=pick(self.ids),
                         value_range=self.value_range, extra={k: v[index] for k, v in self.extra.items()},
                         validation_groups=pick(self.validation_groups))

    def clips(self, index: np.ndarray | slice | list[int]) -> torch.Tensor:
        """Float clips ``[B, T, C, H, W]`` in the value range, for the given rows."""
        raw = self.x[index]
        if raw.dtype == np.uint8:
            lo, hi = self.value_range
            out = torch.from_numpy(np.ascontiguousarray(raw)).float().div_(255.0)
            if (lo, hi) != (0.0, 1.0):
                out = out.mul_(hi - lo).add_(lo)
            return out
        return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))

    def label_tensors(self, index: np.ndarray | slice | list[int]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.asarray(v[index], dtype=np.int64)) for k, v in self.labels.items()}

    def batch(self, index: np.ndarray) -> Batch:
        index = np.asarray(index)
        return Batch(self.clips(index), self.label_tensors(index), torch.from_numpy(index.astype(np.int64)))

    def iter_batches(self, batch_size: int, limit: int | None = None):
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            yield self.batch(np.arange(start, min(n, start + batch_size)))


class _LazyRows:
    """Row-selected view of a memory-mapped array that reads rows only when indexed."""

    def __init__(self, base: np.ndarray, rows: np.ndarray):
        self.base, self.rows = base, np.asarray(rows)
        self.dtype, self.shape = base.dtype, (len(self.rows),) + base.shape[1:]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        rows = self.rows[index]
        if np.ndim(rows) == 0:
            return self.base[int(rows)]
        order = np.argsort(rows)
        out = np.empty((len(rows),) + self.base.shape[1:], dtype=self.base.dtype)
        out[order] = self.base[rows[order]]
        return out


def carve_validation(data: SplitData, fraction: float, seed: int = 0) -> tuple[SplitData, SplitData]:
    """Split train into (train, val) for model selection, never touching the test split.

    Validation mimics the test split: clips are grouped by ``validation_groups`` when the dataset
    sets it (the unit its test split is cut by), else by identity when it has one, so no group is
    in both parts - unseen subjects for datasets whose test subjects are unseen. The carve depends
    only on ``seed`` and the data, not on the method, so every method selects on the same
    validation clips.
    """
    n = len(data)
    if fraction <= 0 or n < 2:
        return data, data.subset(np.arange(0))
    rng = np.random.default_rng(seed)
    grouping = data.validation_groups if data.validation_groups is not None else data.identity
    if grouping is not None:
        groups = np.unique(grouping)
        n_val_groups = max(1, int(round(len(groups) * fraction))) if len(groups) > 1 else 0
        val_groups = rng.permutation(groups)[:n_val_groups]
        is_val = np.isin(grouping, val_groups)
    else:
        is_val = np.zeros(n, dtype=bool)
        is_val[rng.permutation(n)[: max(1, int(round(n * fraction)))]] = True
    return data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))


class DatasetAdapter(abc.ABC):
    """Base class of every dataset plugin.

    Subclasses set ``name``, ``version`` and ``description``, implement :meth:`build_spec` and
    :meth:`load_split`; adapters of real data also implement :meth:`prepare` (from the files
    users downloaded) and report where they looked when data is missing.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    embedded: ClassVar[bool] = False  # generated by seqbench itself, always available

    def __init__(self, root: Path | None = None, **options: Any):
        self.root = Path(root) if root is not None else None
        self.options = options
        self._spec: DataSpec | None = None
        self._splits: dict[str, SplitData] = {}

    @property
    def spec(self) -> DataSpec:
        if self._spec is None:
            self._spec = self.build_spec()
        return self._spec

    @abc.abstractmethod
    def build_spec(self) -> DataSpec:
        """The dataset's :class:`DataSpec`, including a fingerprint of its content and options."""

    @abc.abstractmethod
    def load_split(self, split: Literal["train", "test"]) -> SplitData:
        """Arrays for the ``train`` or ``test`` split (memory-mapped where large)."""

    def split(self, split: Literal["train", "test"]) -> SplitData:
        if split not in self._splits:
            self._splits[split] = self.load_split(split)
        return self._splits[split]

    def prepare(self, source: Path | None = None, **kwargs: Any) -> Path:
        """Build the dataset's cache from user files; embedded datasets generate themselves."""
        raise DataNotFoundError(f"dataset {self.name!r} has nothing to prepare")

    def verify(self) -> list[str]:
        """Read every item; return a list of problems (empty when everything is readable)."""
        problems = []
        for split in ("train", "test"):
            data = self.split(split)
            for start in range(0, len(data), 256):
                chunk = data.clips(np.arange(start, min(len(data), start + 256)))
                if not torch.isfinite(chunk).all():
                    problems.append(f"{split}: non-finite values in clips {start}..{start + len(chunk) - 1}")
        return problems

    def info(self) -> dict[str, Any]:
        spec = self.spec
        out: dict[str, Any] = {"name": spec.name, "modality": spec.modality, "fingerprint": spec.fingerprint,
                               "shape": [spec.frames, spec.channels, spec.height, spec.width],
                               "value_range": list(spec.value_range)}
        for split in ("train", "test"):
            data = self.split(split)
            out[f"{split}_clips"] = len(data)
            out[f"{split}_labels"] = {name: dict(sorted(Counter(map(int, values)).items()))
                                      for name, values in data.labels.items()}
            if data.identity is not None:
                out[f"{split}_identities"] = int(len(np.unique(data.identity)))
        return out
