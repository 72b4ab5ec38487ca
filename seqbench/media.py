"""Media decoding and the decoded-clip cache shared by every real-data dataset adapter.

Real datasets arrive as videos (mp4/avi/mov/gif through PyAV), folders of frames (jpg/png through
Pillow) or waveforms (wav / NIST SPHERE through soundfile). Decoding them is far slower than
training on them, so adapters decode each item once, at the clip length, stride and size of the
settings in use, into uint8 (video) or float32 (audio) ``.npy`` arrays that training memory-maps
(:class:`ClipCacheWriter`). A prepared folder appears only when complete (written under a
temporary name, then renamed), so an interrupted or failed prepare never destroys the previous one.

Heavy packages (``av``, ``soundfile``, ``cv2``) are imported inside the functions that need them,
and a missing one is reported with the pip command that installs it (``seqbench[data]``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataNotFoundError, SeqbenchError
# the prepared-folder life cycle lives in seqbench.prepared_folder; its names stay importable from here
from .prepared_folder import (file_sha256, files_fingerprint, folder_complete, install_folder, new_temporary_folder,
                              verify_checksums)

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".gif", ".mkv", ".webm")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")


class CorruptMediaError(SeqbenchError):
    """A file that exists but cannot be decoded (truncated, empty, not the format its name says)."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class LayoutError(DataNotFoundError):
    """A source folder that does not hold the layout an adapter reads (names what was expected)."""


def require(module: str, package: str | None = None) -> Any:
    """Import an optional dependency, or say exactly how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = package or module
        raise ConfigError(f"this dataset needs the Python package {package!r} ({exc}). Install the data extras: "
                          f"pip install 'seqbench[data]'  (or: pip install {package})") from None


# -- frame sampling -----------------------------------------------------------------------

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


# -- video --------------------------------------------------------------------------------

def _av() -> Any:
    return require("av")


def count_frames(path: Path) -> int:
    """Number of video frames, from the container header or, failing that, by counting packets."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptMediaError(path, "no video stream")
            stream = container.streams.video[0]
            if stream.frames and stream.frames > 0:
                return int(stream.frames)
            return sum(1 for packet in container.demux(stream) if packet.size)
    except CorruptMediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise CorruptMediaError(path, f"cannot open video ({type(exc).__name__}: {exc})") from None


def read_video(path: Path, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Decode RGB frames ``[T, H, W, 3]`` uint8 at ``indices`` (every frame when None).

    Decoding stops after the last wanted frame. A file that fails to decode, or ends before a
    wanted frame (truncated), raises :class:`CorruptMediaError` naming the file.
    """
    av = _av()
    wanted = None if indices is None else np.asarray(indices, dtype=np.int64).ravel()
    last = None if wanted is None else int(wanted.max())
    keep: dict[int, np.ndarray] = {}
    frames: list[np.ndarray] = []
    declared = 0
    n = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptMediaError(path, "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = int(stream.frames or 0)
            wanted_set = None if wanted is None else set(wanted.tolist())
            for frame in container.decode(stream):
                if wanted_set is None:
                    frames.append(frame.to_ndarray(format="rgb24"))
                elif n in wanted_set:
                    keep[n] = frame.to_ndarray(format="rgb24")
                n += 1
                if last is not None and n > last:
                    break
    except CorruptMediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise CorruptMediaError(path, f"cannot decode video after {n} frames ({type(exc).__name__}: {exc})") from None
    if wanted is None:
        if not frames:
            raise CorruptMediaError(path, "no decodable frames")
        if declared and n < declared:
            raise CorruptMediaError(path, f"truncated: decoded {n} of the {declared} frames its header declares")
        return np.stack(frames)
    if last is not None and n <= last:
        raise CorruptMediaError(path, f"truncated or short: decoded {n} frames, needed frame {last}"
                                      + (f" (header declares {declared})" if declared else ""))
    return np.stack([keep[int(i)] for i in wanted])


def frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in frame order (numeric when the names are numbers)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

    def key(p: Path) -> tuple:
        digits = re.findall(r"\d+", p.stem)
        return (int(digits[-1]) if digits else -1, p.name)

    return sorted(files, key=key)


def read_image(path: Path) -> np.ndarray:
    """One RGB image ``[H, W, 3]`` uint8; unreadable files raise :class:`CorruptMediaError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise CorruptMediaError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None


def read_frame_folder(folder: Path, indices: Sequence[int] | np.ndarray | None = None,
                      files: list[Path] | None = None) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` of a folder of images, at ``indices`` (all when None)."""
    files = frame_files(folder) if files is None else files
    if not files:
        raise CorruptMediaError(folder, f"frame folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    pick = range(len(files)) if indices is None else np.asarray(indices).ravel().tolist()
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in pick:
        if i not in cache:
            cache[i] = read_image(files[i])
        out.append(cache[i])
    shapes = {f.shape for f in out}
    if len(shapes) > 1:
        raise CorruptMediaError(folder, f"frames of different sizes {sorted(shapes)}")
    return np.stack(out)


def media_length(path: Path) -> int:
    """Frames in a video file or a frame folder."""
    return len(frame_files(path)) if path.is_dir() else count_frames(path)


def read_media(path: Path, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Frames of a video file or a frame folder (the FOMM layouts mix both)."""
    return read_frame_folder(path, indices) if path.is_dir() else read_video(path, indices)


# -- geometry -----------------------------------------------------------------------------

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


_CASCADES = threading.local()  # OpenCV cascades are not safe to share between threads


def detect_face(frame: np.ndarray, *, max_side: int = 480) -> Box | None:
    """The largest frontal face in an RGB frame (OpenCV Haar cascade), or None.

    Detection runs on a copy scaled to at most ``max_side`` pixels (faster, same boxes up to
    rounding); the box is returned in the frame's own pixels.
    """
    cv2 = require("cv2", "opencv-python-headless<5")
    cascade = getattr(_CASCADES, "frontal", None)
    if cascade is None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not path.is_file():
            raise ConfigError(f"OpenCV's Haar cascade {path} is missing (OpenCV 5 wheels ship none); "
                              f"install opencv-python-headless<5")
        cascade = _CASCADES.frontal = cv2.CascadeClassifier(str(path))
    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, int(width * scale)), max(1, int(height * scale))), interpolation=cv2.INTER_AREA)
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(found) == 0:
        return None
    x, y, w, h = max(found, key=lambda r: r[2] * r[3])
    return (int(round(y / scale)), int(round(x / scale)), int(round(h / scale)), int(round(w / scale)))


# -- audio --------------------------------------------------------------------------------

def sphere_sample_count(path: Path) -> int | None:
    """``sample_count`` declared by a NIST SPHERE header (None for other formats).

    libsndfile sizes SPHERE data from the file length, so a truncated TIMIT file would read as
    a shorter, valid one; comparing with the header's own count catches it.
    """
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head.startswith(b"NIST_1A"):
        return None
    match = re.search(rb"sample_count\s+-i\s+(\d+)", head)
    return int(match.group(1)) if match else None


def audio_length(path: Path) -> tuple[int, int]:
    """(samples, sample rate) from the header of a wav / NIST SPHERE / flac file."""
    sf = require("soundfile")
    try:
        info = sf.info(str(path))
        declared = sphere_sample_count(path)
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        raise CorruptMediaError(path, f"cannot read audio header ({type(exc).__name__}: {exc})") from None
    if declared is not None and info.frames < declared:
        raise CorruptMediaError(path, f"truncated: the SPHERE header declares {declared} samples, the file holds "
                                      f"{info.frames}")
    return int(info.frames), int(info.samplerate)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate; short reads count as truncation."""
    sf = require("soundfile")
    expected, _ = audio_length(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise CorruptMediaError(path, f"cannot decode audio ({type(exc).__name__}: {exc})") from None
    if expected > 0 and len(data) < expected:
        raise CorruptMediaError(path, f"truncated: read {len(data)} of the {expected} samples its header declares")
    if len(data) == 0:
        raise CorruptMediaError(path, "no samples")
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)


def magnitude_spectrogram(waves: np.ndarray, *, n_fft: int = 400, win_length: int = 320,
                          hop_length: int = 165, center: bool = True) -> np.ndarray:
    """Linear STFT magnitudes ``[B, frames, n_fft // 2 + 1]`` float32 of waveforms ``[B, samples]``.

    Hann window of ``win_length`` zero-padded to ``n_fft``; ``center`` reflects-pads by
    ``n_fft // 2`` so frame ``t`` is centred on sample ``t * hop_length`` (a 3200-sample chunk
    gives 20 frames with the DBSE settings).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                      window=torch.hann_window(win_length), center=center, pad_mode="reflect",
                      return_complex=True)
    return spec.abs().transpose(1, 2).contiguous().numpy()


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]`` with unit peak."""
    fmax = sample_rate / 2 if fmax is None else fmax
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None] - lower) / np.maximum(centre - lower, 1e-9)
    fall = (upper - freqs[None]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rise, fall), 0.0, None).astype(np.float32)


SPEECH_FEATURES: tuple[str, ...] = ("linear", "log", "mel")
_LOG_FLOOR = 1e-3


def speech_features(chunks: np.ndarray, feature: str, *, sample_rate: int = 16000, n_fft: int = 400,
                    win_length: int = 320, hop_length: int = 165, mels: int = 80) -> np.ndarray:
    """Un-normalised features ``[B, frames, bins]`` of waveform chunks ``[B, samples]``.

    ``linear`` and ``log``: STFT magnitudes (``n_fft // 2 + 1`` bins; ``log`` is applied by
    :func:`normalise_features`); ``mel``: magnitudes through ``mels`` triangular mel filters.
    """
    if feature not in SPEECH_FEATURES:
        raise ConfigError(f"feature={feature!r}: choose one of {', '.join(SPEECH_FEATURES)}")
    mag = magnitude_spectrogram(chunks, n_fft=n_fft, win_length=win_length, hop_length=hop_length)
    if feature == "mel":
        mag = mag @ mel_filterbank(mels, n_fft, sample_rate).T
    return mag.astype(np.float32)


def normalise_features(rows: np.ndarray, feature: str, peak: float, chunk: int = 2048) -> int:
    """Map raw features to [0, 1] in place, with ``peak`` the largest training value.

    ``linear``: ``value / peak``. ``log`` and ``mel``: ``log(value + f) - log(f)`` over
    ``log(peak + f) - log(f)`` with floor ``f = 1e-3 * peak`` (a 60 dB range). Values above the
    training peak (test data only) are clipped to 1; the number clipped is returned.
    """
    peak = float(peak) if peak > 0 else 1.0
    floor = _LOG_FLOOR * peak
    clipped = 0
    for lo in range(0, len(rows), chunk):
        block = np.asarray(rows[lo:lo + chunk], dtype=np.float64)
        if feature == "linear":
            out = block / peak
        else:
            out = (np.log(block + floor) - np.log(floor)) / (np.log(peak + floor) - np.log(floor))
        clipped += int((out > 1.0).sum())
        rows[lo:lo + chunk] = np.clip(out, 0.0, 1.0).astype(np.float32)
    return clipped


# -- the decoded-clip cache ---------------------------------------------------------------

@dataclass
class SkipLog:
    """Items that could not be used, by path, with the reason (written to ``meta.json``)."""

    strict: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)

    def corrupt(self, error: CorruptMediaError) -> None:
        """Record an unreadable file, or re-raise it when strict."""
        if self.strict:
            raise CorruptMediaError(error.path, error.reason + " (strict=true makes this fatal; fix or remove the "
                                                               "file, or prepare without strict to skip it)")
        log.warning("skipping unreadable file %s: %s", error.path, error.reason)
        self.skipped.append({"path": error.path, "reason": error.reason})

    def note(self, path: Path | str, what: str) -> None:
        """Record a readable item that needed a fallback (padded short clip, no face found...)."""
        self.notes.append({"path": str(path), "note": what})

    def summary(self) -> str:
        parts = []
        if self.skipped:
            parts.append(f"{len(self.skipped)} unreadable file(s) skipped (listed in meta.json 'skipped'; "
                         f"first: {self.skipped[0]['path']}: {self.skipped[0]['reason']})")
        if self.notes:
            kinds: dict[str, int] = {}
            for n in self.notes:
                kinds[n["note"]] = kinds.get(n["note"], 0) + 1
            parts.append("; ".join(f"{count} item(s): {what}" for what, count in sorted(kinds.items())))
        return "; ".join(parts)


class ClipCacheWriter:
    """Write one prepared dataset folder: per split ``x_{split}.npy`` plus integer side arrays.

    Rows are appended in order; the row count per split is an upper bound given up front (items
    that turn out unreadable leave it short, and :meth:`finish` compacts). Everything goes to a
    temporary folder next to ``target`` that replaces ``target`` only in :meth:`finish`.
    """

    def __init__(self, target: Path, rows: dict[str, int], item_shape: tuple[int, ...], dtype: Any = np.uint8):
        self.target = Path(target)
        self.tmp = new_temporary_folder(self.target)
        self.item_shape, self.dtype = tuple(item_shape), np.dtype(dtype)
        self.capacity = dict(rows)
        self.count = {split: 0 for split in rows}
        self.x = {split: np.lib.format.open_memmap(self.tmp / f"x_{split}.npy", mode="w+", dtype=self.dtype,
                                                   shape=(max(1, n),) + self.item_shape)
                  for split, n in rows.items()}
        self.side: dict[str, dict[str, list[np.ndarray]]] = {split: {} for split in rows}
        self._fds: dict[str, int] = {}
        self.started = time.perf_counter()

    def __enter__(self) -> "ClipCacheWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()

    def abort(self) -> None:
        """Drop the temporary folder (the previous prepared folder, if any, is untouched)."""
        self._close_fds()
        self.x = {}
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, split: str, clips: np.ndarray, **side: Any) -> None:
        """Append ``clips [k, *item_shape]`` with per-clip side values (scalars are repeated)."""
        k = len(clips)
        start = self.count[split]
        if start + k > self.capacity[split]:
            raise RuntimeError(f"{split}: more clips than the {self.capacity[split]} announced")
        self.x[split][start:start + k] = clips
        self.count[split] = start + k
        for name, value in side.items():
            arr = np.asarray(value)
            self.side[split].setdefault(name, []).append(np.broadcast_to(arr, (k,) + arr.shape[1:]) if arr.ndim
                                                         else np.full(k, arr))

    def put(self, split: str, rows: np.ndarray, clips: np.ndarray) -> None:
        """Write clips at arbitrary row positions (for adapters that produce rows out of order).

        Uses ``pwrite`` on the file rather than the memory map: scattered writes through a map
        cost a page fault per 4 KiB page. Call :meth:`mark_written` with the final row count.
        """
        array = self.x[split]
        offset = array.offset if hasattr(array, "offset") else 0
        row_bytes = int(np.prod(self.item_shape)) * self.dtype.itemsize
        fd = self._fds.get(split)
        if fd is None:
            fd = self._fds[split] = os.open(self.tmp / f"x_{split}.npy", os.O_WRONLY)
        block = np.ascontiguousarray(clips, dtype=self.dtype)
        for row, clip in zip(np.asarray(rows).tolist(), block):
            if not 0 <= row < self.capacity[split]:
                raise IndexError(f"{split}: row {row} outside the {self.capacity[split]} announced")
            os.pwrite(fd, clip.tobytes(), offset + row * row_bytes)

    def mark_written(self, split: str, count: int) -> None:
        self.count[split] = count

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def rows(self, split: str) -> np.ndarray:
        """The written rows of a split (a writable memmap view, e.g. to normalise in place)."""
        return self.x[split][:self.count[split]]

    def finish(self, meta: dict[str, Any]) -> Path:
        """Compact, write side arrays and ``meta.json`` (with file checksums), move into place."""
        files: list[str] = []
        checksums: dict[str, str] = {}
        self._close_fds()
        for split, array in list(self.x.items()):
            n = self.count[split]
            array.flush()
            path = self.tmp / f"x_{split}.npy"
            if n != array.shape[0]:  # fewer rows than announced: copy into an array of the right size
                compact = np.lib.format.open_memmap(self.tmp / f".x_{split}.compact.npy", mode="w+",
                                                    dtype=self.dtype, shape=(n,) + self.item_shape)
                for lo in range(0, n, 512):
                    compact[lo:lo + 512] = array[lo:min(n, lo + 512)]
                compact.flush()
                del compact, array
                self.x[split] = None  # type: ignore[assignment]
                os.replace(self.tmp / f".x_{split}.compact.npy", path)
            else:
                del array
                self.x[split] = None  # type: ignore[assignment]
            files.append(path.name)
            for name, parts in self.side[split].items():
                values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
                side_path = self.tmp / f"{name}_{split}.npy"
                np.save(side_path, values)
                files.append(side_path.name)
        for name in files:
            checksums[name] = file_sha256(self.tmp / name)
        data_sha = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(checksums.items())).encode()).hexdigest()
        meta = dict(meta)
        meta.update({"files": sorted(files), "sha256": checksums, "data_sha256": data_sha,
                     "clips": dict(self.count), "item_shape": list(self.item_shape), "dtype": self.dtype.name,
                     "prepare_seconds": round(time.perf_counter() - self.started, 3)})
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        install_folder(self.tmp, self.target)
        self.x = {}
        return self.target


def load_prepared(directory: Path, split: str, side: Iterable[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Memory-map ``x_{split}.npy`` and load the named side arrays of a prepared folder."""
    x = np.load(directory / f"x_{split}.npy", mmap_mode="r")
    out = {}
    for name in side:
        path = directory / f"{name}_{split}.npy"
        if path.is_file():
            out[name] = np.load(path, allow_pickle=False)
    return x, out


# -- bounded parallel map -----------------------------------------------------------------

def ordered_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, result or exception)`` in input order, at most ``2 * workers`` in flight.

    Threads, because decoding (FFmpeg, libjpeg, libsndfile) and resizing (torch) release the GIL;
    exceptions are returned, not raised, so the caller decides to skip or stop.
    """
    def call(item: Any) -> Any:
        try:
            return fn(item)
        except Exception as exc:  # handed to the caller, which re-raises what it cannot handle
            return exc

    if workers <= 1:
        for item in items:
            yield item, call(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[tuple[Any, Future]] = []
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(call, item)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            item, future = pending.pop(0)
            yield item, future.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(call, nxt)))


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


# -- writers (fixtures in the real layouts, for tests and benchmarks) ----------------------

def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str | None = None) -> Path:
    """Write RGB frames ``[T, H, W, 3]`` uint8 with PyAV: libx264 (mp4, mov), mpeg4 (avi), gif."""
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or {".avi": "mpeg4", ".gif": "gif"}.get(path.suffix.lower(), "libx264")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, frames: np.ndarray, pattern: str = "{:02d}.jpg", start: int = 0) -> Path:
    """Write frames as numbered images (format from the pattern's suffix) with Pillow."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(np.ascontiguousarray(frame)).save(folder / pattern.format(t + start), quality=95)
    return folder


def write_sphere(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """Write a NIST SPHERE 16-bit PCM file (the TIMIT format) with soundfile."""
    sf = require("soundfile")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, format="NIST", subtype="PCM_16")
    return path
