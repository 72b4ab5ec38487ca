"""Decoding video files (mp4/avi/mov/gif through PyAV) and folders of frames (jpg/png through Pillow).

Every reader returns RGB frames ``[T, H, W, 3]`` uint8; a file that cannot be decoded, or ends
before a wanted frame, raises :class:`~seqbench.media.errors.CorruptMediaError` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptMediaError, require

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".gif", ".mkv", ".webm")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")


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
