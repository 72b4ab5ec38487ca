"""TIMIT on a tiny NIST SPHERE fixture (written with soundfile), and the embedded synthetic-speech set."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("soundfile")

from seqbench.errors import ConfigError, DataNotFoundError
from seqbench.media import CorruptMediaError, LayoutError, magnitude_spectrogram, read_audio, write_sphere

from seqbench.datasets.synthetic_speech import SyntheticSpeech
from seqbench.datasets.timit import CORE_TEST_SPEAKERS, TIMIT


def tone(samples: int, f0: float, seed: int = 0) -> np.ndarray:
    t = np.arange(samples) / 16000
    noise = np.random.default_rng(seed).standard_normal(samples) * 0.01
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3 * f0 * t) + noise).astype(np.float32)


@pytest.fixture
def timit(tmp_path) -> Path:
    root = tmp_path / "timit" / "TIMIT"
    speakers = [("TRAIN", "DR1", "FCJF0", 120), ("TRAIN", "DR4", "MABC0", 220), ("TEST", "DR1", "MDAB0", 150),
                ("TEST", "DR8", "FMLD0", 250), ("TEST", "DR2", "MXYZ0", 300)]  # MXYZ0 is not a core-test speaker
    for split, dialect, speaker, f0 in speakers:
        folder = root / split / dialect / speaker
        write_sphere(folder / "SA1.WAV", tone(8000, f0))
        write_sphere(folder / "SI1027.WAV", tone(7000, f0, 1))  # 2 chunks of 3200
        write_sphere(folder / "SX37.WAV", tone(10000, f0, 2))  # 3 chunks
        (folder / "SX37.PHN").write_text("0 3200 h#\n")
    write_sphere(root / "TRAIN" / "DR1" / "FCJF0" / "SX99.WAV", tone(2000, 120))  # shorter than a chunk
    return tmp_path / "timit"


def test_timit_chunks_features_labels_and_core_test(timit, tmp_path):
    adapter = TIMIT(root=tmp_path / "data")
    adapter.prepare(timit)
    train, test = adapter.split("train"), adapter.split("test")
    assert train.x.shape == (10, 20, 201, 1, 1) and train.x.dtype == np.float32  # 2 speakers x (2 + 3) chunks
    assert len(test) == 10  # MDAB0 and FMLD0 only
    spec = adapter.spec
    assert spec.modality == "audio" and spec.family == "speech" and (spec.frames, spec.channels) == (20, 201)
    assert spec.identity_label == "speaker" and spec.value_range == (0.0, 1.0)
    assert spec.label("speaker").class_names == ("FCJF0", "FMLD0", "MABC0", "MDAB0")
    assert set(train.labels["gender"]) == {0, 1} and set(test.labels["dialect"]) == {0, 7}
    assert float(np.asarray(train.x).max()) == 1.0 and float(np.asarray(test.x).min()) >= 0.0
    utterances = train.extra["utterance"]
    assert len(np.unique(utterances)) == 4 and sorted(np.bincount(utterances)[np.unique(utterances)]) == [2, 2, 3, 3]
    assert all(len(set(train.labels["speaker"][utterances == u])) == 1 for u in np.unique(utterances))
    assert not any("SA1" in k for k in train.extra["key"])
    first = np.flatnonzero(np.char.endswith(train.extra["key"].astype(str), "FCJF0/SI1027.WAV"))[0]
    wave, _ = read_audio(timit / "TIMIT" / "TRAIN" / "DR1" / "FCJF0" / "SI1027.WAV")
    expected = magnitude_spectrogram(wave[None, :3200])[0] / adapter.meta()["peak"]
    assert np.allclose(np.asarray(train.x[first])[..., 0, 0], expected, atol=1e-6)
    notes = adapter.meta()["notes"]
    assert len(notes) == 1 and "SX99.WAV" in notes[0]["path"]
    assert adapter.meta()["scan"]["missing_core_speakers"] == sorted(set(CORE_TEST_SPEAKERS) - {"MDAB0", "FMLD0"})
    everyone = TIMIT(root=tmp_path / "data", test_speakers="all", include_sa=True, feature="mel")
    everyone.prepare(timit)
    assert len(everyone.split("test")) == 3 * (2 + 3 + 2) and everyone.spec.channels == 80


def test_timit_lower_case_layout_and_riff_copies(tmp_path):
    root = tmp_path / "data" / "lower"
    for split, speaker in (("train", "mabc0"), ("test", "mdab0")):
        folder = root / split / "dr1" / speaker
        write_sphere(folder / "si1.wav", tone(6400, 200))
        import soundfile as sf

        sf.write(str(folder / "si1.wav.wav"), tone(6400, 200), 16000)  # a RIFF copy beside the SPHERE file
    adapter = TIMIT(root=tmp_path / "prepared", feature="log")
    adapter.prepare(tmp_path / "data")
    assert len(adapter.split("train")) == 2 and len(adapter.split("test")) == 2


def test_timit_truncated_sphere_and_errors(timit, tmp_path, caplog):
    bad = timit / "TIMIT" / "TRAIN" / "DR4" / "MABC0" / "SX37.WAV"
    bad.write_bytes(bad.read_bytes()[:5000])
    with caplog.at_level(logging.WARNING):
        adapter = TIMIT(root=tmp_path / "data")
        adapter.prepare(timit)
    assert [s["path"] for s in adapter.meta()["skipped"]] == [str(bad)]
    assert "truncated" in adapter.meta()["skipped"][0]["reason"] and "SX37.WAV" in caplog.text
    assert len(adapter.split("train")) == 7
    assert any(str(bad) in p for p in adapter.verify())
    with pytest.raises(CorruptMediaError, match="SX37.WAV.*strict"):
        TIMIT(root=tmp_path / "data2", strict=True).prepare(timit)
    (tmp_path / "flat").mkdir()
    with pytest.raises(LayoutError, match="no folder with TRAIN/ and TEST/"):
        TIMIT(root=tmp_path / "data").prepare(tmp_path / "flat")
    with pytest.raises(DataNotFoundError, match=r"looked for .*none.*seqbench data prepare timit --source DIR .*--data-option feature=mel"):
        TIMIT(root=tmp_path / "none", feature="mel").split("train")
    with pytest.raises(ConfigError, match="feature"):
        TIMIT(feature="mfcc")


def test_synthetic_speech_is_deterministic_labelled_and_learnable(tmp_path):
    options = dict(speakers=6, utterances=10, test_utterances=2, chunks=2)
    a = SyntheticSpeech(root=tmp_path / "a", **options)
    b = SyntheticSpeech(root=tmp_path / "b", **options)
    assert a.spec.fingerprint == b.spec.fingerprint and a.meta()["sha256"] == b.meta()["sha256"]
    assert SyntheticSpeech.embedded and a.spec.modality == "audio" and a.spec.family == "speech"
    train, test = a.split("train"), a.split("test")
    assert train.x.shape == (6 * 8 * 2, 20, 201, 1, 1) and len(test) == 6 * 2 * 2
    assert set(train.labels["speaker"]) == set(test.labels["speaker"]) == set(range(6))
    assert a.spec.label("content").num_classes == 25 and a.spec.label("content").kind == "dynamic"
    assert not set(train.extra["utterance"]) & set(test.extra["utterance"])
    assert np.array_equal(train.identity, train.labels["speaker"])
    x = np.asarray(train.x).reshape(len(train), 20, 201)
    assert 0.0 <= x.min() and x.max() == 1.0
    # A linear probe on the spectrum of each syllable (frames 2-8 and 12-18) recovers the labels.
    from sklearn.linear_model import RidgeClassifier

    def half(split, i):
        return np.asarray(split.x).reshape(len(split), 20, 201)[:, 2 + 10 * i:9 + 10 * i].mean(axis=1)

    both = lambda split: np.concatenate([half(split, 0), half(split, 1)], axis=1)  # noqa: E731
    probe = RidgeClassifier(alpha=0.1)
    assert probe.fit(both(train), train.labels["speaker"]).score(both(test), test.labels["speaker"]) >= 0.6  # chance 1/6
    for i, vowel in enumerate((train.labels["content"] // 5, train.labels["content"] % 5)):
        truth = (test.labels["content"] // 5, test.labels["content"] % 5)[i]
        assert probe.fit(half(train, i), vowel).score(half(test, i), truth) >= 0.8  # chance 1/5
    c = SyntheticSpeech(root=tmp_path / "c", seed=1, **options)
    assert c.spec.fingerprint != a.spec.fingerprint
    with pytest.raises(ConfigError, match="reads no files"):
        SyntheticSpeech(source="/x")
    with pytest.raises(ConfigError, match="test_utterances"):
        SyntheticSpeech(utterances=3, test_utterances=3)


def test_synthetic_speech_validation_is_carved_like_its_test_split(tmp_path):
    """Test holds unseen utterances of seen speakers, so the validation carve keeps utterances
    whole and every speaker on both sides; a subject-grouped carve (the video sets') would leave
    the validation speakers unseen, and the speaker-from-d probe could never name one."""
    from seqbench.data import carve_validation
    from seqbench.datasets.timit import TIMIT

    adapter = SyntheticSpeech(root=tmp_path / "a", speakers=6, utterances=10, test_utterances=2, chunks=2)
    train, val = carve_validation(adapter.split("train"), 0.25, seed=0)
    assert len(val) == 2 * 12  # 12 of the 48 training utterances, two chunks each
    assert set(val.labels["speaker"]) <= set(train.labels["speaker"]) == set(range(6))
    assert len(set(val.labels["speaker"])) >= 4
    assert not set(val.extra["utterance"]) & set(train.extra["utterance"])
    assert TIMIT.validation_group is None  # TIMIT's test speakers are unseen: it carves by speaker

    class Misconfigured(SyntheticSpeech):
        validation_group = "sentence"  # not an array the adapter stores

    with pytest.raises(ConfigError, match="validation_group='sentence'"):
        Misconfigured(root=tmp_path / "a", speakers=6, utterances=10, test_utterances=2, chunks=2).split("train")
