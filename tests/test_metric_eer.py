"""The ``eer`` metric on synthetic speaker codes: speaker in the static code only -> static EER 0, dynamic ~0.5."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from seqbench.data import SplitData
from seqbench.errors import NotApplicable
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins
from seqbench.types import DataSpec, Factors

SPEC = DataSpec(name="voices", modality="audio", frames=5, channels=6, height=1, width=1,
                value_range=(-5.0, 5.0), identity_label="speaker", family="speech", fingerprint="0a0d10")
SPEAKERS, UTTERANCES, CHUNKS = 8, 4, 3


def _split(seed: int) -> SplitData:
    """Chunks whose first 4 bins hold a speaker centroid (+ noise) and last 2 bins pure noise."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(SPEAKERS, 4)) * 2
    speaker = np.repeat(np.arange(SPEAKERS), UTTERANCES * CHUNKS)
    utterance = np.repeat(np.arange(SPEAKERS * UTTERANCES), CHUNKS)
    x = rng.normal(size=(len(speaker), SPEC.frames, 6, 1, 1)).astype(np.float32)
    x[:, :, :4, 0, 0] = centroids[speaker][:, None, :] + 0.1 * rng.normal(size=(len(speaker), SPEC.frames, 4))
    return SplitData(x=x, labels={}, identity=speaker, extra={"utterance": utterance})


class Splitter:
    """static = time mean of the speaker bins, dynamic = per-step noise bins (``swap=True`` swaps them)."""

    name = "splitter"

    def __init__(self, swap: bool = False):
        self.swap = swap

    def encode(self, x: torch.Tensor) -> Factors:
        feats = x[..., 0, 0]
        static, dynamic = feats[:, :, :4].mean(1), feats[:, :, 4:]
        if self.swap:
            static, dynamic = feats[:, :, 4:].mean(1), feats[:, :, :4]
        return Factors(static, dynamic)


def _run(method, split=None, **options):
    metric = load_plugins().metrics.get("eer")(**options)
    split = split or _split(0)
    return metric.evaluate(method, EvalData(SPEC, split, split), EvalContext(device=torch.device("cpu")))


def test_speaker_only_in_static_code():
    out = _run(Splitter())
    assert out["eer/static"].value == 0.0
    assert out["eer/dynamic"].value == pytest.approx(0.5, abs=0.15)
    assert out["eer/gap"].value == pytest.approx(out["eer/dynamic"].value - out["eer/static"].value)
    assert out["eer/static"].n == SPEAKERS * UTTERANCES  # utterances, not chunks
    assert out["eer/dynamic"].ci_low <= out["eer/dynamic"].value <= out["eer/dynamic"].ci_high
    assert out["chance/eer/static"].value == 0.5 and out["chance/eer/gap"].value == 0.0


def test_swapped_codes_invert_the_gap():
    out = _run(Splitter(swap=True), n_resamples=50)
    assert out["eer/dynamic"].value == 0.0 and out["eer/gap"].value < -0.3


def test_matches_functional_core_on_utterance_means():
    from seqbench.functional import speaker_verification_eer, utterance_embeddings

    split = _split(1)
    codes = Splitter().encode(torch.from_numpy(split.x))
    emb, ids = utterance_embeddings(codes.dynamic, split.extra["utterance"])
    expected = speaker_verification_eer(emb, split.identity[::CHUNKS][ids])
    assert _run(Splitter(), split)["eer/dynamic"].value == pytest.approx(expected)


def test_applicability():
    metric = load_plugins().metrics.get("eer")()
    assert "audio" in metric.applicable(Splitter(), dataclasses.replace(SPEC, modality="video"))
    assert "identity" in metric.applicable(Splitter(), dataclasses.replace(SPEC, identity_label=None))
    one_each = _split(0).subset(np.arange(0, SPEAKERS * UTTERANCES * CHUNKS, UTTERANCES * CHUNKS))
    with pytest.raises(NotApplicable, match="two utterances"):
        _run(Splitter(), one_each)


def test_end_to_end_with_dbse_audio(tmp_path):
    """DBSE's audio variant trained for a few steps, then scored: every key, finite, within [0, 1]."""
    from seqbench.data import carve_validation
    from seqbench.trainer import Trainer

    plugins = load_plugins()
    dbse = plugins.methods.get("dbse")
    spec = dataclasses.replace(SPEC, identity_label="speaker")
    split = _split(2)
    torch.manual_seed(0)
    method = dbse(dbse.Config.for_profile("smoke", "speech").with_overrides({"steps": 20}), spec)
    train, val = carve_validation(split, 0.2, seed=0)
    Trainer(method, train, val, device=torch.device("cpu"), seed=0, workdir=tmp_path, progress=False).fit()
    method.eval()
    ctx = EvalContext(device=torch.device("cpu"), registry=plugins)
    with torch.no_grad():
        out = plugins.metrics.get("eer")(n_resamples=30).evaluate(method, EvalData(spec, train, split), ctx)
    for key in ("eer/static", "eer/dynamic"):
        assert 0.0 <= out[key].ci_low <= out[key].ci_high <= 1.0
        assert 0.0 <= out[key].value <= 1.0 and out[key].n == SPEAKERS * UTTERANCES
    assert out["eer/gap"].value == pytest.approx(out["eer/dynamic"].value - out["eer/static"].value)
