"""Faces, offline default: dlib 68-point landmarks (AKD) and dlib's ResNet identity embedding (AED).

The weights ship inside the ``face_recognition_models`` wheel, so this runs with no download.
Frames are upscaled (bilinear) so that their short side is at least ``upsample_to`` pixels before
detection: dlib's HOG detector misses faces smaller than ~80 px, and the benchmark's faces are
64 px. Coordinates are mapped back to the input frame's pixels. ``detector="full"`` skips
detection and takes the whole frame as the face box (for tightly cropped faces).

Not the papers' models (DiffSDA used face-alignment's FAN landmarks and DeepFace VGG-Face):
landmark layout and scale match (iBUG 68 points, pixels) but detector/regressor errors differ,
and identity distances are on dlib's scale (same person < 0.6), not VGG-Face's. Numbers are
comparable between methods scored with this backend, not with the published tables.
The 68-point predictor was trained on iBUG 300-W, whose licence excludes commercial use.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..hookspecs import hookimpl
from . import Backend, Embeddings, Keypoints, frames_to_uint8, missing_module_reason

INSTALL = "pip install 'seqbench[faces]'  (or: pip install dlib-bin face_recognition_models)"
_MODELS: dict[tuple[str, str], Any] = {}
MODEL_FILES = {"landmarks68": "shape_predictor_68_face_landmarks.dat", "landmarks5": "shape_predictor_5_face_landmarks.dat",
               "resnet": "dlib_face_recognition_resnet_model_v1.dat"}


def models_dir(override: str | Path | None = None) -> Path:
    """The folder with dlib's ``.dat`` files inside the installed ``face_recognition_models`` wheel.

    Located with ``importlib`` rather than by importing the package: its ``__init__`` needs
    ``pkg_resources``, which setuptools >= 81 no longer provides.
    """
    if override:
        return Path(override)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"face_recognition_models is not installed; {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _load(kind: str, folder: Path) -> Any:
    import dlib

    key = (kind, str(folder))
    if key not in _MODELS:
        files = MODEL_FILES
        if kind == "detector":
            _MODELS[key] = dlib.get_frontal_face_detector()
        else:
            path = folder / files[kind]
            if not path.is_file():
                raise FileNotFoundError(f"dlib model file {path} is missing; reinstall face_recognition_models "
                                        f"({INSTALL})")
            loader = dlib.face_recognition_model_v1 if kind == "resnet" else dlib.shape_predictor
            _MODELS[key] = loader(str(path))
    return _MODELS[key]


class _DlibFaces(Backend):
    families: ClassVar[tuple[str, ...]] = ("faces",)
    extra: ClassVar[str | None] = "faces"
    install: ClassVar[str] = INSTALL

    def __init__(self, detector: str = "hog", upsample_to: int = 256, models: str | None = None, **options: Any):
        super().__init__(detector=detector, upsample_to=upsample_to, models=models, **options)
        if detector not in ("hog", "full"):
            raise ValueError(f"{self.name}: detector={detector!r}; use 'hog' or 'full'")
        self.detector_mode, self.upsample_to, self.models = detector, int(upsample_to), models

    def unavailable_reason(self) -> str | None:
        reason = missing_module_reason(("dlib", "face_recognition_models"), INSTALL)
        if reason is None:
            try:
                folder = models_dir(self.models)
            except FileNotFoundError as exc:
                return str(exc)
            missing = [f for f in MODEL_FILES.values() if not (folder / f).is_file()]
            if missing:
                return f"dlib model files {', '.join(missing)} are not in {folder}; {INSTALL}"
        return reason

    def _prepare(self, frames: Any) -> tuple[np.ndarray, float]:
        """uint8 RGB frames, upscaled so the short side is >= ``upsample_to``, and the scale used."""
        import torch
        import torch.nn.functional as F

        x = torch.as_tensor(frames).float()
        scale = max(1.0, self.upsample_to / min(x.shape[-2:]))
        if scale > 1.0:
            size = (int(round(x.shape[-2] * scale)), int(round(x.shape[-1] * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return frames_to_uint8(x), scale

    def _faces(self, image: np.ndarray) -> Any:
        """The largest detected face box, or ``None``."""
        import dlib

        if self.detector_mode == "full":
            return dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1)
        boxes = _load("detector", Path(".")).__call__(image, 0)
        if len(boxes) == 0:
            return None
        return max(boxes, key=lambda r: r.width() * r.height())

    def _measure_faces(self, frames: Any, shape: tuple[int, ...],
                       measure: Callable[[np.ndarray, Any], Any]) -> tuple[np.ndarray, np.ndarray, float]:
        """``measure(image, box)`` of each frame's largest face (NaN where none), which frames had one, the scale.

        Dlib's API is one image at a time, and a frame without a face is left out the same way
        whatever is measured on it.
        """
        images, scale = self._prepare(frames)
        values = np.full((len(images), *shape), np.nan)
        found = np.zeros(len(images), dtype=bool)
        for i, image in enumerate(images):
            box = self._faces(image)
            if box is None:
                continue
            values[i] = measure(image, box)
            found[i] = True
        return values, found, scale


class DlibLandmarks(_DlibFaces):
    """68 iBUG face landmarks per frame (dlib HOG detector + ensemble-of-trees shape predictor)."""

    name: ClassVar[str] = "dlib-landmarks"
    kind: ClassVar[str] = "landmarks"
    description: ClassVar[str] = "dlib 68-point face landmarks (offline, weights in face_recognition_models)"

    def __call__(self, frames: Any) -> Keypoints:
        predictor = _load("landmarks68", models_dir(self.models))
        points, found, scale = self._measure_faces(
            frames, (68, 2), lambda image, box: [(p.x, p.y) for p in predictor(image, box).parts()])
        return Keypoints(points / scale, np.repeat(found[:, None], 68, axis=1))


class DlibIdentity(_DlibFaces):
    """128-d dlib ResNet face descriptor per frame (aligned with the 5-point predictor)."""

    name: ClassVar[str] = "dlib-identity"
    kind: ClassVar[str] = "identity"
    description: ClassVar[str] = "dlib ResNet 128-d face identity embedding (offline; same person < 0.6)"

    def __call__(self, frames: Any) -> Embeddings:
        folder = models_dir(self.models)
        aligner, encoder = _load("landmarks5", folder), _load("resnet", folder)
        vectors, found, _ = self._measure_faces(
            frames, (128,), lambda image, box: np.asarray(encoder.compute_face_descriptor(image, aligner(image, box))))
        return Embeddings(vectors, found)


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [DlibLandmarks, DlibIdentity]
