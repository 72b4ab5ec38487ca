"""``akd``: average keypoint distance (DiffSDA app. D) between reference and generated frames.

``AKD = mean over valid frames of mean_{k, j} |L_ref[k, j] - L_gen[k, j]|`` over the backend's
keypoints ``k`` and coordinates ``j`` in pixels (DiffSDA's and FOMM's convention; the
``distance=euclidean`` option gives the mean per-keypoint Euclidean distance instead). Keys:
``akd/recon`` (reference vs reconstruction), ``akd/swap`` ("dynamics frozen": reference ``a`` vs
``decode(s_b, d_a)`` over the fixed pairs), ``akd/<variant>_failure`` (frames left out because a
detection failed on either side), ``chance/akd/<variant>`` (AKD between the real ``a`` and ``b``).
Lower is better everywhere. See :mod:`metrics._distances` for the shared protocol and the
backends: synthetic sprites -> ``sprites-keypoints``, faces -> ``dlib-landmarks``, bodies ->
``mediapipe-pose``; override with ``akd.backend=NAME``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from seqbench.backends import KEYPOINT_KINDS
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.types import Factors

from ._distances import FrameDistanceMetric, distance_outputs


class AverageKeypointDistance(FrameDistanceMetric):
    name = "akd"
    version = "1"
    description = "average keypoint distance (reconstruction and dynamics-frozen swap), per-frame, with failure rates"
    kinds: ClassVar[tuple[str, ...]] = KEYPOINT_KINDS
    option_defaults: ClassVar[dict[str, Any]] = {**FrameDistanceMetric.option_defaults, "distance": "l1"}

    def check_options(self) -> None:
        super().check_options()
        distance = self.resolved_options()["distance"]
        if distance not in ("l1", "euclidean"):
            raise ConfigError(f"metric option akd.distance={distance!r}: use l1 or euclidean")
    outputs = distance_outputs("akd", "keypoint distance", "dynamics frozen: x_a vs decode(s_b, d_a)",
                               "detection failed on either side", unit="px")

    def distance(self, ref, gen, opts: dict[str, Any]):
        from seqbench.functional import average_keypoint_distance

        if opts["distance"] not in ("l1", "euclidean"):
            raise ConfigError(f"metric option akd.distance={opts['distance']!r}: use l1 or euclidean")
        return average_keypoint_distance(ref[0], gen[0], ref[1], gen[1], distance=opts["distance"])

    def swap_codes(self, codes: Factors, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return codes.static[b], codes.dynamic[a]


@hookimpl
def seqbench_add_metrics():
    return [AverageKeypointDistance]



