"""``eer``: speaker-verification equal error rate from the method's own codes (DBSE's TIMIT protocol).

Per test utterance the static embedding is the mean of the static code over the utterance's
chunks, the dynamic embedding the mean of the dynamic code over chunks and time
(:func:`seqbench.functional.utterance_embeddings`). Every unordered pair of distinct utterances is
a trial, a target when both come from the same speaker (the dataset's identity label); trials are
scored by cosine similarity and the EER is read off the exact ROC where FNR = FPR
(:func:`seqbench.functional.equal_error_rate`).

Keys: ``eer/static`` (lower is better: the static code identifies the speaker), ``eer/dynamic``
(higher is better: the dynamics do not) and ``eer/gap`` = dynamic - static (DBSE's
"disentanglement gap", higher is better). Chance rows: 0.5 for both EERs, 0 for the gap.

Utterances: a dataset whose items are chunks of longer utterances gives each chunk's utterance in
``SplitData.extra["utterance"]``; otherwise every item is its own utterance. The interval is a
percentile bootstrap over test utterances (``n_resamples`` resamples; trials between two copies of
one utterance are dropped, so a resample never scores an utterance against itself).

Reference defect fixed: DBSE's evaluation returned from inside its repeat loop, so only one of its
``niter`` passes ran; the computation here is deterministic (posterior means, exact ROC), so there
is nothing to repeat and the single value is the whole result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.errors import NotApplicable
from seqbench.hookspecs import hookimpl
from seqbench.metric import EvalContext, EvalData, Metric, Requirements
from seqbench.types import MetricOutput, MetricValue

from ._common import encode_split

DEFAULTS: dict[str, Any] = {"n_resamples": 200}


def _eer_of_resample(emb: np.ndarray, speakers: np.ndarray, idx: np.ndarray) -> float:
    """EER over the pairs of resampled utterances ``idx`` that are distinct originals."""
    from seqbench.functional import cosine_pair_scores, equal_error_rate

    scores, target = cosine_pair_scores(emb[idx], speakers[idx])
    iu, ju = np.triu_indices(len(idx), k=1)
    keep = idx[iu] != idx[ju]
    if not target[keep].any() or target[keep].all():
        return float("nan")
    return equal_error_rate(scores[keep], target[keep])


class SpeakerEER(Metric):
    name = "eer"
    version = "1"
    description = "speaker-verification EER of static and dynamic codes (cosine), and their gap"
    outputs = (
        MetricOutput("eer/static", False, "EER of the static embedding (speaker should be here)",
                     chance_key="chance/eer/static"),
        MetricOutput("eer/dynamic", True, "EER of the dynamic embedding (speaker should not be here)",
                     chance_key="chance/eer/dynamic"),
        MetricOutput("eer/gap", True, "dynamic EER - static EER", chance_key="chance/eer/gap"),
    )
    requires = Requirements(identity=True, modality=("audio",))
    option_defaults = DEFAULTS

    def evaluate(self, method, data: EvalData, ctx: EvalContext) -> dict[str, MetricValue]:
        from seqbench.functional import speaker_verification_eer, utterance_embeddings

        opts = self.resolved_options()
        test = data.test
        if test.identity is None:
            raise NotApplicable(f"{data.spec.name}'s test split has no speaker identities")
        codes = encode_split(method, test, ctx.batch_size, ctx.device)
        utterance = np.asarray(test.extra.get("utterance", test.ids))
        static, utt_ids = utterance_embeddings(codes.static, utterance)
        dynamic, _ = utterance_embeddings(codes.dynamic, utterance)
        first = {u: i for i, u in reversed(list(enumerate(utterance.tolist())))}
        speakers = np.asarray(test.identity)[[first[u] for u in utt_ids.tolist()]]
        if len(np.unique(speakers)) < 2 or len(np.unique(speakers)) == len(speakers):
            raise NotApplicable(f"{data.spec.name}: EER needs at least two speakers with two utterances each "
                                f"in the test split ({len(speakers)} utterances, {len(np.unique(speakers))} speakers)")
        out: dict[str, MetricValue] = {}
        values: dict[str, float] = {}
        for which, emb in (("static", static), ("dynamic", dynamic)):
            values[which] = speaker_verification_eer(emb, speakers)

        def resampled(idx_block: np.ndarray) -> np.ndarray:
            rows = []
            for idx in idx_block:  # one EER per resample (each is a sort of U^2 trials)
                rows.append([_eer_of_resample(static, speakers, idx), _eer_of_resample(dynamic, speakers, idx)])
            return np.asarray(rows)

        # The same resampled utterance sets for both codes, so the gap's interval is paired.
        draws = resampled(np.random.default_rng(ctx.seed).integers(0, len(speakers),
                                                                   size=(int(opts["n_resamples"]), len(speakers))))
        draws = draws[~np.isnan(draws).any(axis=1)]
        stats = {"static": draws[:, 0], "dynamic": draws[:, 1], "gap": draws[:, 1] - draws[:, 0]}
        values["gap"] = values["dynamic"] - values["static"]
        for key in ("static", "dynamic", "gap"):
            low, high = (np.quantile(stats[key], [0.025, 0.975]) if len(stats[key]) else (np.nan, np.nan))
            out[f"eer/{key}"] = MetricValue(float(values[key]), n=len(speakers), ci_low=float(low), ci_high=float(high))
        out["chance/eer/static"] = MetricValue(0.5)
        out["chance/eer/dynamic"] = MetricValue(0.5)
        out["chance/eer/gap"] = MetricValue(0.0)
        return out


@hookimpl
def seqbench_add_metrics():
    return [SpeakerEER]
