"""Pictures of what a method produces: reconstructions and conditional swap grids, as PNG-ready arrays.

Pure rendering on top of the method contract (``encode``/``decode``): every image is built from
fixed, seeded test clips (:func:`fixed_clip_indices`), so two methods' images show the same clips
side by side. Arrays are ``uint8`` ``[H, W, 3]``; :func:`save_png` writes them with Pillow.

Layouts (``T`` frames per clip, frames laid out left to right as a strip):

* :func:`reconstruction_rows` - for each clip, the input strip above its ``decode(encode(x))`` strip.
* :func:`swap_grid` - rows are static donors, columns dynamic donors. The top margin holds each
  dynamic donor's real strip, the left margin each static donor's first real frame (its
  appearance), and cell ``(i, j)`` the strip decoded from ``(s_i, d_j)``: along a row the
  appearance should stay, down a column the motion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .method import Method

__all__ = ["GAP", "fixed_clip_indices", "to_uint8", "strip", "reconstruction_rows", "swap_grid", "layout_swap_grid",
           "save_png"]

GAP = 2  # pixels between tiles (background colour 255: white separators)


def fixed_clip_indices(n_test: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` sorted test-clip indices drawn with ``seed``: the same clips for every method."""
    if count > n_test:
        raise ValueError(f"asked for {count} clips but the test split has {n_test}")
    return np.sort(np.random.default_rng(seed).choice(n_test, size=count, replace=False))


def to_uint8(x: "torch.Tensor | np.ndarray", value_range: tuple[float, float]) -> np.ndarray:
    """Frames ``[..., C, H, W]`` in ``value_range`` -> ``uint8`` ``[..., H, W, 3]`` (grey repeated)."""
    arr = x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
    lo, hi = map(float, value_range)
    arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.round(arr * 255).astype(np.uint8)


def strip(frames: np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` -> ``[H, T * W, 3]``: the frames of one clip side by side."""
    return np.concatenate(list(frames), axis=1)


def _stack(blocks: list[list[np.ndarray]], gap: int = GAP) -> np.ndarray:
    """Tile a list of rows of equally tall images with ``gap`` white pixels between every tile."""
    rows = []
    for row in blocks:
        height = row[0].shape[0]
        sep = np.full((height, gap, 3), 255, np.uint8)
        parts = []
        for k, tile in enumerate(row):
            parts += ([sep] if k else []) + [tile]
        rows.append(np.concatenate(parts, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    out = []
    for k, r in enumerate(rows):
        out += ([np.full((gap, width, 3), 255, np.uint8)] if k else []) + [r]
    return np.concatenate(out, axis=0)


def layout_swap_grid(static_real: np.ndarray, dynamic_real: np.ndarray, swaps: np.ndarray,
                     gap: int = GAP) -> np.ndarray:
    """The swap-grid image from uint8 clips: ``static_real`` ``[n, T, H, W, 3]``, ``dynamic_real``
    ``[m, T, H, W, 3]`` and ``swaps`` ``[n, m, T, H, W, 3]`` (``swaps[i, j]`` = static i, dynamics j)."""
    n, m = swaps.shape[:2]
    h, w = swaps.shape[3:5]
    corner = np.full((h, w, 3), 255, np.uint8)
    rows = [[corner] + [strip(dynamic_real[j]) for j in range(m)]]
    for i in range(n):
        rows.append([static_real[i, 0]] + [strip(swaps[i, j]) for j in range(m)])
    return _stack(rows, gap)


def reconstruction_rows(method: "Method", clips: "torch.Tensor", value_range: tuple[float, float], *,
                        seed: int = 0) -> np.ndarray:
    """Input strip above reconstruction strip for each clip of ``clips`` ``[B, T, C, H, W]``."""
    import torch

    with torch.no_grad():
        recon = method.decode(method.encode(clips.to(method.device)), generator=torch.Generator().manual_seed(seed))
    real, fake = to_uint8(clips, value_range), to_uint8(recon, value_range)
    return _stack([[strip(clip)] for pair in zip(real, fake) for clip in pair])


def swap_grid(method: "Method", static_clips: "torch.Tensor", dynamic_clips: "torch.Tensor",
              value_range: tuple[float, float], *, seed: int = 0) -> np.ndarray:
    """Decode every (static donor, dynamic donor) pair and lay it out with :func:`layout_swap_grid`."""
    import torch

    from .types import Factors

    with torch.no_grad():
        a, b = method.encode(static_clips.to(method.device)), method.encode(dynamic_clips.to(method.device))
        n, m = a.static.shape[0], b.dynamic.shape[0]
        static = a.static.repeat_interleave(m, dim=0)
        dynamic = b.dynamic.repeat(n, *([1] * (b.dynamic.dim() - 1)))
        decoded = method.decode(Factors(static=static, dynamic=dynamic), generator=torch.Generator().manual_seed(seed))
    swaps = to_uint8(decoded, value_range)
    swaps = swaps.reshape(n, m, *swaps.shape[1:])
    return layout_swap_grid(to_uint8(static_clips, value_range), to_uint8(dynamic_clips, value_range), swaps)


def save_png(image: np.ndarray, path: Path | str, scale: int = 1) -> Path:
    """Write ``image`` ``[H, W, 3]`` uint8 as PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    picture.save(path)
    return path
