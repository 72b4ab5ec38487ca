"""Bodies, offline default: MediaPipe Pose (BlazePose, weights inside the mediapipe 0.10.21 wheel).

Newer mediapipe releases ship neither the models nor ``mp.solutions``, and 0.10.21 needs
numpy < 2 and protobuf < 5, so it lives in its own extra (``pip install 'seqbench[pose]'``, or the
lean ``pip install --no-deps mediapipe==0.10.21`` plus its runtime dependencies). Only
``model_complexity=1`` ships inside the wheel. The 33 BlazePose landmarks are mapped to the COCO-17
subset (:mod:`._coco`) in input pixels; a keypoint is valid when its visibility is at least
``min_visibility`` and a frame without a detected person is invalid throughout. Not the papers'
pose model (DiffSDA's TaiChi AKD follows FOMM's keypoint detector): compare methods scored with
this backend with each other only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..hookspecs import hookimpl
from . import Backend, Keypoints, frames_to_uint8, missing_module_reason
from ._coco import BLAZEPOSE_TO_COCO17, COCO17

INSTALL = "pip install 'seqbench[pose]'  (mediapipe==0.10.21; needs numpy<2, protobuf<5, Python <= 3.12)"


class MediaPipePose(Backend):
    name: ClassVar[str] = "mediapipe-pose"
    kind: ClassVar[str] = "pose"
    families: ClassVar[tuple[str, ...]] = ("bodies",)
    extra: ClassVar[str | None] = "pose"
    install: ClassVar[str] = INSTALL
    description: ClassVar[str] = "MediaPipe BlazePose mapped to COCO-17 (offline, weights in the mediapipe wheel)"

    def __init__(self, min_visibility: float = 0.5, min_detection_confidence: float = 0.5, **options: Any):
        super().__init__(min_visibility=min_visibility, min_detection_confidence=min_detection_confidence, **options)
        self.min_visibility, self.min_detection_confidence = float(min_visibility), float(min_detection_confidence)
        self._pose: Any = None

    def unavailable_reason(self) -> str | None:
        reason = missing_module_reason(("mediapipe",), INSTALL)
        if reason:
            return reason
        try:
            import mediapipe as mp

            mp.solutions.pose  # noqa: B018 - removed from mediapipe > 0.10.21
        except Exception as exc:  # the import itself fails with numpy >= 2
            return f"mediapipe is installed but has no usable solutions.pose ({type(exc).__name__}: {exc}); {INSTALL}"
        return None

    def __call__(self, frames: Any) -> Keypoints:
        import mediapipe as mp

        if self._pose is None:
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                min_detection_confidence=self.min_detection_confidence)
        images = frames_to_uint8(frames)
        h, w = images.shape[1:3]
        points = np.full((len(images), len(COCO17), 2), np.nan)
        valid = np.zeros((len(images), len(COCO17)), dtype=bool)
        for i, image in enumerate(images):  # MediaPipe's API is one image at a time
            result = self._pose.process(image)
            if result.pose_landmarks is None:
                continue
            marks = result.pose_landmarks.landmark
            coords = np.array([[marks[j].x * w, marks[j].y * h, marks[j].visibility] for j in BLAZEPOSE_TO_COCO17])
            points[i] = coords[:, :2]
            valid[i] = coords[:, 2] >= self.min_visibility
        return Keypoints(points, valid)


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [MediaPipePose]
