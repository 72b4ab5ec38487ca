"""Helpers shared by the built-in metric plugins: batched encode/decode, options, intervals.

Not a plugin (the leading underscore keeps it out of the registry). Everything here works on
whole batches; the only Python loops run over batches, never over items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from seqbench.data import SplitData
from seqbench.errors import ConfigError
from seqbench.metric import resolve_options  # noqa: F401  (the metrics' option parser lives in the public API)
from seqbench.types import Factors, MetricValue


def encode_split(method: Any, split: SplitData, batch_size: int, device: torch.device,
                 limit: int | None = None) -> Factors:
    """Posterior-mean codes of the first ``limit`` (default all) clips of ``split``, on the CPU."""
    n = len(split) if limit is None else min(limit, len(split))
    parts = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = split.clips(np.arange(start, min(n, start + batch_size))).to(device)
            parts.append(method.encode(x).detach().to("cpu"))
    if not parts:
        raise ValueError("cannot encode an empty split")
    return Factors.cat(parts)


def decode_batches(method: Any, static: torch.Tensor, dynamic: torch.Tensor, batch_size: int,
                   device: torch.device, generator: torch.Generator | None,
                   value_range: tuple[float, float]) -> Iterator[torch.Tensor]:
    """Decode ``(static[i], dynamic[i])`` batch by batch, on the CPU; frames clamped to the value range.

    CPU like :func:`encode_split`: every consumer (uint8 decode caches, numpy backends) works on the host.
    """
    lo, hi = map(float, value_range)
    with torch.no_grad():
        for start in range(0, len(static), batch_size):
            stop = min(len(static), start + batch_size)
            factors = Factors(static[start:stop].to(device), dynamic[start:stop].to(device))
            yield method.decode(factors, generator=generator).float().clamp(lo, hi).cpu()


def with_ci(values: np.ndarray, seed: int, backend: str | None = None) -> MetricValue:
    """Mean of per-item ``values`` with its percentile bootstrap 95 % interval over items."""
    from seqbench.functional import bootstrap_ci

    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(values, seed=seed)
    return MetricValue(float(values.mean()), n=len(values), ci_low=low, ci_high=high, backend=backend)


def with_ci_fn(value: float, n: int, statistic: Callable[[np.ndarray], np.ndarray], seed: int,
               backend: str | None = None) -> MetricValue:
    """``value`` with a bootstrap interval of a whole-sample statistic (IS, H(y)) over ``n`` items."""
    from seqbench.functional import bootstrap_ci_indices

    low, high = bootstrap_ci_indices(n, statistic, seed=seed, block_items=500_000)
    return MetricValue(float(value), n=n, ci_low=low, ci_high=high, backend=backend)


def majority_frequency(*columns: np.ndarray) -> float:
    """Frequency of the most common row of the given label columns: the best input-independent accuracy."""
    rows = np.stack([np.asarray(c) for c in columns], axis=1)
    _, counts = np.unique(rows, axis=0, return_counts=True)
    return float(counts.max() / len(rows))
