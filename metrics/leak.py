"""``leak``: cross-leakage (DiViD sec. 4.2.3), how much of each factor a light probe reads from the other code.

The method's encoder is frozen. Its posterior-mean codes of the train split (the train part the
method was trained on, never the validation or test clips) fit one probe per label; the probes are
scored on the test split's codes:

* S->D: every dynamic label predicted from the static code ``s`` ``[S]``;
* D->S: every static label predicted from the time-pooled dynamic code
  ``[mean_t d_t, std_t d_t]`` (:func:`seqbench.functional.pool_dynamic`).

Keys: ``leak/s_to_d`` (mean over dynamic labels of the S->D accuracies), ``leak/d_to_s`` (mean
over static labels), ``leak/leakage`` = their average (lower is better), and the per-label
``leak/s_to_d_<label>`` / ``leak/d_to_s_<label>``. ``chance/<key>`` is the majority-class
frequency of the test labels (the best input-independent accuracy), averaged the same way.
Intervals: percentile bootstrap over test clips of the per-clip hit rates.

The probe (DiViD does not publish theirs): features standardized on train (``StandardScaler``),
then scikit-learn ``LogisticRegression`` (L2, C = 1, lbfgs, up to 5000 iterations) by default, or
``MLPClassifier`` (one hidden layer of 256 ReLU units, adam, 200 epochs) with
``classifier=mlp``; both with ``random_state`` fixed to the run seed. Only declared labels are
probed, not the identity array (datasets split by identity have no test identity in train); a
dataset that declares its identity as a label (synthetic-speech's ``speaker``, whose speakers are in
both splits) is probed on it.
``max_train`` (default 4000) caps the train clips used, a seeded subset fixed per dataset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.metric import EvalContext, EvalData, Metric, Requirements
from seqbench.types import MetricOutput, MetricValue
from seqbench.utils import content_hash

from ._common import encode_split, with_ci

DEFAULTS: dict[str, Any] = {"classifier": "logreg", "max_train": 4000}
BACKEND_NAMES = {"logreg": "probe-logreg", "mlp": "probe-mlp"}


class CrossLeakage(Metric):
    name = "leak"
    version = "1"
    description = "cross-leakage: probe accuracy of dynamic labels from s (S->D) and static labels from d (D->S)"
    outputs = (
        MetricOutput("leak/leakage", False, "(S->D + D->S) / 2", chance_key="chance/leak/leakage"),
        MetricOutput("leak/s_to_d", False, "dynamic labels predicted from the static code",
                     chance_key="chance/leak/s_to_d"),
        MetricOutput("leak/d_to_s", False, "static labels predicted from the pooled dynamic code",
                     chance_key="chance/leak/d_to_s"),
    )
    requires = Requirements(labels=("static", "dynamic"))
    option_defaults = DEFAULTS

    def evaluate(self, method, data: EvalData, ctx: EvalContext) -> dict[str, MetricValue]:
        from seqbench.functional import chance_accuracy, pool_dynamic, probe_predictions

        opts = self.resolved_options()
        if opts["classifier"] not in BACKEND_NAMES:
            raise ConfigError(f"metric option leak.classifier={opts['classifier']!r}: choose logreg or mlp")
        backend = BACKEND_NAMES[opts["classifier"]]
        spec = data.spec
        train = data.train
        max_train = opts["max_train"]
        if max_train is not None and len(train) > int(max_train):
            seed = int(content_hash(spec.fingerprint)[:8], 16)  # fixed per dataset, like the pairs
            train = train.subset(np.sort(np.random.default_rng(seed).permutation(len(train))[: int(max_train)]))
        tr = encode_split(method, train, ctx.batch_size, ctx.device)
        te = encode_split(method, data.test, ctx.batch_size, ctx.device)
        feats = {"s": (tr.static.double().numpy(), te.static.double().numpy()),
                 "d": (pool_dynamic(tr.dynamic), pool_dynamic(te.dynamic))}
        out: dict[str, MetricValue] = {}
        groups: dict[str, list[tuple[np.ndarray, float]]] = {"s_to_d": [], "d_to_s": []}
        for direction, source, labels in (("s_to_d", "s", spec.dynamic_labels), ("d_to_s", "d", spec.static_labels)):
            x_tr, x_te = feats[source]
            for label in labels:
                y_tr, y_te = np.asarray(train.labels[label.name]), np.asarray(data.test.labels[label.name])
                pred = probe_predictions(x_tr, y_tr, x_te, y_te, opts["classifier"], seed=ctx.seed)
                hits = (pred == y_te).astype(np.float64)
                chance = chance_accuracy(y_te)
                out[f"leak/{direction}_{label.name}"] = with_ci(hits, ctx.seed, backend)
                out[f"chance/leak/{direction}_{label.name}"] = MetricValue(chance, backend=backend)
                groups[direction].append((hits, chance))
        per_item = {}
        for direction, parts in groups.items():
            per_item[direction] = np.mean([h for h, _ in parts], axis=0)
            out[f"leak/{direction}"] = with_ci(per_item[direction], ctx.seed, backend)
            out[f"chance/leak/{direction}"] = MetricValue(float(np.mean([c for _, c in parts])), backend=backend)
        out["leak/leakage"] = with_ci((per_item["s_to_d"] + per_item["d_to_s"]) / 2, ctx.seed, backend)
        out["chance/leak/leakage"] = MetricValue(
            (out["chance/leak/s_to_d"].value + out["chance/leak/d_to_s"].value) / 2, backend=backend)
        return out


@hookimpl
def seqbench_add_metrics():
    return [CrossLeakage]
