"""Speaker verification EER (DBSE's TIMIT protocol, also used by DiffSDA).

Per test utterance, the static embedding is the mean of the static code over the utterance's
chunks and the dynamic embedding the mean of the dynamic code over chunks and time. Every
unordered pair of distinct utterances is scored by cosine similarity; a pair is a target when
both utterances come from the same speaker. The EER is the error rate at the threshold where the
false-negative rate equals the false-positive rate. A low static EER and a high dynamic EER mean
the speaker lives in the static code only; "disentanglement gap" = dynamic EER - static EER.

Reference defects fixed here: DBSE's ``voice_verification_dbse_mean`` returned from inside its
``for epoch in range(niter)`` loop, so only one pass ever ran (seqbench's computation is
deterministic, there is nothing to repeat); and it found the threshold by bisection on ``[-1, 1]``
with a step-function objective, then reported the FPR on one side of the step. Here the ROC is
computed exactly by sorting, and the EER is read off by linear interpolation between the two
operating points that bracket FNR = FPR (no tolerance, no score-range assumption).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import check_same_length, to_float64, to_labels, to_numpy

__all__ = ["equal_error_rate", "cosine_pair_scores", "speaker_verification_eer", "utterance_embeddings"]


def equal_error_rate(scores: Any, is_target: Any) -> float:
    """EER of a detector that accepts a trial when ``score >= threshold``.

    Operating points: for every distinct score ``s`` (and ``+inf``, accept nothing),
    ``FPR(s) = #{non-target >= s} / #non-target`` and ``FNR(s) = #{target < s} / #target``.
    Walking from high to low thresholds, ``FNR - FPR`` falls from 1 to -1. At the first operating
    point ``i`` where it is ``<= 0`` the crossing lies on the segment from point ``i-1`` to ``i``
    of the ROC curve; with ``g = FNR - FPR`` the EER is
    ``FPR_{i-1} + (FPR_i - FPR_{i-1}) * g_{i-1} / (g_{i-1} - g_i)`` (= FNR there).
    0 for perfectly separated scores, about 0.5 for uninformative ones.
    """
    s = to_float64(scores).reshape(-1)
    t = to_numpy(is_target).astype(bool).reshape(-1)
    check_same_length(scores=s, is_target=t)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"EER needs both target and non-target trials (got {n_pos} and {n_neg})")
    order = np.argsort(-s, kind="stable")
    s_sorted, t_sorted = s[order], t[order]
    tp = np.cumsum(t_sorted)
    fp = np.cumsum(~t_sorted)
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # threshold = each distinct score
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    fpr = np.r_[0.0, fp / n_neg]
    fnr = np.r_[1.0, 1.0 - tp / n_pos]
    gap = fnr - fpr  # non-increasing, from 1 to -1
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0:
        return float(fpr[i])
    g0, g1 = gap[i - 1], gap[i]
    return float(fpr[i - 1] + (fpr[i] - fpr[i - 1]) * g0 / (g0 - g1))


def cosine_pair_scores(embeddings: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-label flag for every unordered pair ``i < j`` of ``[U, E]`` rows.

    A zero embedding has no direction; it is given cosine 0 with everything.
    """
    e = to_float64(embeddings)
    y = to_labels(labels, "speakers")
    if e.ndim != 2:
        raise ValueError(f"embeddings must be [U, E], got shape {e.shape}")
    check_same_length(embeddings=e, speakers=y)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    unit = np.divide(e, norms, out=np.zeros_like(e), where=norms > 0)
    iu, ju = np.triu_indices(len(e), k=1)
    sim = unit @ unit.T
    return np.clip(sim[iu, ju], -1.0, 1.0), y[iu] == y[ju]


def speaker_verification_eer(embeddings: Any, speakers: Any) -> float:
    """EER of cosine-scored verification over all unordered utterance pairs (target = same speaker).

    ``embeddings`` ``[U, E]`` (one per utterance, see :func:`utterance_embeddings`), ``speakers``
    ``[U]`` integer ids. Memory and time grow as ``U^2``.
    """
    scores, target = cosine_pair_scores(embeddings, speakers)
    return equal_error_rate(scores, target)


def utterance_embeddings(codes: Any, utterance_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Average chunk codes per utterance: ``[M, S]`` -> ``[U, S]`` or ``[M, T, D]`` -> ``[U, D]``.

    Static codes (``[M, S]``, one per chunk) are averaged over the utterance's chunks; dynamic
    codes (``[M, T, D]``) over its chunks and time steps (all chunks have the same T, so this is
    the mean over chunks of the time means, as the reference). Returns the embeddings and the
    utterance ids they belong to, in ascending id order.
    """
    c = to_float64(codes)
    ids = to_numpy(utterance_ids).reshape(-1)
    check_same_length(codes=c, utterance_ids=ids)
    if c.ndim == 3:
        c = c.mean(axis=1)
    elif c.ndim != 2:
        raise ValueError(f"codes must be [M, S] or [M, T, D], got shape {c.shape}")
    if len(c) == 0:
        raise ValueError("utterance_embeddings needs at least one chunk")
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.zeros((len(unique), c.shape[1]))
    np.add.at(sums, inverse, c)
    counts = np.bincount(inverse, minlength=len(unique))
    return sums / counts[:, None], unique
