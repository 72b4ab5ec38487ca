"""Which frames to read from a sequence, and seeded per-item randomness that survives reordering."""

from __future__ import annotations

import zlib

import numpy as np


def clip_indices(n_frames: int, frames: int, *, stride: int = 1, mode: str = "window", clips: int = 1,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, bool]:
    """Frame indices ``[clips, frames]`` to read from a sequence of ``n_frames`` frames.

    ``window``: ``frames`` frames ``stride`` apart from a start drawn by ``rng`` (the first
    possible start when ``rng`` is None); the stride shrinks when the sequence is too short for
    it. ``uniform``: ``frames`` indices evenly spread over the whole sequence (``clips`` > 1
    shifts them by fractions of a step). Returns the indices and whether frames had to be
    repeated because the sequence is shorter than ``frames``.
    """
    if n_frames < 1:
        raise ValueError("a sequence with no frames has no clips")
    if frames < 1 or stride < 1 or clips < 1:
        raise ValueError(f"frames, stride and clips must be >= 1, got {frames}, {stride}, {clips}")
    padded = n_frames < frames
    if mode == "uniform":
        offsets = (np.arange(clips) + 0.5) / clips if clips > 1 else np.array([0.5])
        positions = (np.arange(frames)[None, :] + offsets[:, None]) * (n_frames / frames)
        out = np.minimum(np.floor(positions).astype(np.int64), n_frames - 1)
        return out, padded
    if mode != "window":
        raise ValueError(f"sampling mode {mode!r}: use 'window' or 'uniform'")
    if padded:
        base = np.minimum(np.arange(frames), n_frames - 1)
        return np.tile(base, (clips, 1)), True
    stride = max(1, min(stride, (n_frames - 1) // max(1, frames - 1)))
    span = (frames - 1) * stride + 1
    last_start = n_frames - span
    if rng is None:
        starts = np.linspace(0, last_start, clips).round().astype(np.int64) if clips > 1 else np.array([0])
    else:
        starts = rng.integers(0, last_start + 1, size=clips)
    return starts[:, None] + stride * np.arange(frames)[None, :], False


def stable_bucket(key: str, seed: int = 0) -> float:
    """A number in [0, 1) that depends only on ``key`` and ``seed`` (for splits that survive new files)."""
    return zlib.crc32(f"{seed}:{key}".encode()) / 2 ** 32


def item_rng(seed: int, key: str) -> np.random.Generator:
    """A generator for one item, independent of processing order and worker count."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])
