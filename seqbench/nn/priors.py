"""Learned priors over dynamic codes ``p(z_t | z_<t)``.

The autoregressive LSTM prior of DSVAE / C-DSVAE / SPYL / DBSE: during training it is
teacher-forced on posterior samples (one parallel pass gives the prior of every step, which the
KL term compares against the posterior); for generation it is unrolled on its own samples.
"""

from __future__ import annotations

import torch
from torch import nn

from .distributions import GaussianHead, reparameterize

__all__ = ["LSTMDynamicsPrior"]


class LSTMDynamicsPrior(nn.Module):
    """Two stacked LSTM layers mapping ``z_{t-1}`` to a diagonal Gaussian over ``z_t``.

    The first step is conditioned on a zero vector, so ``p(z_0)`` is a learned Gaussian.
    A 2-layer ``nn.LSTM`` is the same function as the reference's two stacked ``LSTMCell`` s
    but runs the teacher-forced pass as one fused call (cuDNN on GPU).
    """

    def __init__(self, z_dim: int, hidden: int, num_layers: int = 2):
        super().__init__()
        self.z_dim, self.hidden = z_dim, hidden
        self.lstm = nn.LSTM(z_dim, hidden, num_layers=num_layers, batch_first=True)
        self.head = GaussianHead(hidden, z_dim)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: prior ``(mean, logvar)`` of every step of ``z`` ``[B, T, D]``, each ``[B, T, D]``.

        Step ``t`` sees the given ``z_0 .. z_{t-1}`` (posterior samples in training), never ``z_t``.
        """
        shifted = torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], dim=1)
        out, _ = self.lstm(shifted)
        return self.head(out)

    @torch.no_grad()
    def sample(self, n: int, frames: int, *, generator: torch.Generator | None = None,
               mean_only: bool = False) -> torch.Tensor:
        """``n`` new sequences ``[n, frames, D]`` unrolled from the prior on the parameters' device.

        Each step feeds back its own sample (or mean when ``mean_only``); noise comes from
        ``generator`` when given, so a seeded CPU generator reproduces the codes on any device.
        """
        param = self.head.mean.weight
        z_prev = torch.zeros(n, 1, self.z_dim, device=param.device, dtype=param.dtype)
        state = None
        steps = []
        for _ in range(frames):
            out, state = self.lstm(z_prev, state)
            mean, logvar = self.head(out)
            z_prev = mean if mean_only else reparameterize(mean, logvar, generator)
            steps.append(z_prev)
        return torch.cat(steps, dim=1)
