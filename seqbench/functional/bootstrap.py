"""Percentile bootstrap confidence intervals over items."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._utils import check_same_length, to_float64

__all__ = ["bootstrap_ci", "bootstrap_ci_indices"]

_BLOCK_ELEMENTS = 4_000_000  # resampled values held in memory at once


def _check_settings(n_resamples: int, confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError("n_resamples must be positive")


def _resampled_indices(n_items: int, n_resamples: int, seed: int, block_items: int) -> Iterator[np.ndarray]:
    """Seeded index matrices ``[b, n_items]`` (drawn with replacement), ``n_resamples`` rows in all.

    Blocks of at most ``block_items`` indices bound memory, and both interval functions draw
    the same stream for the same seed.
    """
    rng = np.random.default_rng(seed)
    block = max(1, block_items // n_items)
    for start in range(0, n_resamples, block):
        yield rng.integers(0, n_items, size=(min(block, n_resamples - start), n_items))


def _percentile_interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    per_item_values: Any,
    statistic: Callable[..., Any] = np.mean,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    denominators: Any = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(q_{a/2}, q_{1-a/2})`` of ``statistic`` over items, ``a = 1 - confidence``.

    Each resample draws ``N`` items with replacement (one seeded index matrix ``[B, N]``,
    processed in blocks to bound memory; no Python loop over resamples).

    - ``per_item_values`` ``[N]``: ``statistic(values[idx], axis=-1)`` per resample; the statistic
      must be a numpy-style reduction that accepts ``axis`` (``np.mean``, ``np.median``, ...).
      NaN values are refused: an undefined item (e.g. a sequence without a detected frame) has
      no weight to give, use the ratio form.
    - with ``denominators`` ``[N]``: the ratio statistic ``sum(values[idx]) / sum(den[idx])``
      (e.g. AKD as per-sequence distance sums over valid-frame counts, so that every valid frame
      weighs the same as in the point estimate); ``statistic`` is then ignored. Resamples whose
      denominator sums to 0 are dropped.
    """
    _check_settings(n_resamples, confidence)
    values = to_float64(per_item_values).reshape(-1)
    n = len(values)
    ratio = denominators is not None
    if ratio:
        den = to_float64(denominators).reshape(-1)
        check_same_length(per_item_values=values, denominators=den)
        if np.isnan(den).any():
            raise ValueError("denominators must not contain NaN")
    if np.isnan(values).any():
        raise ValueError("per_item_values contain NaN; drop undefined items or use the ratio "
                         "form (sums and counts with denominators=)")
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one item")

    stats = []
    for idx in _resampled_indices(n, n_resamples, seed, _BLOCK_ELEMENTS):
        if ratio:
            top, bottom = values[idx].sum(axis=1), den[idx].sum(axis=1)
            ok = bottom != 0
            stats.append(top[ok] / bottom[ok])
        else:
            stats.append(np.asarray(statistic(values[idx], axis=-1), dtype=np.float64).reshape(-1))
    all_stats = np.concatenate(stats)
    if all_stats.size == 0:
        raise ValueError("every resample had a zero denominator")
    return _percentile_interval(all_stats, confidence)


def bootstrap_ci_indices(
    n_items: int,
    statistic: Callable[[np.ndarray], Any],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    block_items: int = _BLOCK_ELEMENTS,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic that is not a per-item reduction.

    Why: inception score and H(y) depend on the mean prediction of the whole sample, so they
    cannot be written as ``statistic(values, axis=-1)``. Here ``statistic`` receives an index
    matrix ``[b, n_items]`` (each row one resample of item indices, drawn with replacement) and
    returns the ``[b]`` statistics of those resamples. Blocks hold at most ``block_items``
    indices, so the caller's ``[b, n_items, ...]`` intermediates stay bounded.
    """
    _check_settings(n_resamples, confidence)
    if n_items < 1:
        raise ValueError("bootstrap_ci_indices needs at least one item")
    stats = []
    for idx in _resampled_indices(n_items, n_resamples, seed, block_items):
        out = np.asarray(statistic(idx), dtype=np.float64).reshape(-1)
        if out.shape[0] != idx.shape[0]:
            raise ValueError(f"statistic returned {out.shape[0]} values for {idx.shape[0]} resamples")
        stats.append(out)
    all_stats = np.concatenate(stats)
    if np.isnan(all_stats).any():
        raise ValueError("statistic returned NaN for some resamples")
    return _percentile_interval(all_stats, confidence)
