"""Clip augmentations for contrastive disentanglement (C-DSVAE's content and motion views).

A *content-preserving* view keeps what a clip shows and destroys how it moves (the static code
should not change); a *motion-preserving* view keeps the movement and changes the appearance (the
dynamic code should not change). Every function takes ``[B, T, C, H, W]`` clips, draws one set of
random parameters per clip (shared by all its frames), and draws them from ``generator`` on the
CPU so that a seeded generator gives the same views on any device.

Interpretation choices:

* **Frame shuffling** permutes the time axis per clip: the multiset of frames (all appearance
  information) is kept, the order (the motion) is gone.
* **Crop-and-resize** takes one random square crop per clip (area fraction ``scale``, anywhere in
  the frame) and resamples it bilinearly to the full size, identical for every frame.
* **Colour distortion** is an invertible per-pixel map applied identically to every frame of a
  clip: a random channel permutation, a channel mix ``(1 - a) I + a P`` with a cyclic permutation
  ``P`` and ``a < 0.5`` (a hue-like rotation; diagonally dominant, hence invertible), a gamma curve
  and a brightness change (darken ``b x`` or brighten ``1 - b (1 - x)``). Every step maps
  ``[0, 1]`` into itself, so nothing is clipped: two pixel values that differ stay different, and the
  support of the frame differences (the motion mask) is exactly preserved.
* **Spectral offset** (audio analogue of colour distortion, for log-spectral features): a per-clip
  gain (constant offset over bins) plus a spectral tilt (an offset linear in the bin index), added
  to every step. Frame differences are unchanged exactly; offsets are in units of the clip's own
  standard deviation so the strength does not depend on the feature scaling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .frames import fold_time, unfold_time

__all__ = ["colour_distort", "decoder_artefacts", "random_resized_crop", "shuffle_frames", "spectral_offset"]


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _check_clips(x: torch.Tensor) -> None:
    if x.dim() != 5:
        raise ValueError(f"expected clips [B, T, C, H, W], got shape {tuple(x.shape)}")


def shuffle_frames(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each clip's frames in a random order (one permutation per clip)."""
    _check_clips(x)
    b, t = x.shape[:2]
    order = torch.argsort(torch.rand(b, t, generator=generator), dim=1).to(x.device)
    return x[torch.arange(b, device=x.device)[:, None], order]


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.6, 1.0),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """One random square crop per clip covering ``scale`` of the frame area, resized back to full size."""
    _check_clips(x)
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    b, t = x.shape[:2]
    side = _uniform(b, *scale, generator).sqrt()  # crop side as a fraction of the frame side
    shift = (1.0 - side)[:, None] * (2.0 * torch.rand(b, 2, generator=generator) - 1.0)  # centre within the frame
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = shift
    theta = theta.to(device=x.device, dtype=x.dtype).repeat_interleave(t, dim=0)
    frames, lead = fold_time(x, 3)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return unfold_time(out, lead)


def colour_distort(x: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0), *, mix: float = 0.4,
                   gamma: float = 0.5, brightness: float = 0.4,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """An invertible per-clip colour change, identical on all frames (see the module docstring).

    ``mix`` (< 0.5) bounds the channel-mixing weight, ``gamma`` the log of the gamma exponent,
    ``brightness`` the fraction by which values are pulled towards black or white.
    """
    _check_clips(x)
    if not 0.0 <= mix < 0.5 or gamma < 0 or not 0.0 <= brightness < 1.0:
        raise ValueError(f"need 0 <= mix < 0.5, gamma >= 0, 0 <= brightness < 1; got {mix}, {gamma}, {brightness}")
    lo, hi = map(float, value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"colour distortion needs a finite value range, got {value_range}")
    b, c = x.shape[0], x.shape[2]
    u = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    perm = torch.argsort(torch.rand(b, c, generator=generator), dim=1)
    eye = torch.eye(c)
    cyclic = eye.roll(1, dims=1)
    a = _uniform(b, 0.0, mix, generator)[:, None, None]
    matrix = ((1 - a) * eye + a * cyclic) @ eye[perm]  # [B, C, C]: permute channels, then mix
    exponent = torch.exp(_uniform(b, -gamma, gamma, generator))
    factor = 1.0 - _uniform(b, 0.0, brightness, generator)
    brighten = torch.rand(b, generator=generator) < 0.5
    matrix, exponent, factor, brighten = (v.to(x.device) for v in (matrix, exponent, factor, brighten))
    u = torch.einsum("bij,btjhw->btihw", matrix.to(x.dtype), u).clamp(0.0, 1.0)  # clamp only absorbs rounding
    u = u.pow(exponent.to(x.dtype).view(b, 1, 1, 1, 1))
    f = factor.to(x.dtype).view(b, 1, 1, 1, 1)
    u = torch.where(brighten.view(b, 1, 1, 1, 1), 1.0 - f * (1.0 - u), f * u)
    return u * (hi - lo) + lo


def spectral_offset(x: torch.Tensor, *, gain: float = 0.5, tilt: float = 0.5,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Audio: add a per-clip gain and spectral tilt (in clip standard deviations) to every step.

    Features are ``[B, T, C=bins, 1, 1]``; the offset for bin ``k`` of ``C`` is
    ``std * (g + s * (k / (C - 1) - 1/2))`` with ``g ~ U(-gain, gain)``, ``s ~ U(-tilt, tilt)``.
    """
    _check_clips(x)
    b, c = x.shape[0], x.shape[2]
    ramp = torch.linspace(-0.5, 0.5, c) if c > 1 else torch.zeros(1)
    offset = _uniform(b, -gain, gain, generator)[:, None] + _uniform(b, -tilt, tilt, generator)[:, None] * ramp
    std = x.detach().flatten(1).std(dim=1).clamp_min(1e-6)
    offset = offset.to(device=x.device, dtype=x.dtype) * std[:, None]
    return x + offset.view(b, 1, c, 1, 1)


def decoder_artefacts(x: torch.Tensor, *, probability: float = 0.5, blur: float = 1.0, noise: float = 0.08,
                      shift: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """The artefacts generated clips carry, for training judges that read decodes as they read real clips.

    ``x`` ``[B, T, C, H, W]`` in [0, 1]. Each of three corruptions is applied to a clip with
    ``probability`` (parameters drawn per clip, shared by its frames, from ``generator``): a Gaussian
    blur with sigma ``U(0, blur)`` (a blurry decoder), additive per-pixel colour noise with std
    ``U(0, noise)`` (a short-trained diffusion decoder's speckle), and a translation by up to
    ``shift`` pixels (a slightly misplaced sprite). The result is clipped to [0, 1]. Labels are
    unchanged: none of these alters what the clip shows or how it moves.
    """
    _check_clips(x)
    b = x.shape[0]
    out = x
    pick = torch.rand(3, b, generator=generator) < probability
    if blur > 0 and pick[0].any():
        sigma = _uniform(b, 0.05, blur, generator)
        taps = torch.arange(-2, 3, dtype=torch.float32)
        kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
        kernel = kernel / kernel.sum(1, keepdim=True)  # [B, 5]
        per_clip = out[0].numel() // (x.shape[-2] * x.shape[-1])  # T * C planes per clip
        weights = kernel.repeat_interleave(per_clip, 0).to(out)  # one separable kernel per plane
        planes = out.reshape(1, -1, *x.shape[-2:])
        blurred = F.conv2d(F.pad(planes, (2, 2, 0, 0), mode="replicate"), weights[:, None, None, :],
                           groups=planes.shape[1])
        blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), weights[:, None, :, None],
                           groups=planes.shape[1]).reshape(x.shape)
        out = torch.where(pick[0].to(out.device)[:, None, None, None, None], blurred, out)
    if noise > 0 and pick[1].any():
        std = (_uniform(b, 0.0, noise, generator) * pick[1]).to(out)
        out = out + std[:, None, None, None, None] * torch.randn(out.shape, generator=generator).to(out)
    if shift > 0 and pick[2].any():
        moves = torch.randint(-shift, shift + 1, (b, 2), generator=generator)
        rows = [torch.roll(out[i], shifts=(int(moves[i, 0]), int(moves[i, 1])), dims=(-2, -1)) if pick[2, i] else out[i]
                for i in range(b)]
        out = torch.stack(rows)
    return out.clamp(0.0, 1.0)
