"""Regularisers shared by the disentanglement methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["orthogonality_loss"]


def orthogonality_loss(static: torch.Tensor, dynamic: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean squared cosine similarity between the static code and every dynamic code.

    ``static`` ``[B, D]`` and ``dynamic`` ``[B, T, D]`` (same width). DiViD eq. 4 penalises the
    overlap of ``s`` and each ``d_t`` to keep static content out of the dynamic tokens; the cosine
    form is used so the penalty cannot be met by shrinking the codes (the decoder's cross-attention
    re-projects them, so their norms are otherwise free). 0 when every ``d_t`` is orthogonal to ``s``.
    """
    if static.shape[-1] != dynamic.shape[-1]:
        raise ValueError(f"orthogonality needs equal widths, got static {static.shape[-1]} and dynamic {dynamic.shape[-1]}")
    s = F.normalize(static.float(), dim=-1, eps=eps)[:, None]
    d = F.normalize(dynamic.float(), dim=-1, eps=eps)
    return (s * d).sum(-1).pow(2).mean()
