"""Blocks for the factors a conditional decoder reads: standardisation and a factor-usage probe.

* :class:`FactorNorm` standardises a code over the batch (BatchNorm without affine parameters).
  A conditional diffusion decoder reaches its codes only through cross-attention or AdaGN layers
  whose output projections start at zero, so at step 0 the denoising loss sends the encoder no
  gradient at all; an auxiliary term on the codes (DiViD's orthogonality loss) is then their only
  gradient and is satisfied by a constant code. Measured on DiViD's quick profile (version 1): the
  spread of ``s`` over 64 test clips (std / mean ``|s|``) fell 0.436 -> 0.087 by step 200. A code
  standardised over the batch has unit variance per dimension by construction, so it cannot
  collapse to a constant, and its scale cannot drift away from the decoder's (``|s|`` drifted from
  0.42 to 12-46 against ``|d|`` 4.5, after which shuffling ``s`` changed the error by <= 1%).
* :func:`factor_usage` is the earliest signal that a decoder ignores a factor: its error with the
  true ``(s, d)``, with ``s`` shuffled across the batch and with ``d`` shuffled, under the same
  noise. Every diffusion member logs it at each validation (``usage/...`` in MLflow).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FactorNorm", "factor_usage", "code_spread", "usage_report", "ddpm_x0_error", "ddpm_usage_report"]


class FactorNorm(nn.Module):
    """Standardise codes ``[..., dim]`` per dimension over all leading axes (batch, and frames).

    Training uses the batch's statistics, evaluation the running ones (so a clip's code does not
    depend on its batch mates). No affine parameters: a learned scale could shrink the code back
    towards a constant.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=momentum, eps=eps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.reshape(-1, z.shape[-1])
        if self.training and flat.shape[0] < 2:  # one vector has no batch statistics: use the running ones
            n = self.norm
            return F.batch_norm(flat, n.running_mean, n.running_var, training=False, eps=n.eps).reshape(z.shape)
        return self.norm(flat).reshape(z.shape)


def code_spread(codes: torch.Tensor) -> float:
    """Mean over dimensions of the std across clips divided by the mean magnitude: 0 for a constant code."""
    flat = codes.detach().float().reshape(codes.shape[0], -1)
    return float(flat.std(0).mean() / flat.abs().mean().clamp_min(1e-12))


def factor_usage(error: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], static: torch.Tensor,
                 dynamic: torch.Tensor) -> dict[str, float]:
    """How much a decoder's error rises when a factor comes from another clip.

    ``error(static, dynamic)`` returns the mean denoising error of the batch under fixed noise (it
    must draw the same noise on every call). Factors are shuffled by rolling the batch by one, so
    every clip receives another clip's code. Returns ``error`` and the relative increases
    ``static_shuffled`` and ``dynamic_shuffled`` (``0.1`` = 10% higher error; about 0 when the
    decoder ignores that factor).
    """
    if static.shape[0] < 2:
        raise ValueError("factor_usage needs at least 2 clips to shuffle factors across")
    perm = torch.roll(torch.arange(static.shape[0], device=static.device), 1)
    base = float(error(static, dynamic))
    s_shuffled = float(error(static[perm], dynamic))
    d_shuffled = float(error(static, dynamic[perm]))
    scale = max(base, 1e-12)
    return {"error": base, "static_shuffled": s_shuffled / scale - 1, "dynamic_shuffled": d_shuffled / scale - 1}


def usage_report(error_at: Callable[..., torch.Tensor], static: torch.Tensor, dynamic: torch.Tensor,
                 levels: dict[str, float]) -> dict[str, float]:
    """:func:`factor_usage` at several noise levels plus the spread of each code (:func:`code_spread`).

    ``error_at(static, dynamic, level)`` is the decoder's error at noise ``level`` (a DDPM step or
    an EDM sigma) under fixed noise; ``levels`` names them, e.g. ``{"t999": 999, "t700": 700}``.
    Keys: ``static_spread``, ``dynamic_spread``, ``error_at_<name>``, ``static_shuffled_at_<name>``,
    ``dynamic_shuffled_at_<name>`` (MLflow metric names allow no ``@``).
    """
    out = {"static_spread": code_spread(static), "dynamic_spread": code_spread(dynamic)}
    for name, level in levels.items():
        usage = factor_usage(lambda s, d: error_at(s, d, level), static, dynamic)
        out.update({f"{key}_at_{name}": value for key, value in usage.items()})
    return out


def ddpm_x0_error(eps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule, x0: torch.Tensor,
                  noise: torch.Tensor, step: int) -> torch.Tensor:
    """Mean squared error of the one-step ``x_0`` estimate at DDPM ``step`` (``x_0`` in [-1, 1], clipped)."""
    t = torch.full((x0.shape[0],), int(step), device=x0.device, dtype=torch.long)
    x_t = schedule.q_sample(x0, t, noise)
    x0_hat = schedule.predict_x0(x_t, t, eps(x_t, t)).clamp(-1, 1)
    return (x0_hat.float() - x0.float()).pow(2).mean()


def ddpm_usage_report(eps: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                      context: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule, x0: torch.Tensor,
                      noise: torch.Tensor, static: torch.Tensor, dynamic: torch.Tensor) -> dict[str, float]:
    """:func:`usage_report` of a cross-attention DDPM decoder at steps ``T - 1`` and ``0.7 T``.

    ``eps(x_t, t, context)`` is the decoder's noise estimate, ``context(static, dynamic)`` builds its
    per-frame context; ``x0`` and ``noise`` are ``[B * T, ...]`` (frames flattened), fixed by the caller.
    """
    steps = schedule.num_steps

    def error_at(s: torch.Tensor, d: torch.Tensor, step: float) -> torch.Tensor:
        ctx = context(s, d)
        return ddpm_x0_error(lambda x_t, t: eps(x_t, t, ctx), schedule, x0, noise, int(step))

    return usage_report(error_at, static, dynamic, {"t_max": steps - 1, "t_0.7": int(0.7 * steps)})
