"""Bodies through ONNX Runtime: RTMPose (the mmpose model family) via rtmlib, without mmpose or mmcv.

The ONNX file is the user's (``backend_onnx_model=PATH``; rtmlib would otherwise download it);
``backend_input_size`` is the model's (width, height) input, 192x256 for the COCO-17 RTMPose
models. Each frame is one person box covering the whole frame; keypoints are in input pixels and
valid when their SimCC score is at least ``min_score``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..hookspecs import hookimpl
from . import Backend, Keypoints, frames_to_uint8, missing_module_reason

INSTALL = "pip install 'seqbench[pose-onnx]'  (rtmlib + onnxruntime), and give the RTMPose .onnx file"


class RTMPoseONNX(Backend):
    name: ClassVar[str] = "rtmpose"
    kind: ClassVar[str] = "pose"
    families: ClassVar[tuple[str, ...]] = ("bodies",)
    extra: ClassVar[str | None] = "pose-onnx"
    install: ClassVar[str] = INSTALL
    description: ClassVar[str] = "RTMPose ONNX through rtmlib/onnxruntime (user-supplied model file)"

    def __init__(self, onnx_model: str | None = None, input_size: str | tuple[int, int] = (192, 256),
                 device: str = "cpu", min_score: float = 0.3, **options: Any):
        super().__init__(onnx_model=onnx_model, input_size=input_size, device=device, min_score=min_score, **options)
        if isinstance(input_size, str):
            input_size = tuple(int(v) for v in input_size.lower().replace("x", ",").split(","))
        self.onnx_model, self.input_size = onnx_model, tuple(input_size)
        self.device, self.min_score = device, float(min_score)
        self._model: Any = None

    def unavailable_reason(self) -> str | None:
        reason = missing_module_reason(("rtmlib", "onnxruntime"), INSTALL)
        if reason:
            return reason
        if not self.onnx_model:
            return "rtmpose needs the RTMPose ONNX file: set the metric option akd.backend_onnx_model=PATH"
        if not Path(self.onnx_model).is_file():
            return f"RTMPose ONNX file {self.onnx_model} does not exist"
        return None

    def __call__(self, frames: Any) -> Keypoints:
        if self._model is None:
            from rtmlib import RTMPose

            self._model = RTMPose(onnx_model=str(self.onnx_model), model_input_size=self.input_size,
                                  backend="onnxruntime", device=self.device)
        images = frames_to_uint8(frames)[..., ::-1]  # rtmlib reads BGR like OpenCV
        h, w = images.shape[1:3]
        points, scores = [], []
        for image in images:  # rtmlib runs one image (with its boxes) at a time
            kp, sc = self._model(np.ascontiguousarray(image), bboxes=[[0, 0, w, h]])
            points.append(np.asarray(kp, dtype=np.float64)[0])
            scores.append(np.asarray(sc, dtype=np.float64)[0])
        return Keypoints(np.stack(points), np.stack(scores) >= self.min_score)


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [RTMPoseONNX]
