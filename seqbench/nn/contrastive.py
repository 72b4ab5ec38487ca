"""Contrastive and mutual-information estimators shared by C-DSVAE and SPYL.

* :func:`info_nce` - the InfoNCE loss with cosine (or dot-product) similarity and a temperature,
  either with explicit negatives per anchor (SPYL: a bank of prior samples) or with in-batch
  negatives in the symmetric NT-Xent form (C-DSVAE: every other clip's code and augmented view).
  Minimising it maximises a lower bound on the mutual information between the two codes.
* :func:`mws_mutual_information` - the minibatch-weighted-sampling (MWS) estimate of
  ``I(s; d)`` between the static code and each frame's dynamic code (Chen et al., 2018,
  "Isolating sources of disentanglement"), the penalty C-DSVAE and SPYL add to the ELBO.
* :func:`kl_farthest` - SPYL's "soft" negatives: the bank elements whose posteriors are farthest
  (largest KL) from the anchor's, i.e. the least likely to be false negatives.

Interpretation choices:

* MWS approximates the aggregate posterior ``q(z) = 1/N sum_n q(z | x_n)`` by the ``B`` posteriors
  of the minibatch, each standing for ``N / B`` training clips:
  ``log q(z_i) ~= logsumexp_j log q(z_i | x_j) - log(N * B)``. The joint ``q(s, d_t)`` uses the
  product of the two posteriors of the same clip. ``N`` (the training-set size) only shifts the
  estimate by ``log(N * B)`` and therefore only matters where the estimate is clamped at zero.
* The per-(clip, frame) estimates are clamped at 0 before averaging, as both references do
  (mutual information is non-negative; a negative estimate is estimator noise and is not
  rewarded). Pass ``clamp=False`` for the plain average.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .distributions import gaussian_log_density, kl_normal

__all__ = ["info_nce", "kl_farthest", "mws_mutual_information", "pairwise_log_density", "similarity"]


def similarity(a: torch.Tensor, b: torch.Tensor, *, cosine: bool = True) -> torch.Tensor:
    """Similarity of the last dimension of ``a`` and ``b`` (broadcast): cosine, or a dot product."""
    if cosine:
        a, b = F.normalize(a, dim=-1, eps=1e-8), F.normalize(b, dim=-1, eps=1e-8)
    return (a * b).sum(dim=-1)


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None, *,
             temperature: float = 0.5, cosine: bool = True) -> torch.Tensor:
    """Mean InfoNCE loss ``-log(e^{sim(a,p)/tau} / (e^{sim(a,p)/tau} + sum_k e^{sim(a,n_k)/tau}))``.

    ``anchor`` and ``positive`` are ``[B, ...]`` (flattened to ``[B, D]``: a dynamic code
    ``[B, T, D]`` is compared as one vector). ``negatives`` is ``[B, K, ...]`` (per anchor),
    ``[K, ...]`` (shared by all anchors), or ``None`` for in-batch negatives in the symmetric
    NT-Xent form (SimCLR): each of the ``2B`` codes (anchors and positives) is scored against its
    pair, with the other ``2B - 2`` codes as negatives, and the loss is the mean over all ``2B``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    batch = anchor.shape[0]
    a, p = anchor.reshape(batch, -1), positive.reshape(batch, -1)
    if p.shape != a.shape:
        raise ValueError(f"anchor {tuple(anchor.shape)} and positive {tuple(positive.shape)} differ in size")
    if negatives is None:
        codes = torch.cat([a, p])
        logits = similarity(codes[:, None], codes[None], cosine=cosine) / temperature  # [2B, 2B]
        eye = torch.eye(2 * batch, dtype=torch.bool, device=a.device)
        logits = logits.masked_fill(eye, float("-inf"))  # a code is not its own negative
        target = (torch.arange(2 * batch, device=a.device) + batch) % (2 * batch)
    else:
        n = negatives.reshape(batch, -1, a.shape[1]) if negatives.dim() == anchor.dim() + 1 else \
            negatives.reshape(1, -1, a.shape[1])
        pos = similarity(a, p, cosine=cosine)[:, None]
        neg = similarity(a[:, None], n, cosine=cosine)
        logits = torch.cat([pos, neg.expand(batch, -1)], dim=1) / temperature
        target = torch.zeros(batch, dtype=torch.long, device=a.device)
    return F.cross_entropy(logits.float(), target)


def pairwise_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``[..., B, B]`` with entry ``[i, j] = log q(z_i | x_j) = sum_d log N(z_id; mean_jd, exp(logvar_jd))``.

    Inputs are ``[..., B, D]``; leading dimensions (e.g. frames) are kept.
    """
    return gaussian_log_density(z.unsqueeze(-2), mean.unsqueeze(-3), logvar.unsqueeze(-3)).sum(dim=-1)


def mws_mutual_information(s: torch.Tensor, s_mean: torch.Tensor, s_logvar: torch.Tensor, d: torch.Tensor,
                           d_mean: torch.Tensor, d_logvar: torch.Tensor, *, dataset_size: int,
                           clamp: bool = True) -> torch.Tensor:
    """MWS estimate of ``I(s; d_t)`` averaged over clips and frames (see the module docstring).

    ``s``, ``s_mean``, ``s_logvar`` are ``[B, S]`` (a posterior sample and its Gaussian);
    ``d``, ``d_mean``, ``d_logvar`` are ``[B, T, D]`` (or ``[B, D]`` for one code per clip).
    ``dataset_size`` is ``N``, the number of training clips the minibatch stands for.
    """
    if dataset_size < 1:
        raise ValueError(f"dataset_size must be at least 1, got {dataset_size}")
    batch = s.shape[0]
    if d.dim() == 2:
        d, d_mean, d_logvar = d[:, None], d_mean[:, None], d_logvar[:, None]
    # frames first: [T, B, D]; the static term broadcasts over frames as [1, B, B]
    log_s = pairwise_log_density(s.float(), s_mean.float(), s_logvar.float())[None]
    log_d = pairwise_log_density(*(v.float().transpose(0, 1) for v in (d, d_mean, d_logvar)))
    norm = math.log(batch * dataset_size)
    log_q_sd = torch.logsumexp(log_s + log_d, dim=-1) - norm
    log_q_s = torch.logsumexp(log_s, dim=-1) - norm
    log_q_d = torch.logsumexp(log_d, dim=-1) - norm
    estimate = log_q_sd - log_q_s - log_q_d  # [T, B]
    return (estimate.clamp(min=0.0) if clamp else estimate).mean()


def kl_farthest(mean: torch.Tensor, logvar: torch.Tensor, bank_mean: torch.Tensor, bank_logvar: torch.Tensor,
                k: int) -> torch.Tensor:
    """Indices ``[B, k]`` of the ``k`` bank entries with the largest ``KL(q_anchor || q_bank)`` per anchor.

    ``mean``/``logvar`` are ``[B, D]`` anchors' Gaussians, ``bank_mean``/``bank_logvar`` ``[M, D]``.
    """
    if not 1 <= k <= bank_mean.shape[0]:
        raise ValueError(f"k={k} negatives requested from a bank of {bank_mean.shape[0]}")
    kl = kl_normal(mean[:, None].float(), logvar[:, None].float(), bank_mean[None].float(),
                   bank_logvar[None].float())  # [B, M]
    return kl.topk(k, dim=-1).indices
