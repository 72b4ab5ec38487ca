"""Faces, paper-faithful landmarks: face-alignment's FAN (2D, 68 iBUG points), as in DiffSDA's AKD.

The library downloads its weights on first use, which fails offline; seqbench never lets it:
the backend is unavailable (with the fix) until ``2DFAN4-11f355bf06.pth.tar`` is in torch's hub
cache (``$TORCH_HOME/hub/checkpoints/``, or ``weights_dir``). It is built with ``device`` (CPU by
default), ``compile=False`` (``torch.compile`` costs minutes on CPU) and ``flip_input=False``.
Faces: ``boxes="full"`` (default) uses the whole frame as the face box through the ``folder``
detector, which needs no weights (the benchmark's faces are pre-cropped); ``boxes="sfd"`` runs the
S3FD detector and also needs ``s3fd-619a316812.pth``. Numbers are on the papers' scale (same model,
same layout; L1 in pixels of the evaluated resolution). A frame is invalid when no face is found;
``min_score`` additionally drops points whose heatmap peak is below it (off by default, as in the
reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..hookspecs import hookimpl
from . import Backend, Keypoints, frames_to_uint8, missing_module_reason

FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
SFD_FILE = "s3fd-619a316812.pth"
INSTALL = ("pip install 'seqbench[faces-paper]'  (face-alignment 1.5), then copy " + FAN_FILE +
           " into $TORCH_HOME/hub/checkpoints/")
_MODELS: dict[tuple, Any] = {}


def hub_checkpoints(weights_dir: str | Path | None = None) -> Path:
    """Where face-alignment looks for weights: ``weights_dir`` or torch's ``<hub dir>/checkpoints``."""
    if weights_dir:
        return Path(weights_dir)
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


class FanLandmarks(Backend):
    name: ClassVar[str] = "face-alignment"
    kind: ClassVar[str] = "landmarks"
    families: ClassVar[tuple[str, ...]] = ("faces",)
    extra: ClassVar[str | None] = "faces-paper"
    install: ClassVar[str] = INSTALL
    comparable_to_papers: ClassVar[bool] = True
    description: ClassVar[str] = "face-alignment FAN 68-point landmarks (DiffSDA's AKD model; user-supplied weights)"

    def __init__(self, boxes: str = "full", device: str = "cpu", weights_dir: str | None = None,
                 min_score: float | None = None, **options: Any):
        super().__init__(boxes=boxes, device=device, weights_dir=weights_dir, min_score=min_score, **options)
        if boxes not in ("full", "sfd"):
            raise ValueError(f"face-alignment: boxes={boxes!r}; use 'full' (pre-cropped faces) or 'sfd'")
        self.boxes, self.device, self.weights_dir = boxes, str(device), weights_dir
        self.min_score = None if min_score is None else float(min_score)

    def unavailable_reason(self) -> str | None:
        reason = missing_module_reason(("face_alignment",), INSTALL)
        if reason:
            return reason
        folder = hub_checkpoints(self.weights_dir)
        needed = [FAN_FILE] + ([SFD_FILE] if self.boxes == "sfd" else [])
        missing = [name for name in needed if not (folder / name).is_file()]
        if missing:
            return (f"face-alignment weights {', '.join(missing)} are not in {folder} (face-alignment would download "
                    f"them, which needs the network): copy them there or set backend_weights_dir")
        return None

    def _model(self) -> Any:
        key = (self.boxes, self.device, str(hub_checkpoints(self.weights_dir)))
        if key not in _MODELS:
            import os

            import face_alignment

            previous = os.environ.get("TORCH_HOME")
            if self.weights_dir:  # face-alignment reads torch's hub dir: point it at the user's folder
                os.environ["TORCH_HOME"] = str(Path(self.weights_dir).parent.parent)
            try:
                _MODELS[key] = face_alignment.FaceAlignment(
                    face_alignment.LandmarksType.TWO_D, device=self.device, flip_input=False, compile=False,
                    face_detector="sfd" if self.boxes == "sfd" else "folder")
            finally:
                if self.weights_dir:
                    if previous is None:
                        os.environ.pop("TORCH_HOME", None)
                    else:
                        os.environ["TORCH_HOME"] = previous
        return _MODELS[key]

    def __call__(self, frames: Any) -> Keypoints:
        import warnings

        images = frames_to_uint8(frames)
        model = self._model()
        points = np.full((len(images), 68, 2), np.nan)
        valid = np.zeros((len(images), 68), dtype=bool)
        for i, image in enumerate(images):  # face-alignment's API is one image at a time
            boxes = None if self.boxes == "sfd" else [np.array([0, 0, image.shape[1] - 1, image.shape[0] - 1], float)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "No faces were detected": recorded as invalid
                landmarks, scores, _ = model.get_landmarks_from_image(image, detected_faces=boxes,
                                                                      return_landmark_score=True)
            if not landmarks:
                continue
            points[i] = np.asarray(landmarks[0])[:, :2]
            # like the reference, a found face counts; min_score optionally drops low-confidence points
            valid[i] = True if self.min_score is None else np.asarray(scores[0]).reshape(-1) >= self.min_score
        return Keypoints(points, valid)


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [FanLandmarks]
