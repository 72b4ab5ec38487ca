"""Bodies, design-card model: a top-down mmpose model (e.g. RTMPose / HRNet on COCO-17), for users who have mmpose.

mmpose 1.x needs mmcv and torchvision builds matching the local torch, which do not install here,
so this backend only runs where the user installed them; its config and checkpoint are user
files (``backend_config=...``, ``backend_checkpoint=...``), never downloaded. Each frame is one
person box covering the whole frame (``inference_topdown``); keypoints are in input pixels and
valid when their score is at least ``min_score``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..hookspecs import hookimpl
from . import Backend, Keypoints, frames_to_uint8, missing_module_reason

INSTALL = "install mmpose 1.x with mmcv and mmengine for your torch (see mmpose's install guide)"


class MMPoseTopDown(Backend):
    name: ClassVar[str] = "mmpose"
    kind: ClassVar[str] = "pose"
    families: ClassVar[tuple[str, ...]] = ("bodies",)
    install: ClassVar[str] = INSTALL
    description: ClassVar[str] = "mmpose top-down pose model from user config + checkpoint"

    def __init__(self, config: str | None = None, checkpoint: str | None = None, device: str = "cpu",
                 min_score: float = 0.3, **options: Any):
        super().__init__(config=config, checkpoint=checkpoint, device=device, min_score=min_score, **options)
        self.config, self.checkpoint, self.device, self.min_score = config, checkpoint, device, float(min_score)
        self._model: Any = None

    def unavailable_reason(self) -> str | None:
        reason = missing_module_reason(("mmpose", "mmcv", "mmengine"), INSTALL)
        if reason:
            return reason
        for option, value in (("config", self.config), ("checkpoint", self.checkpoint)):
            if not value:
                return f"mmpose needs a local model {option}: set the metric option akd.backend_{option}=PATH"
            if not Path(value).is_file():
                return f"mmpose {option} {value} does not exist"
        return None

    def __call__(self, frames: Any) -> Keypoints:
        from mmpose.apis import inference_topdown, init_model

        if self._model is None:
            self._model = init_model(self.config, self.checkpoint, device=self.device)
        images = frames_to_uint8(frames)[..., ::-1]  # mmpose reads BGR like OpenCV
        h, w = images.shape[1:3]
        box = np.array([[0, 0, w, h]], dtype=np.float32)
        points, scores = [], []
        for image in images:
            sample = inference_topdown(self._model, np.ascontiguousarray(image), bboxes=box, bbox_format="xyxy")[0]
            points.append(np.asarray(sample.pred_instances.keypoints[0], dtype=np.float64))
            scores.append(np.asarray(sample.pred_instances.keypoint_scores[0], dtype=np.float64))
        scores_arr = np.stack(scores)
        return Keypoints(np.stack(points), scores_arr >= self.min_score)


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [MMPoseTopDown]
