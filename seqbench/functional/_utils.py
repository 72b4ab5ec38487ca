"""Array plumbing shared by the functional metrics: accept numpy arrays, torch tensors and lists."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """Return ``x`` as a numpy array (a torch tensor is detached and moved to the CPU first).

    torch is never imported here: a tensor is recognised by its ``detach`` method, so the
    functional package stays importable (and fast to import) without touching torch.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def to_float64(x: Any) -> np.ndarray:
    """``x`` as float64: metrics are computed in double precision whatever the input dtype."""
    return to_numpy(x, dtype=np.float64)


def to_labels(x: Any, name: str = "labels") -> np.ndarray:
    """``x`` as a 1-D integer array; float inputs must hold integral values."""
    arr = to_numpy(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def to_predictions(x: Any, name: str = "predictions") -> np.ndarray:
    """Class predictions from either indices ``[N]`` or scores/logits/probabilities ``[N, C]``.

    Scores are reduced with ``argmax`` over the last axis (ties go to the lowest index, as in
    ``numpy.argmax`` and ``torch.argmax``).
    """
    arr = to_numpy(x)
    if arr.ndim == 2:
        return np.argmax(arr, axis=1).astype(np.int64)
    return to_labels(arr, name)


def check_same_length(**arrays: np.ndarray) -> int:
    """All arrays share their first dimension; return it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"length mismatch: {lengths}")
    return next(iter(lengths.values()))
