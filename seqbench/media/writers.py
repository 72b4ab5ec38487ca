"""Writers of media in the layouts real datasets have: fixtures for tests and benchmarks, never used to prepare data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import require


def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str | None = None) -> Path:
    """Write RGB frames ``[T, H, W, 3]`` uint8 with PyAV: libx264 (mp4, mov), mpeg4 (avi), gif."""
    av = require("av")
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
