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
* :func:`unconditional_swaps` - the real clips on top; below, one row per new code from the
  method's prior (``sample``): a new static code decoded with each column's dynamics, or new
  dynamics decoded with each column's static code.
* :func:`pca_traversal` - DiffSDA's Eq. 9 in the static (or dynamic) space: per clip, one row per
  principal component, the input then the decodes at each ``alpha``.
* zero-shot swaps - :func:`adapt_clips` brings another dataset's clips into the model's layout
  (same modality, frames and size; grey <-> RGB and value range converted), then :func:`swap_grid`.

Audio (``modality == "audio"``): a clip's frames are feature vectors, so a clip is drawn as one
spectrogram panel (time left to right, bin 0 at the bottom) instead of a strip of frames; every
layout above takes ``modality`` and works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from .method import Method
    from .types import DataSpec

__all__ = ["GAP", "AUDIO_STEP_PX", "fixed_clip_indices", "to_uint8", "strip", "spectrogram", "clip_images",
           "layout_grid", "reconstruction_rows", "swap_grid", "layout_swap_grid", "unconditional_swaps", "PCABasis",
           "fit_pca", "collect_codes", "traverse", "pca_traversal", "zero_shot_reason", "adapt_clips", "save_png",
           "display_scale", "PICTURES", "VisualInputs", "visual_inputs", "render_pictures", "write_pictures"]

GAP = 2  # pixels between tiles (background colour 255: white separators)
AUDIO_STEP_PX = 4  # a spectrogram's time step is this many pixels wide (feature bins are one pixel tall)
Modality = Literal["video", "audio"]


def fixed_clip_indices(n_test: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` sorted test-clip indices drawn with ``seed``: the same clips for every method."""
    if count > n_test:
        raise ValueError(f"asked for {count} clips but the test split has {n_test}")
    return np.sort(np.random.default_rng(seed).choice(n_test, size=count, replace=False))


def _numpy(x: "torch.Tensor | np.ndarray") -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)


def to_uint8(x: "torch.Tensor | np.ndarray", value_range: tuple[float, float]) -> np.ndarray:
    """Frames ``[..., C, H, W]`` in ``value_range`` -> ``uint8`` ``[..., H, W, 3]`` (grey repeated)."""
    arr = _numpy(x)
    lo, hi = map(float, value_range)
    arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.round(arr * 255).astype(np.uint8)


def strip(frames: np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` -> ``[H, T * W, 3]``: the frames of one clip side by side."""
    return np.concatenate(list(frames), axis=1)


def spectrogram(clip: "torch.Tensor | np.ndarray", value_range: tuple[float, float],
                step_px: int = AUDIO_STEP_PX) -> np.ndarray:
    """An audio clip ``[T, C, H, W]`` (feature vectors, ``H`` or ``W`` = 1) -> ``uint8`` ``[F, T * step_px, 3]``.

    Feature bin 0 is the bottom row, time runs left to right, louder is brighter (grey levels,
    so a pixel reads back as its value).
    """
    arr = _numpy(clip)
    arr = arr.reshape(arr.shape[0], -1)  # [T, F]
    lo, hi = map(float, value_range)
    grey = np.round(np.clip((arr - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)
    panel = np.repeat(grey.T[::-1], step_px, axis=1)  # [F, T * step_px], bin 0 at the bottom
    return np.repeat(panel[..., None], 3, axis=-1)


def clip_images(x: "torch.Tensor | np.ndarray", value_range: tuple[float, float],
                modality: Modality = "video") -> np.ndarray:
    """Clips ``[B, T, C, H, W]`` -> one image per clip ``[B, h, w, 3]``: a strip of frames, or a spectrogram."""
    if modality == "audio":
        return np.stack([spectrogram(clip, value_range) for clip in x])
    return np.stack([strip(frames) for frames in to_uint8(x, value_range)])


def _head(clip_image: np.ndarray, frame_width: int, modality: Modality) -> np.ndarray:
    """A row's margin picture of a clip: its first frame (video), its whole spectrogram (audio)."""
    return clip_image if modality == "audio" else clip_image[:, :frame_width]


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


def _blank(like: np.ndarray) -> np.ndarray:
    return np.full_like(like, 255)


def layout_grid(column_heads: list[np.ndarray], row_heads: list[np.ndarray], cells: list[list[np.ndarray]],
                gap: int = GAP) -> np.ndarray:
    """A table of images: a blank corner, ``column_heads`` on top, ``row_heads`` on the left, ``cells[i][j]``."""
    corner = np.full((column_heads[0].shape[0], row_heads[0].shape[1], 3), 255, np.uint8)
    rows = [[corner] + list(column_heads)]
    rows += [[row_heads[i]] + list(cells[i]) for i in range(len(row_heads))]
    return _stack(rows, gap)


def layout_swap_grid(static_real: np.ndarray, dynamic_real: np.ndarray, swaps: np.ndarray,
                     gap: int = GAP) -> np.ndarray:
    """The swap-grid image from uint8 clips: ``static_real`` ``[n, T, H, W, 3]``, ``dynamic_real``
    ``[m, T, H, W, 3]`` and ``swaps`` ``[n, m, T, H, W, 3]`` (``swaps[i, j]`` = static i, dynamics j)."""
    n, m = swaps.shape[:2]
    return layout_grid([strip(clip) for clip in dynamic_real], [static_real[i, 0] for i in range(n)],
                       [[strip(swaps[i, j]) for j in range(m)] for i in range(n)], gap)


def _generator(seed: int) -> "torch.Generator":
    import torch

    return torch.Generator().manual_seed(seed)


def _decode(method: "Method", static: "torch.Tensor", dynamic: "torch.Tensor", seed: int) -> "torch.Tensor":
    """One seeded decode: every picture decodes with a fresh generator, so decodes compare across pictures."""
    import torch

    from .types import Factors

    with torch.no_grad():
        return method.decode(Factors(static=static, dynamic=dynamic), generator=_generator(seed))


def _encode(method: "Method", clips: "torch.Tensor"):
    import torch

    with torch.no_grad():
        return method.encode(clips.to(method.device))


def reconstruction_rows(method: "Method", clips: "torch.Tensor", value_range: tuple[float, float], *,
                        seed: int = 0, modality: Modality = "video") -> np.ndarray:
    """Input strip above reconstruction strip for each clip of ``clips`` ``[B, T, C, H, W]``."""
    codes = _encode(method, clips)
    recon = _decode(method, codes.static, codes.dynamic, seed)
    real, fake = clip_images(clips, value_range, modality), clip_images(recon, value_range, modality)
    return _stack([[image] for pair in zip(real, fake) for image in pair])


def swap_grid(method: "Method", static_clips: "torch.Tensor", dynamic_clips: "torch.Tensor",
              value_range: tuple[float, float], *, seed: int = 0, modality: Modality = "video") -> np.ndarray:
    """Decode every (static donor, dynamic donor) pair and lay it out as :func:`layout_swap_grid` does."""
    a, b = _encode(method, static_clips), _encode(method, dynamic_clips)
    n, m = a.static.shape[0], b.dynamic.shape[0]
    static = a.static.repeat_interleave(m, dim=0)
    dynamic = b.dynamic.repeat(n, *([1] * (b.dynamic.dim() - 1)))
    swaps = clip_images(_decode(method, static, dynamic, seed), value_range, modality)
    static_real = clip_images(static_clips, value_range, modality)
    frame_width = static_clips.shape[-1]
    return layout_grid(list(clip_images(dynamic_clips, value_range, modality)),
                       [_head(image, frame_width, modality) for image in static_real],
                       [[swaps[i * m + j] for j in range(m)] for i in range(n)])


def unconditional_swaps(method: "Method", clips: "torch.Tensor", value_range: tuple[float, float], *,
                        which: Literal["static", "dynamic"], count: int = 3, seed: int = 0,
                        modality: Modality = "video") -> np.ndarray:
    """The real clips on top, then ``count`` rows each decoded with one code drawn from the prior.

    ``which="static"``: row ``k`` is a new static code ``s_k`` with each column's dynamics frozen (the
    motion should follow the column, the appearance the row). ``which="dynamic"``: new dynamics
    ``d_k`` with each column's static code frozen. Needs :meth:`Method.can_sample`.
    """
    import torch

    from .errors import NotApplicable

    if not method.can_sample():
        raise NotApplicable(f"{getattr(method, 'name', '') or type(method).__name__} has no sample(): no prior to draw new codes from")
    codes = _encode(method, clips)
    b, frames = codes.dynamic.shape[:2]
    with torch.no_grad():
        drawn = method.sample(count, frames, which, generator=_generator(seed)).to(method.device)
    rows = [list(clip_images(clips, value_range, modality))]
    for k in range(count):
        if which == "static":
            static, dynamic = drawn[k:k + 1].expand(b, *drawn.shape[1:]), codes.dynamic
        else:
            static, dynamic = codes.static, drawn[k:k + 1].expand(b, *drawn.shape[1:])
        rows.append(list(clip_images(_decode(method, static, dynamic, seed), value_range, modality)))
    return _stack(rows)


@dataclass
class PCABasis:
    """Principal axes of standardised codes (DiffSDA Eq. 9): ``mean``/``scale`` standardise a code,
    ``components[i]`` is ``v_i`` and ``variances[i]`` its eigenvalue ``h_i`` (descending)."""

    mean: "torch.Tensor"
    scale: "torch.Tensor"
    components: "torch.Tensor"
    variances: "torch.Tensor"

    def shift(self, codes: "torch.Tensor", component: int, alpha: float) -> "torch.Tensor":
        """``codes`` moved by ``alpha * sqrt(h_i)`` along ``v_i`` in the standardised space, mapped back.

        Standardise, add, un-standardise collapses to adding ``alpha * sqrt(h_i) * v_i * scale``: at
        ``alpha = 0`` the codes come back bit for bit. The last axis is the code; any leading axes
        (clips, frames) move together.
        """
        if not 0 <= component < len(self.variances):
            raise ValueError(f"component {component}: the basis has {len(self.variances)} components")
        step = alpha * self.variances[component].clamp(min=0).sqrt() * self.components[component] * self.scale
        return codes + step.to(codes.device, codes.dtype)


def fit_pca(codes: "torch.Tensor", eps: float = 1e-6) -> PCABasis:
    """PCA of ``codes`` ``[N, dim]`` after standardising each dimension over the sample."""
    import torch

    codes = codes.detach().double().cpu()
    if codes.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 codes, got {codes.shape[0]}")
    mean = codes.mean(0)
    scale = codes.std(0).clamp(min=eps)
    z = (codes - mean) / scale
    covariance = z.T @ z / (z.shape[0] - 1)
    variances, vectors = torch.linalg.eigh(covariance)
    order = torch.argsort(variances, descending=True)
    return PCABasis(mean.float(), scale.float(), vectors[:, order].T.contiguous().float(), variances[order].float())


def collect_codes(method: "Method", clips: "torch.Tensor", which: Literal["static", "dynamic"],
                  batch_size: int = 32) -> "torch.Tensor":
    """Codes of ``clips`` as rows: ``[N, S]`` static, or every frame's dynamic vector ``[N * T, D]``."""
    import torch

    parts = []
    for start in range(0, clips.shape[0], batch_size):
        codes = _encode(method, clips[start:start + batch_size])
        part = codes.static if which == "static" else codes.dynamic.reshape(-1, codes.dynamic.shape[-1])
        parts.append(part.float().cpu())
    return torch.cat(parts)


def traverse(method: "Method", clips: "torch.Tensor", basis: PCABasis, *, which: Literal["static", "dynamic"],
             component: int, alphas: tuple[float, ...], seed: int = 0) -> list["torch.Tensor"]:
    """Decodes of ``clips`` with their ``which`` code moved along ``component``, one tensor per alpha.

    Each alpha is decoded alone with the same seeded generator as a plain reconstruction, so alpha 0
    is exactly ``decode(encode(x))``. Dynamic traversals move every frame's code by the same step.
    """
    codes = _encode(method, clips)
    out = []
    for alpha in alphas:
        static = basis.shift(codes.static, component, alpha) if which == "static" else codes.static
        dynamic = basis.shift(codes.dynamic, component, alpha) if which == "dynamic" else codes.dynamic
        out.append(_decode(method, static, dynamic, seed))
    return out


def pca_traversal(method: "Method", clips: "torch.Tensor", basis: PCABasis, value_range: tuple[float, float], *,
                  which: Literal["static", "dynamic"], components: int = 3,
                  alphas: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0), seed: int = 0,
                  modality: Modality = "video") -> np.ndarray:
    """Per clip, one row per principal component: the input, then the decode at each alpha."""
    components = min(components, len(basis.variances))
    real = clip_images(clips, value_range, modality)
    rows = []
    decoded = [[clip_images(x, value_range, modality) for x in traverse(method, clips, basis, which=which,
                                                                         component=c, alphas=alphas, seed=seed)]
               for c in range(components)]
    for i in range(clips.shape[0]):
        for c in range(components):
            rows.append([real[i]] + [decoded[c][a][i] for a in range(len(alphas))])
    return _stack(rows)


def zero_shot_reason(model_spec: "DataSpec", data_spec: "DataSpec") -> str | None:
    """``None`` if a model trained on ``model_spec`` can encode ``data_spec``'s clips; else why not."""
    if model_spec.modality != data_spec.modality:
        return f"{data_spec.name} is {data_spec.modality}, the model was trained on {model_spec.modality}"
    model_shape = (model_spec.frames, model_spec.height, model_spec.width)
    data_shape = (data_spec.frames, data_spec.height, data_spec.width)
    if model_shape != data_shape:
        return (f"{data_spec.name} clips are {data_shape[0]} frames of {data_shape[1]}x{data_shape[2]}, the model's "
                f"{model_shape[0]} frames of {model_shape[1]}x{model_shape[2]}")
    channels = {model_spec.channels, data_spec.channels}
    if model_spec.channels != data_spec.channels and not (model_spec.modality == "video" and channels == {1, 3}):
        return f"{data_spec.name} has {data_spec.channels} channels, the model {model_spec.channels}"
    return None


def adapt_clips(clips: "torch.Tensor", data_spec: "DataSpec", model_spec: "DataSpec") -> "torch.Tensor":
    """``data_spec``'s clips in ``model_spec``'s layout: value range mapped, grey repeated to RGB or RGB averaged."""
    reason = zero_shot_reason(model_spec, data_spec)
    if reason:
        raise ValueError(f"zero-shot {data_spec.name} -> model of {model_spec.name}: {reason}")
    lo, hi = map(float, data_spec.value_range)
    new_lo, new_hi = map(float, model_spec.value_range)
    x = (clips.float() - lo) / (hi - lo) * (new_hi - new_lo) + new_lo
    if data_spec.channels == 1 and model_spec.channels == 3:
        x = x.repeat(1, 1, 3, 1, 1)
    elif data_spec.channels == 3 and model_spec.channels == 1:
        x = x.mean(2, keepdim=True)
    return x


def display_scale(spec: "DataSpec", target_px: int = 64) -> int:
    """Nearest-neighbour upscaling that makes a video frame about ``target_px`` tall (1 for audio)."""
    if spec.modality == "audio":
        return 1
    return max(1, target_px // max(1, spec.height))


#: What ``seqbench show --what`` and the run render; each name is one or more pictures.
PICTURES = ("recon", "swaps", "samples", "traversal", "zeroshot")
DEFAULT_CLIPS = 4  # fixed test clips per picture: a 4 x 4 swap grid stays readable
DEFAULT_CODE_CLIPS = 256  # training clips whose codes fix the PCA bases


@dataclass
class VisualInputs:
    """What every picture of one model is made from: fixed test clips shared by every method, the
    training clips whose codes fix the PCA bases, and other datasets' fixed clips for zero-shot swaps."""

    spec: "DataSpec"
    clips: "torch.Tensor"
    code_clips: "torch.Tensor"
    zero_shot: dict[str, tuple["DataSpec", "torch.Tensor"]]
    seed: int = 0


def _fixed_clips(adapter, split: str, count: int, seed: int) -> "torch.Tensor":
    data = adapter.split(split)
    return data.clips(fixed_clip_indices(len(data), min(count, len(data)), seed))


def visual_inputs(adapter, *, others: "list | tuple" = (), clips: int = DEFAULT_CLIPS,
                  code_clips: int = DEFAULT_CODE_CLIPS, seed: int = 0) -> VisualInputs:
    """The fixed inputs for ``adapter``'s dataset (clip indices drawn with ``seed``, the same for every
    method); ``others`` are adapters whose compatible clips become zero-shot inputs."""
    spec = adapter.spec
    zero_shot = {}
    for other in others:
        if other.spec.name != spec.name and zero_shot_reason(spec, other.spec) is None:
            zero_shot[other.spec.name] = (other.spec, _fixed_clips(other, "test", clips, seed))
    return VisualInputs(spec, _fixed_clips(adapter, "test", clips, seed), _fixed_clips(adapter, "train", code_clips, seed),
                        zero_shot, seed)


def render_pictures(method: "Method", inputs: VisualInputs, what: tuple[str, ...] = PICTURES
                    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({picture name: image}, {picture name: why it is missing})`` for the pictures in ``what``.

    One picture failing (a method without a prior, a decode error) never costs the others: its
    reason is returned instead. Names: ``recon``, ``swaps``, ``samples-static``, ``samples-dynamic``,
    ``traversal-static``, ``traversal-dynamic``, ``zeroshot-<dataset>``.
    """
    import torch

    from .errors import NotApplicable

    unknown = sorted(set(what) - set(PICTURES))
    if unknown:
        raise ValueError(f"unknown picture(s) {', '.join(unknown)}; choose from {', '.join(PICTURES)}")
    spec, clips, seed = inputs.spec, inputs.clips, inputs.seed
    value_range, modality = spec.value_range, spec.modality
    jobs: dict[str, object] = {}
    images: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    if "recon" in what:
        jobs["recon"] = lambda: reconstruction_rows(method, clips, value_range, seed=seed, modality=modality)
    if "swaps" in what:
        jobs["swaps"] = lambda: swap_grid(method, clips, clips, value_range, seed=seed, modality=modality)
    for which in ("static", "dynamic"):
        if "samples" in what:
            jobs[f"samples-{which}"] = (lambda which=which: unconditional_swaps(
                method, clips, value_range, which=which, seed=seed, modality=modality))
        if "traversal" in what:
            def traversal(which=which):
                basis = fit_pca(collect_codes(method, inputs.code_clips, which))
                return pca_traversal(method, clips[:2], basis, value_range, which=which, seed=seed, modality=modality)
            jobs[f"traversal-{which}"] = traversal
    if "zeroshot" in what:
        if not inputs.zero_shot:
            missing["zeroshot"] = (f"not applicable: no other dataset with {spec.name}'s modality, frames and size "
                                   f"among the inputs")
        for name, (other_spec, other_clips) in inputs.zero_shot.items():
            jobs[f"zeroshot-{name}"] = (lambda other_spec=other_spec, other_clips=other_clips: swap_grid(
                method, adapt_clips(other_clips, other_spec, spec), adapt_clips(other_clips, other_spec, spec),
                value_range, seed=seed, modality=modality))
    was_training = method.training
    method.eval()
    try:
        for name, job in jobs.items():
            try:
                with torch.no_grad():
                    images[name] = job()
            except NotApplicable as exc:
                missing[name] = f"not applicable: {exc}"
            except Exception as exc:  # a picture is never worth a run
                missing[name] = f"{type(exc).__name__}: {exc}"
    finally:
        method.train(was_training)
    return images, missing


def write_pictures(images: dict[str, np.ndarray], directory: Path | str, spec: "DataSpec") -> list[Path]:
    """Save each picture as ``<directory>/<name>.png``, upscaled so small frames are visible."""
    scale = display_scale(spec)
    return [save_png(image, Path(directory) / f"{name}.png", scale=scale) for name, image in images.items()]


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
