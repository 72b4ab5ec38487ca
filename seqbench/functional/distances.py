"""AKD and AED (DiffSDA app. D): per-frame distances between a reference and a generated video.

- AKD, average keypoint distance: landmarks (68 face points, or body joints) are detected on the
  reference and on the generated frame; ``AKD = mean over valid frames of mean_k,j |L_ref - L_gen|``
  (see :func:`average_keypoint_distance` for the distance convention).
- AED, average euclidean distance: ``AED = mean over valid frames of ||e_ref - e_gen||_2`` between
  identity embeddings of the two frames.

Reference defect fixed here: in DiffSDA's evaluation a frame whose detection failed was excluded
from AKD but counted with distance 0 in AED's average (and, in one AKD variant, still counted in
the denominator). seqbench excludes a frame from numerator *and* denominator as soon as detection
failed on either side, and reports the failure rate (excluded frames / all frames) separately,
since a method that makes faces undetectable must not look better for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._utils import to_float64, to_numpy

__all__ = ["FrameDistance", "average_keypoint_distance", "average_euclidean_distance"]


@dataclass(frozen=True)
class FrameDistance:
    """A per-frame distance averaged over valid frames, with what bootstrapping needs.

    ``value = sum(item_sum) / sum(item_count)``: every valid frame weighs the same (NaN when no
    frame is valid). ``per_item`` is each sequence's own mean (NaN for a sequence without valid
    frames); ``bootstrap_ci(item_sum, denominators=item_count)`` is its interval.
    ``failure_rate`` is the fraction of frames excluded because detection failed on either side.
    """

    value: float
    failure_rate: float
    n_frames: int
    n_valid: int
    per_item: np.ndarray = field(repr=False)
    item_sum: np.ndarray = field(repr=False)
    item_count: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "failure_rate": self.failure_rate,
                "n_frames": self.n_frames, "n_valid": self.n_valid}


def _mask(valid: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A boolean mask broadcast to ``shape`` (``None`` means all valid)."""
    if valid is None:
        return np.ones(shape, dtype=bool)
    v = to_numpy(valid).astype(bool)
    if v.shape != shape[: v.ndim] or v.ndim not in (2, len(shape)):
        raise ValueError(f"{name} must have shape {shape[:2]} or {shape}, got {v.shape}")
    return np.broadcast_to(v.reshape(v.shape + (1,) * (len(shape) - v.ndim)), shape)


def _zeroed(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``x`` with the entries of invalid positions (``valid`` lacks the last axis) set to 0."""
    return np.where(valid[..., None], x, 0.0)


def _valid_difference(what: str, axes: tuple[str, ...], ref_values: Any, gen_values: Any, valid_ref: Any,
                      valid_gen: Any) -> tuple[np.ndarray, np.ndarray]:
    """``ref - gen`` (0 where either side is invalid) and the validity, which lacks the last axis.

    A position counts only when flagged valid and finite on both sides, and excluded values
    must take no part in any arithmetic, whatever distance is taken of the difference.
    """
    ref, gen = to_float64(ref_values), to_float64(gen_values)
    if ref.shape != gen.shape or ref.ndim != len(axes):
        raise ValueError(f"{what} must both be [{', '.join(axes)}], got {ref.shape} and {gen.shape}")
    shape = ref.shape[:-1]
    valid = (_mask(valid_ref, shape, "valid_ref") & _mask(valid_gen, shape, "valid_gen")
             & np.isfinite(ref).all(axis=-1) & np.isfinite(gen).all(axis=-1))
    return _zeroed(ref, valid) - _zeroed(gen, valid), valid


def _aggregate(dist: np.ndarray, valid: np.ndarray) -> FrameDistance:
    """Average ``dist [N, T, K]`` over valid ``K`` entries, then over valid frames.

    A frame is valid when at least one of its ``K`` entries is; invalid entries never enter a
    sum, whatever their value (NaN included).
    """
    n, t = dist.shape[:2]
    if n == 0 or t == 0:
        raise ValueError("need at least one sequence with at least one frame")
    d = np.where(valid, dist, 0.0)
    k_count = valid.sum(axis=2)
    frame_valid = k_count > 0
    frame_dist = np.divide(d.sum(axis=2), k_count, out=np.zeros((n, t)), where=frame_valid)
    item_sum = frame_dist.sum(axis=1)
    item_count = frame_valid.sum(axis=1).astype(np.int64)
    per_item = np.divide(item_sum, item_count, out=np.full(n, np.nan), where=item_count > 0)
    n_valid = int(item_count.sum())
    value = float(item_sum.sum() / n_valid) if n_valid else float("nan")
    return FrameDistance(value=value, failure_rate=(n * t - n_valid) / (n * t), n_frames=n * t,
                         n_valid=n_valid, per_item=per_item, item_sum=item_sum, item_count=item_count)


def average_keypoint_distance(
    kp_ref: Any,
    kp_gen: Any,
    valid_ref: Any = None,
    valid_gen: Any = None,
    distance: Literal["l1", "euclidean"] = "l1",
) -> FrameDistance:
    """AKD between keypoints ``[N, T, K, 2]`` of reference and generated sequences.

    ``distance="l1"`` (default): per frame, the mean absolute coordinate difference
    ``mean_{k, j} |L_ref[k, j] - L_gen[k, j]|`` over keypoints ``k`` and coordinates ``j``. This is
    the notes' ``mean |L_gt - L_rec|`` and exactly what DiffSDA's (and FOMM's pose-evaluation)
    code computes (``np.abs(gt - rec).mean()``), so values compare with the published tables.
    ``distance="euclidean"``: the mean over keypoints of ``||L_ref[k] - L_gen[k]||_2``, the
    textbook "distance between keypoints", for users who want pixel distances.

    ``valid_*`` are detection flags per frame ``[N, T]`` or per keypoint ``[N, T, K]``
    (``None``: all detected); non-finite coordinates also count as not detected. A keypoint
    enters a frame's mean only when valid on both sides; a frame with no such keypoint is
    excluded from numerator and denominator and counted in ``failure_rate``.
    """
    diff, valid = _valid_difference("keypoints", ("N", "T", "K", "2"), kp_ref, kp_gen, valid_ref, valid_gen)
    if distance == "l1":
        dist = np.abs(diff).mean(axis=3)
    elif distance == "euclidean":
        dist = np.sqrt(np.square(diff).sum(axis=3))
    else:
        raise ValueError(f"unknown distance {distance!r}; use 'l1' or 'euclidean'")
    return _aggregate(dist, valid)


def average_euclidean_distance(
    emb_ref: Any,
    emb_gen: Any,
    valid_ref: Any = None,
    valid_gen: Any = None,
) -> FrameDistance:
    """AED between identity embeddings ``[N, T, E]``: mean over valid frames of ``||e_ref - e_gen||_2``.

    The plain (not squared) Euclidean distance, as DeepFace's ``distance_metric="euclidean"``
    that the reference used. ``valid_*`` ``[N, T]`` flag frames where the identity backend
    found a face; non-finite embeddings count as failures too.
    """
    diff, valid = _valid_difference("embeddings", ("N", "T", "E"), emb_ref, emb_gen, valid_ref, valid_gen)
    dist = np.sqrt(np.square(diff).sum(axis=2))
    return _aggregate(dist[..., None], valid[..., None])
