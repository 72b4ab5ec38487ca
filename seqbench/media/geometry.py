"""Crop boxes and resizing of decoded frames."""

from __future__ import annotations

import numpy as np

#: a crop box
Box = tuple[int, int, int, int]  # top, left, height, width in pixels


def center_square(height: int, width: int) -> Box:
    side = min(height, width)
    return ((height - side) // 2, (width - side) // 2, side, side)


def square_around(box: Box, height: int, width: int, scale: float = 1.0) -> Box:
    """A square of ``scale`` times the box's larger side, centred on it and moved inside the image."""
    top, left, h, w = box
    side = int(round(max(h, w) * scale))
    side = max(1, min(side, height, width))
    cy, cx = top + h / 2.0, left + w / 2.0
    y0 = int(round(min(max(cy - side / 2.0, 0), height - side)))
    x0 = int(round(min(max(cx - side / 2.0, 0), width - side)))
    return (y0, x0, side, side)


def crop_resize(frames: np.ndarray, size: int | tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Crop ``[T, H, W, 3]`` uint8 frames to ``box`` and resize to ``[T, 3, h, w]`` uint8.

    Antialiased bilinear resampling (torch), vectorised over frames; no resize when the crop
    already has the target size, so frames that are stored at the right size stay bit-exact.
    """
    import torch
    import torch.nn.functional as F

    out_h, out_w = (size, size) if isinstance(size, int) else size
    if box is not None:
        top, left, h, w = box
        frames = frames[:, top:top + h, left:left + w]
    chw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    if chw.shape[2:] == (out_h, out_w):
        return chw
    tensor = torch.from_numpy(chw).float()
    resized = F.interpolate(tensor, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
