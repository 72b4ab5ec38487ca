"""The rendering layer: known clips land as known tiles at known positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqbench.visuals import GAP, fixed_clip_indices, layout_swap_grid, save_png, swap_grid, to_uint8

T, H, W = 3, 4, 5


def solid(value: int) -> np.ndarray:
    """A clip ``[T, H, W, 3]`` whose frame t is filled with ``value + t``."""
    return np.stack([np.full((H, W, 3), value + t, np.uint8) for t in range(T)])


def test_swap_grid_layout_puts_every_tile_where_it_belongs():
    static = np.stack([solid(10), solid(20)])  # n = 2 static donors
    dynamic = np.stack([solid(100), solid(110), solid(120)])  # m = 3 dynamic donors
    swaps = np.stack([np.stack([solid(200 + 10 * i + j) for j in range(3)]) for i in range(2)])
    image = layout_swap_grid(static, dynamic, swaps)
    strip_w = T * W
    assert image.shape == (3 * H + 2 * GAP, W + 3 * (strip_w + GAP), 3)

    def tile(row: int, col: int, frame: int) -> np.ndarray:
        top = row * (H + GAP)
        left = 0 if col == 0 else W + GAP + (col - 1) * (strip_w + GAP) + frame * W
        return image[top:top + H, left:left + W]

    assert (tile(0, 0, 0) == 255).all()  # empty corner
    for j in range(3):
        for t in range(T):
            assert (tile(0, j + 1, t) == 100 + 10 * j + t).all()  # top margin: the dynamic donors' strips
    for i in range(2):
        assert (tile(i + 1, 0, 0) == 10 * (i + 1)).all()  # left margin: the static donor's first frame
        for j in range(3):
            for t in range(T):
                assert (tile(i + 1, j + 1, t) == 200 + 10 * i + j + t).all()
    assert (image[H:H + GAP] == 255).all()  # separators


class _Echo(torch.nn.Module):
    """A 'method' whose decode paints static code s and dynamic code d_t into the frame: s in channel 0,
    d_t in channel 1, so a grid's tiles say which codes were decoded."""

    device = torch.device("cpu")

    def encode(self, x):
        from seqbench.types import Factors

        return Factors(static=x[:, 0, 0, 0, 0][:, None], dynamic=x[:, :, 1, 0, 0][..., None])

    def decode(self, factors, *, generator=None):
        b, t = factors.dynamic.shape[:2]
        out = torch.zeros(b, t, 3, H, W)
        out[:, :, 0] = factors.static[:, 0, None, None, None]
        out[:, :, 1] = factors.dynamic[..., 0, None, None]
        return out


def test_swap_grid_decodes_static_of_the_row_and_dynamics_of_the_column():
    def clip(s: float, d0: float) -> torch.Tensor:
        x = torch.zeros(T, 3, H, W)
        x[:, 0] = s
        x[:, 1] = (d0 + torch.arange(T, dtype=torch.float32) / 10)[:, None, None]
        return x

    static = torch.stack([clip(0.2, 0.0), clip(0.4, 0.0)])
    dynamic = torch.stack([clip(0.0, 0.1), clip(0.0, 0.5)])
    image = swap_grid(_Echo(), static, dynamic, (0.0, 1.0))
    left = W + GAP
    for i, s in enumerate((0.2, 0.4)):
        for j, d0 in enumerate((0.1, 0.5)):
            for t in range(T):
                top = (i + 1) * (H + GAP)
                x0 = left + j * (T * W + GAP) + t * W
                pixel = image[top, x0]
                assert abs(int(pixel[0]) - s * 255) <= 1 and abs(int(pixel[1]) - (d0 + t / 10) * 255) <= 1


def test_fixed_clips_are_the_same_for_every_call_and_png_round_trips(tmp_path):
    assert (fixed_clip_indices(100, 6) == fixed_clip_indices(100, 6)).all()
    with pytest.raises(ValueError, match="test split has 5"):
        fixed_clip_indices(5, 6)
    image = to_uint8(torch.rand(2, 3, 8, 8), (0.0, 1.0))
    from PIL import Image

    path = save_png(image[0], tmp_path / "a.png", scale=2)
    assert np.asarray(Image.open(path)).shape == (16, 16, 3)
