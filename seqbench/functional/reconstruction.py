"""Reconstruction quality per item: MSE, PSNR and SSIM.

All three return one value per item (the first axis), so they can be bootstrapped over items;
the dataset-level value is the mean of the per-item values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import to_float64, to_numpy

__all__ = ["mse", "psnr", "ssim"]


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_float64(x), to_float64(y)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim < 1 or a.shape[0] == 0:
        raise ValueError("need at least one item")
    return a, b


def mse(x: Any, y: Any) -> np.ndarray:
    """Per-item mean squared error ``mean_{all but axis 0} (x - y)^2`` -> ``[N]``."""
    a, b = _pair(x, y)
    return np.square(a - b).reshape(len(a), -1).mean(axis=1)


def psnr(x: Any, y: Any, data_range: float, max_db: float | None = None) -> np.ndarray:
    """Per-item PSNR ``10 log10(data_range^2 / MSE_i)`` in dB -> ``[N]``.

    Identical items have MSE 0 and PSNR ``+inf``: that is the exact value (as in scikit-image
    and torchmetrics), and any finite stand-in would be an arbitrary number posing as a
    measurement. A mean over items containing ``+inf`` is ``+inf``; a caller that must report a
    finite aggregate passes ``max_db`` (e.g. 100) to clamp, and says so.
    ``data_range`` is ``max - min`` of the value range (1 for [0, 1], 2 for [-1, 1], 255 for uint8).
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    err = mse(x, y)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(data_range**2 / err)
    if max_db is not None:
        out = np.minimum(out, max_db)
    return out


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: Any,
    y: Any,
    data_range: float,
    *,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """Per-item SSIM (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5) -> ``[N]``.

    Inputs ``[N, ..., C, H, W]`` (images ``[N, C, H, W]`` or videos ``[N, T, C, H, W]``). For
    each channel, local statistics are Gaussian-weighted means over "valid" windows (no padding):
    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``,
    ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``, with population (weighted) variances; the SSIM map is
    averaged over positions, channels and frames of the item. This matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=R)``, which crops the border where the window does
    not fit. Computed with separable float32 ``torch.nn.functional.conv2d`` (moments combined in float64).
    """
    import torch
    import torch.nn.functional as F

    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    a, b = _pair(x, y)
    if a.ndim < 4:
        raise ValueError(f"ssim needs [N, ..., C, H, W] inputs, got shape {a.shape}")
    n = a.shape[0]
    h, w = a.shape[-2:]
    if h < win_size or w < win_size:
        raise ValueError(f"images of {h}x{w} are smaller than the {win_size}x{win_size} window")
    # One batched, separable pass: the five local moments are channels of one tensor and the
    # 2-D Gaussian is two 1-D convolutions (22 instead of 121 taps per pixel). float32 keeps
    # it fast on CPU; agreement with skimage's float64 result is ~1e-6.
    ta = torch.from_numpy(np.ascontiguousarray(a.reshape(-1, 1, h, w), dtype=np.float32))
    tb = torch.from_numpy(np.ascontiguousarray(b.reshape(-1, 1, h, w), dtype=np.float32))
    g = torch.from_numpy(_gaussian_window(win_size, sigma).astype(np.float32))
    moments = torch.cat([ta, tb, ta * ta, tb * tb, ta * tb], dim=1)
    blurred = F.conv2d(F.conv2d(moments, g.view(1, 1, 1, -1).repeat(5, 1, 1, 1), groups=5),
                       g.view(1, 1, -1, 1).repeat(5, 1, 1, 1), groups=5).double()
    mu_a, mu_b = blurred[:, 0], blurred[:, 1]
    var_a = blurred[:, 2] - mu_a**2
    var_b = blurred[:, 3] - mu_b**2
    cov = blurred[:, 4] - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return to_numpy(s_map).reshape(n, -1).mean(axis=1)
