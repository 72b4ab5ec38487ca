"""Judge metrics: accuracy, inception score and entropies of a fixed classifier on generated data.

The formulas follow the C-DSVAE evaluation (``test_sprite_cls.py``, copied into DBSE and SPYL),
with ``p = softmax(judge head)`` of shape ``[N, C]`` and ``pbar = mean_i p_i``:

- ``H(y|x) = -mean_i sum_c p_ic log(p_ic + eps)``   (low: the judge is confident on each sample)
- ``H(y)   = -sum_c pbar_c log(pbar_c + eps)``       (high, up to ln C: samples cover all classes)
- ``IS     = exp(mean_i sum_c p_ic (log(p_ic + eps) - log(pbar_c + eps)))`` in ``[1, C]``

IS and the entropies are computed on a class-balanced subset, so that a test set with a skewed
label distribution does not shift ``H(y)`` and IS.

Reference defect fixed here: C-DSVAE always balanced on the *input's action* label, also in the
"fixed static" mode where the action of the generated sequence is drawn from the prior, so the
subset was balanced on a label that says nothing about the generated samples. seqbench balances
on the ground-truth label of the driving factor, i.e. the factor the evaluated head predicts and
the generation kept (``balance_on``, by default the ``labels`` the head is scored against).
The reference also averaged per-batch accuracies (with ``drop_last``); here accuracy is the plain
mean over samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import check_same_length, to_float64, to_labels, to_predictions

__all__ = [
    "judge_accuracy",
    "inception_score",
    "conditional_entropy",
    "marginal_entropy",
    "class_balanced_indices",
    "judge_scores",
    "resampled_judge_scores",
]

EPS = 1e-16


def _probs(probs: Any, atol: float = 1e-4) -> np.ndarray:
    """Validate a ``[N, C]`` matrix of class probabilities (rows on the simplex)."""
    p = to_float64(probs)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must be a non-empty [N, C] array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=atol):
        raise ValueError("probs rows must be probability vectors (non-negative, summing to 1): "
                         "apply softmax to logits first")
    return p


def judge_accuracy(logits_or_preds: Any, labels: Any) -> float:
    """Fraction of samples whose prediction equals the label: ``mean_i [argmax_c z_ic == y_i]``.

    Accepts logits/probabilities ``[N, C]`` (reduced with argmax) or predicted indices ``[N]``.
    """
    pred = to_predictions(logits_or_preds)
    y = to_labels(labels)
    n = check_same_length(predictions=pred, labels=y)
    if n == 0:
        raise ValueError("judge_accuracy needs at least one sample")
    return float(np.mean(pred == y))


def conditional_entropy(probs: Any, eps: float = EPS) -> float:
    """``H(y|x) = -mean_i sum_c p_ic log(p_ic + eps)`` (nats); 0 when every prediction is one-hot."""
    p = _probs(probs)
    return float(-np.mean(np.sum(p * np.log(p + eps), axis=1)))


def marginal_entropy(probs: Any, eps: float = EPS) -> float:
    """``H(y) = -sum_c pbar_c log(pbar_c + eps)`` with ``pbar = mean_i p_i`` (nats), at most ln C."""
    p = _probs(probs)
    pbar = p.mean(axis=0)
    return float(-np.sum(pbar * np.log(pbar + eps)))


def inception_score(probs: Any, eps: float = EPS) -> float:
    """``IS = exp(mean_i KL(p_i || pbar))`` with the reference's ``eps`` inside both logs.

    Equals ``exp(H(y) - H(y|x))`` up to ``eps``; 1 when all samples get the same distribution,
    C when predictions are one-hot and the classes are used equally.
    """
    p = _probs(probs)
    pbar = p.mean(axis=0, keepdims=True)
    kl = np.sum(p * (np.log(p + eps) - np.log(pbar + eps)), axis=1)
    return float(np.exp(np.mean(kl)))


def class_balanced_indices(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Indices of the first ``m = min_c count(labels == c)`` samples of every class, ascending.

    ``labels`` must be the ground-truth labels of the driving factor (see the module docstring).
    With ``num_classes`` every class ``0..num_classes-1`` must occur (an absent class would make
    ``m = 0``: the call raises instead of returning an empty subset); without it the classes
    present in ``labels`` are balanced, as the reference did.
    """
    y = to_labels(labels)
    if y.size == 0:
        raise ValueError("class_balanced_indices needs at least one label")
    if num_classes is None:
        classes = np.unique(y)
    else:
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
        classes = np.arange(num_classes)
    counts = np.array([np.count_nonzero(y == c) for c in classes])
    if np.any(counts == 0):
        missing = classes[counts == 0].tolist()
        raise ValueError(f"classes {missing} have no samples: cannot build a class-balanced subset")
    m = int(counts.min())
    order = np.argsort(y, kind="stable")  # grouped by class, original order within a class
    sorted_y = y[order]
    first = np.searchsorted(sorted_y, sorted_y, side="left")  # start of each sample's class block
    rank = np.arange(y.size) - first  # position of the sample within its class
    keep = order[rank < m]
    return np.sort(keep)


def judge_scores(
    probs: Any,
    labels: Any,
    *,
    balance_on: Any = None,
    num_classes: int | None = None,
    eps: float = EPS,
) -> dict[str, float]:
    """Accuracy, IS, H(y|x) and H(y) of one judge head, all on the same class-balanced subset.

    ``probs`` ``[N, C]`` are the head's softmax outputs on generated samples, ``labels`` the
    ground-truth class each sample should have. The subset is balanced on ``balance_on``
    (default ``labels``): the ground-truth label of the driving factor. ``num_classes`` defaults
    to ``C``. Returns ``accuracy``, ``inception_score``, ``conditional_entropy``,
    ``marginal_entropy`` and ``n`` (size of the balanced subset).
    """
    p = _probs(probs)
    y = to_labels(labels)
    check_same_length(probs=p, labels=y)
    balance = y if balance_on is None else to_labels(balance_on, "balance_on")
    check_same_length(probs=p, balance_on=balance)
    idx = class_balanced_indices(balance, p.shape[1] if num_classes is None else num_classes)
    sub = p[idx]
    return {
        "accuracy": judge_accuracy(sub, y[idx]),
        "inception_score": inception_score(sub, eps),
        "conditional_entropy": conditional_entropy(sub, eps),
        "marginal_entropy": marginal_entropy(sub, eps),
        "n": int(idx.size),
    }


def resampled_judge_scores(probs: Any, index: Any, eps: float = EPS) -> dict[str, np.ndarray]:
    """IS, H(y|x) and H(y) of many resamples at once: row ``b`` of ``index`` ``[B, M]`` picks rows of ``probs``.

    The same formulas as :func:`inception_score`, :func:`conditional_entropy` and
    :func:`marginal_entropy`, vectorised over resamples (for bootstrap intervals, see
    :func:`seqbench.functional.bootstrap.bootstrap_ci_indices`). Returns arrays ``[B]`` under
    ``inception_score``, ``conditional_entropy``, ``marginal_entropy``.
    """
    p = _probs(probs)
    idx = np.asarray(index)
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"index must be a non-empty [B, M] matrix, got shape {idx.shape}")
    sub = p[idx]  # [B, M, C]
    log_p = np.log(sub + eps)
    pbar = sub.mean(axis=1)  # [B, C]
    log_pbar = np.log(pbar + eps)
    kl = np.sum(sub * (log_p - log_pbar[:, None, :]), axis=2)
    return {
        "inception_score": np.exp(kl.mean(axis=1)),
        "conditional_entropy": -np.mean(np.sum(sub * log_p, axis=2), axis=1),
        "marginal_entropy": -np.sum(pbar * log_pbar, axis=1),
    }
