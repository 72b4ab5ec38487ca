"""Cross-leakage (DiViD sec. 4.2.3): how much of each factor a light probe can read from the other.

The encoder is frozen; a classifier is fit on the train split's codes and scored on the test
split's codes (the dataset's own split):

- S->D: predict the dynamic label (action) from the static code ``s``;
- D->S: predict the static label (identity) from the pooled dynamic code ``d``;
- leakage = (acc(S->D) + acc(D->S)) / 2, lower is better, compared with the chance level.

DiViD does not publish its probe, so seqbench fixes one: features standardized with
``StandardScaler`` (fit on train only), then either ``LogisticRegression`` (L2, C=1, lbfgs,
``max_iter=5000`` so that it converges) or ``MLPClassifier`` (one hidden layer of 256 ReLU units,
adam, ``max_iter=200``, ``early_stopping=False``, ``random_state=seed``). Both are deterministic
for a fixed seed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._utils import check_same_length, to_float64, to_labels

__all__ = ["pool_dynamic", "chance_accuracy", "probe_accuracy", "probe_predictions", "LeakageScores", "leakage"]

Classifier = Literal["logreg", "mlp"]


def pool_dynamic(dynamic: Any) -> np.ndarray:
    """Summarise per-frame codes ``[N, T, D]`` as ``[N, 2D] = [mean_t d_t, std_t d_t]``.

    Why: the D->S probe needs one vector per sequence. The time mean exposes static information
    written into every frame (the leak we look for), the standard deviation (population,
    ``ddof=0``, so T=1 gives 0) keeps how much the code moves. Unlike flattening, the summary does
    not depend on T and does not tie the probe to frame positions. A ``[N, D]`` input is returned
    unchanged (already pooled).
    """
    d = to_float64(dynamic)
    if d.ndim == 2:
        return d
    if d.ndim != 3:
        raise ValueError(f"dynamic codes must be [N, T, D], got shape {d.shape}")
    return np.concatenate([d.mean(axis=1), d.std(axis=1)], axis=1)


def chance_accuracy(labels: Any) -> float:
    """Majority-class frequency ``max_c count(labels == c) / N`` of the (test) labels.

    This is the best accuracy any input-independent predictor can reach on these labels, so a
    probe at or below it has found nothing. ``1/C`` (``LabelSpec.chance``) is only equal to it
    on a perfectly balanced split and is too low otherwise, which would make leakage look real.
    """
    y = to_labels(labels)
    if y.size == 0:
        raise ValueError("chance_accuracy needs at least one label")
    _, counts = np.unique(y, return_counts=True)
    return float(counts.max() / y.size)


def probe_accuracy(
    train_codes: Any,
    train_labels: Any,
    test_codes: Any,
    test_labels: Any,
    classifier: Classifier = "logreg",
    seed: int = 0,
) -> float:
    """Test accuracy of a standardized linear or MLP probe trained on ``train_codes`` ``[N, F]``.

    A train split with a single class yields the constant predictor (sklearn refuses to fit one).
    """
    pred = probe_predictions(train_codes, train_labels, test_codes, test_labels, classifier, seed)
    return float(np.mean(pred == to_labels(test_labels, "test_labels")))


def probe_predictions(
    train_codes: Any,
    train_labels: Any,
    test_codes: Any,
    test_labels: Any,
    classifier: Classifier = "logreg",
    seed: int = 0,
) -> np.ndarray:
    """The probe of :func:`probe_accuracy`, returning its test predictions ``[N_test]``.

    Why: per-item hits ``pred == test_labels`` are what a bootstrap interval over test items needs.
    ``test_labels`` are only checked for length here (never seen by the probe).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_tr, x_te = to_float64(train_codes), to_float64(test_codes)
    y_tr, y_te = to_labels(train_labels, "train_labels"), to_labels(test_labels, "test_labels")
    for name, x in (("train_codes", x_tr), ("test_codes", x_te)):
        if x.ndim != 2:
            raise ValueError(f"{name} must be [N, F] (pool [N, T, D] codes with pool_dynamic), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf")
    check_same_length(train_codes=x_tr, train_labels=y_tr)
    check_same_length(test_codes=x_te, test_labels=y_te)
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"train and test codes differ in width: {x_tr.shape[1]} vs {x_te.shape[1]}")
    if len(y_tr) == 0 or len(y_te) == 0:
        raise ValueError("probe_accuracy needs non-empty train and test splits")
    classes = np.unique(y_tr)
    if classes.size == 1:
        return np.full(len(y_te), classes[0], dtype=np.int64)
    if classifier == "logreg":
        model = LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    elif classifier == "mlp":
        model = MLPClassifier(hidden_layer_sizes=(256,), early_stopping=False, max_iter=200,
                              random_state=seed)
    else:
        raise ValueError(f"unknown classifier {classifier!r}; use 'logreg' or 'mlp'")
    pipe = make_pipeline(StandardScaler(), model)
    with warnings.catch_warnings():
        # The probe has a fixed budget by design; hitting it is part of the protocol, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(x_tr, y_tr)
    return np.asarray(pipe.predict(x_te), dtype=np.int64)


@dataclass(frozen=True)
class LeakageScores:
    """S->D and D->S probe accuracies, their average (the leakage), and the matching chance levels."""

    s_to_d: float
    d_to_s: float
    leakage: float
    chance_s_to_d: float
    chance_d_to_s: float
    chance: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def leakage(
    *,
    train_static: Any,
    train_dynamic: Any,
    train_static_labels: Any,
    train_dynamic_labels: Any,
    test_static: Any,
    test_dynamic: Any,
    test_static_labels: Any,
    test_dynamic_labels: Any,
    classifier: Classifier = "logreg",
    seed: int = 0,
) -> LeakageScores:
    """DiViD cross-leakage: ``(acc(s -> dynamic label) + acc(pool(d) -> static label)) / 2``.

    Static codes are ``[N, S]``; dynamic codes ``[N, T, D]`` are pooled with :func:`pool_dynamic`
    (or passed pre-pooled as ``[N, F]``). Chance levels use :func:`chance_accuracy` on the test
    labels.
    """
    s_to_d = probe_accuracy(train_static, train_dynamic_labels, test_static, test_dynamic_labels,
                            classifier, seed)
    d_to_s = probe_accuracy(pool_dynamic(train_dynamic), train_static_labels,
                            pool_dynamic(test_dynamic), test_static_labels, classifier, seed)
    c_sd = chance_accuracy(test_dynamic_labels)
    c_ds = chance_accuracy(test_static_labels)
    return LeakageScores(s_to_d=s_to_d, d_to_s=d_to_s, leakage=(s_to_d + d_to_s) / 2,
                         chance_s_to_d=c_sd, chance_d_to_s=c_ds, chance=(c_sd + c_ds) / 2)
