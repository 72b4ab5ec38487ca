"""The DSVAE / C-DSVAE sequential VAE backbone, shared by C-DSVAE and SPYL.

Both papers use the same network and differ only in the extra loss terms, so the network is
written once here and each method module adds its own objective:

* per-frame encoder ``g(x_t)`` (:func:`~seqbench.nn.frames.frame_encoder`: DCGAN for video, MLP
  for audio feature vectors);
* one bidirectional LSTM (hidden ``rnn_size``) over ``g(x_1..T)``; the **static** posterior
  ``q(s | x)`` reads its summary ``[forward output at the last step, backward output at the first
  step]`` through two linear heads;
* the **dynamic** posterior ``q(d_t | x)`` is a unidirectional RNN (tanh, hidden ``rnn_size``) over
  the BiLSTM outputs, then two linear heads per step;
* priors: ``p(s) = N(0, I)``; ``p(d_t | d_<t)`` the autoregressive LSTM prior
  (:class:`~seqbench.nn.priors.LSTMDynamicsPrior`, hidden ``rnn_size``), teacher-forced on the
  posterior samples in training;
* decoder on ``[d_t, s]`` for every frame (:func:`~seqbench.nn.frames.frame_decoder`).

Everything here works in *model space* (the range of the decoder's output activation); mapping
data in and out is the method's job (:mod:`seqbench.nn.dataspace`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..types import DataSpec
from .distributions import GaussianHead, kl_normal, randn, reparameterize
from .frames import OutputActivation, frame_decoder, frame_encoder
from .priors import LSTMDynamicsPrior

__all__ = ["Posterior", "SequentialVAE", "VAEPass"]


@dataclass
class Posterior:
    """Diagonal-Gaussian posteriors: static ``[B, S]`` and dynamic ``[B, T, D]`` means and log-variances."""

    s_mean: torch.Tensor
    s_logvar: torch.Tensor
    d_mean: torch.Tensor
    d_logvar: torch.Tensor


@dataclass
class VAEPass:
    """One stochastic pass: posteriors, their samples, the reconstruction and the ELBO terms."""

    post: Posterior
    s: torch.Tensor
    d: torch.Tensor
    x_hat: torch.Tensor
    recon: torch.Tensor  # sum of squared errors / B
    kl_s: torch.Tensor  # KL(q(s|x) || N(0, I)), mean over clips
    kl_d: torch.Tensor  # sum_t KL(q(d_t|x) || p(d_t|d_<t)), mean over clips


class SequentialVAE(nn.Module):
    """BiLSTM static posterior, RNN dynamic posterior, LSTM dynamics prior, frame decoder on ``[d_t, s]``."""

    def __init__(self, spec: DataSpec, *, s_dim: int, d_dim: int, g_dim: int, rnn_size: int,
                 base_channels: int = 64, audio_hidden: Sequence[int] = (256, 256),
                 output: OutputActivation = "sigmoid"):
        super().__init__()
        self.s_dim, self.d_dim, self.rnn_size = s_dim, d_dim, rnn_size
        self.encoder = frame_encoder(spec, g_dim, base=base_channels, hidden=audio_hidden)
        self.bilstm = nn.LSTM(g_dim, rnn_size, batch_first=True, bidirectional=True)
        self.static_head = GaussianHead(2 * rnn_size, s_dim)
        self.dynamic_rnn = nn.RNN(2 * rnn_size, rnn_size, batch_first=True)
        self.dynamic_head = GaussianHead(rnn_size, d_dim)
        self.prior = LSTMDynamicsPrior(d_dim, rnn_size)
        self.decoder = frame_decoder(spec, d_dim + s_dim, output=output, base=base_channels, hidden=audio_hidden)

    def posterior(self, x: torch.Tensor) -> Posterior:
        """``q(s | x)`` and ``q(d_t | x)`` for model-space clips ``x`` ``[B, T, ...]``."""
        h, _ = self.bilstm(self.encoder(x))  # [B, T, 2 * rnn]
        summary = torch.cat([h[:, -1, : self.rnn_size], h[:, 0, self.rnn_size:]], dim=-1)
        s_mean, s_logvar = self.static_head(summary)
        d_mean, d_logvar = self.dynamic_head(self.dynamic_rnn(h)[0])
        return Posterior(s_mean, s_logvar, d_mean, d_logvar)

    def decode(self, s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Model-space clips from static codes ``[B, S]`` and dynamics ``[B, T, D]``."""
        if s.shape[0] != d.shape[0]:
            raise ValueError(f"static codes for {s.shape[0]} sequences but dynamics for {d.shape[0]}")
        return self.decoder(torch.cat([d, s[:, None].expand(-1, d.shape[1], -1)], dim=-1))

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> VAEPass:
        """Encode, sample, decode and score ``x`` (model space): the ELBO part of every objective."""
        batch = x.shape[0]
        post = self.posterior(x)
        s = reparameterize(post.s_mean, post.s_logvar, generator)
        d = reparameterize(post.d_mean, post.d_logvar, generator)
        x_hat = self.decode(s, d)
        recon = F.mse_loss(x_hat.float(), x.float(), reduction="sum") / batch
        prior_mean, prior_logvar = self.prior(d)
        kl_s = kl_normal(post.s_mean.float(), post.s_logvar.float()).mean()
        kl_d = kl_normal(post.d_mean.float(), post.d_logvar.float(), prior_mean.float(),
                         prior_logvar.float()).sum(dim=1).mean()
        return VAEPass(post, s, d, x_hat, recon, kl_s, kl_d)

    def sample_static(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` static codes from ``N(0, I)`` on the parameters' device."""
        weight = self.static_head.mean.weight
        return randn((n, self.s_dim), device=weight.device, dtype=weight.dtype, generator=generator)

    def sample_dynamic(self, n: int, frames: int, *, generator: torch.Generator | None = None,
                       mean_only: bool = False) -> torch.Tensor:
        """``n`` dynamic sequences ``[n, frames, D]`` unrolled from the LSTM prior."""
        return self.prior.sample(n, frames, generator=generator, mean_only=mean_only)
