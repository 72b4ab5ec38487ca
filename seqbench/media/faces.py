"""Face detection for the adapters that crop around the face (OpenCV Haar cascade, offline)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .errors import require
from .geometry import Box


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
