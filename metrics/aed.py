"""``aed``: average Euclidean distance between identity embeddings of reference and generated frames.

``AED = mean over valid frames of ||e_ref - e_gen||_2`` (DiffSDA app. D; plain, not squared,
Euclidean distance as DeepFace's ``euclidean`` metric). Keys: ``aed/recon`` (reference vs
reconstruction), ``aed/swap`` ("static frozen": reference ``a`` vs ``decode(s_a, d_b)`` over the
fixed pairs), ``aed/<variant>_failure`` (frames left out because no face/character was found on
either side), ``chance/aed/<variant>`` (AED between the real ``a`` and ``b``). Lower is better.
Distances are on the backend's own scale: synthetic sprites -> ``sprites-identity``, faces ->
``dlib-identity`` (offline) or ``deepface-vggface`` (the papers' model); override with
``aed.backend=NAME``. See :mod:`metrics._distances` for the shared protocol.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from seqbench.hookspecs import hookimpl
from seqbench.types import Factors

from ._distances import FrameDistanceMetric, distance_outputs


class AverageEuclideanDistance(FrameDistanceMetric):
    name = "aed"
    version = "1"
    description = "identity-embedding distance (reconstruction and static-frozen swap), per-frame, with failure rates"
    kinds: ClassVar[tuple[str, ...]] = ("identity",)
    outputs = distance_outputs("aed", "identity distance", "static frozen: x_a vs decode(s_a, d_b)",
                               "no face on either side")

    def distance(self, ref, gen, opts: dict[str, Any]):
        from seqbench.functional import average_euclidean_distance

        return average_euclidean_distance(ref[0], gen[0], ref[1], gen[1])

    def swap_codes(self, codes: Factors, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return codes.static[a], codes.dynamic[b]


@hookimpl
def seqbench_add_metrics():
    return [AverageEuclideanDistance]
