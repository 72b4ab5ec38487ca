"""The built-in evaluation backends, one plugin module each (landmarks, identity, pose, learned keypoints).

The contract they implement (:class:`Backend`, :class:`Keypoints`, :class:`Embeddings` and the
helpers) is :mod:`seqbench.backend`; it is re-exported here because built-in and third-party
backends have always imported it from ``seqbench.backends``.
"""

from __future__ import annotations

from ..backend import KEYPOINT_KINDS, Backend, Embeddings, Keypoints, frames_to_uint8, missing_module_reason

__all__ = ["Backend", "Embeddings", "Keypoints", "KEYPOINT_KINDS", "frames_to_uint8", "missing_module_reason"]
