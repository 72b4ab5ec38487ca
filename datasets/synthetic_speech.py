"""``synthetic-speech``: the embedded speech set for the audio protocol, synthesised by seqbench.

A source-filter vowel synthesiser, so the audio protocol (speaker = static factor, content =
dynamic factor, EER per utterance) runs on any machine without TIMIT:

* **speaker** (static): glottal pitch ``f0`` (log-spaced 90-250 Hz) and vocal-tract length, i.e.
  a scaling of every formant frequency (0.84-1.20), on a grid so every pair of speakers differs
  in at least one of them; plus a per-speaker spectral tilt (open quotient);
* **content** (dynamic): each 200 ms sequence holds two syllables, vowel ``v1`` then ``v2`` of
  /a e i o u/ (25 classes ``5 * v1 + v2``); formants glide between syllables over 20 ms;
* the excitation is a Rosenberg glottal pulse train (differentiated) plus aspiration noise, the
  vocal tract a cascade of four time-varying formant resonators (Klatt style); per utterance the
  pitch contour (declination, accents) and loudness vary, so utterances of one speaker differ.

Utterances of ``chunks`` x 3200 samples (16 kHz) are cut into 3200-sample sequences and turned into
the same features as ``timit`` (n_fft 400, window 320, hop 165 -> 20 frames x 201 bins), by
default on a 60 dB log scale normalised to [0, 1] by the training peak (``feature=linear`` for
DBSE's linear magnitudes). Split by utterance: the last ``test_utterances`` of every speaker are
test, so every speaker is in both splits. ``SplitData.extra['utterance']`` groups the chunks of an
utterance. Deterministic from the options; generated in a few seconds and cached.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqbench.dataset_lifecycle import GeneratedDataset, as_int
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.media import SPEECH_FEATURES, ClipCacheWriter, normalise_features, speech_features
from seqbench.types import LabelSpec


SAMPLE_RATE = 16000
CHUNK = 3200
BLOCK = 80  # formant and pitch tracks are piecewise linear over 5 ms blocks
VOWELS: tuple[str, ...] = ("a", "e", "i", "o", "u")
#: F1-F4 (Hz) of an adult male vocal tract (Peterson & Barney style averages); scaled per speaker
FORMANTS = np.array([[730, 1090, 2440, 3400], [530, 1840, 2480, 3500], [270, 2290, 3010, 3600],
                     [570, 840, 2410, 3350], [300, 870, 2240, 3300]], dtype=np.float64)
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])
CONTENT_NAMES: tuple[str, ...] = tuple(f"{a}-{b}" for a in VOWELS for b in VOWELS)


def speaker_parameters(n: int) -> dict[str, np.ndarray]:
    """f0 (Hz), formant scale and open quotient of ``n`` speakers on a pitch x tract-length grid."""
    scales = 4 if n >= 8 else max(1, n // 2)
    pitches = int(np.ceil(n / scales))
    s = np.arange(n)
    pitch_level = s % pitches
    scale_level = (s // pitches + pitch_level) % scales  # staggered so neighbours in pitch differ in tract
    f0 = 90.0 * (250.0 / 90.0) ** (pitch_level / max(1, pitches - 1))
    scale = 0.84 + 0.36 * scale_level / max(1, scales - 1)
    open_quotient = 0.35 + 0.3 * ((s * 7) % n) / max(1, n - 1)
    return {"f0": f0, "scale": scale, "open_quotient": open_quotient}


def synthesise(vowels: np.ndarray, f0: np.ndarray, scale: np.ndarray, open_quotient: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Waveforms ``[U, syllables * CHUNK / 2]`` float32 of vowel sequences ``[U, syllables]``.

    Vectorised over utterances; the resonators are recursive, so they loop over samples (each
    step is a few array operations over all utterances).
    """
    from scipy.ndimage import convolve1d

    u, syllables = vowels.shape
    samples = syllables * CHUNK // 2
    blocks = samples // BLOCK
    per_syllable = blocks // syllables
    # formant track: the syllable's vowel, gliding from the previous vowel over 4 blocks
    target = FORMANTS[vowels] * scale[:, None, None] * rng.uniform(0.98, 1.02, (u, 1, 4))  # [U, S, 4]
    track = np.repeat(target, per_syllable, axis=1)  # [U, blocks, 4]
    previous = np.repeat(np.concatenate([target[:, :1], target[:, :-1]], axis=1), per_syllable, axis=1)
    position = np.tile(np.arange(per_syllable), syllables)
    glide = np.clip((position + 1) / 4.0, 0.0, 1.0)[None, :, None]
    track = previous + (track - previous) * glide
    radius = np.exp(-np.pi * BANDWIDTHS * (track / FORMANTS.mean(0)) ** 0.5 / SAMPLE_RATE)
    a1 = 2.0 * radius * np.cos(2.0 * np.pi * track / SAMPLE_RATE)
    a2 = -radius ** 2
    gain = 1.0 - a1 - a2
    # pitch: speaker f0, utterance register, declination and one accent per syllable
    t = np.arange(samples) / samples
    register = rng.uniform(0.94, 1.06, (u, 1))
    accents = np.repeat(rng.uniform(0.96, 1.06, (u, syllables)), CHUNK // 2, axis=1)
    accents = convolve1d(accents, np.hanning(321) / np.hanning(321).sum(), axis=1, mode="nearest")
    pitch = f0[:, None] * register * (1.0 - 0.08 * t)[None] * accents
    phase = np.cumsum(pitch / SAMPLE_RATE, axis=1) % 1.0
    oq = open_quotient[:, None]
    rise, fall = oq * 0.7, oq * 0.3
    flow = np.where(phase < rise, 0.5 * (1.0 - np.cos(np.pi * phase / rise)),
                    np.where(phase < rise + fall, np.cos(0.5 * np.pi * (phase - rise) / fall), 0.0))
    source = np.diff(flow, axis=1, prepend=flow[:, :1]) * 20.0
    envelope_pos = (np.arange(samples) % (CHUNK // 2) + 0.5) / (CHUNK // 2)
    envelope = (0.3 + 0.7 * np.sin(np.pi * envelope_pos) ** 0.6)[None] * rng.uniform(0.6, 1.0, (u, 1))
    source = (source + 0.03 * rng.standard_normal((u, samples))) * envelope
    # Recursive resonators: formants in cascade, each a loop over samples of operations over all
    # utterances (time-major, contiguous arrays).
    signal = np.ascontiguousarray(source.T)  # [samples, U]
    block_of = np.arange(samples) // BLOCK
    for k in range(4):
        g = np.ascontiguousarray(gain[:, :, k].T)  # [blocks, U]
        c1 = np.ascontiguousarray(a1[:, :, k].T)
        c2 = np.ascontiguousarray(a2[:, :, k].T)
        filtered = np.empty_like(signal)
        y1 = np.zeros(u)
        y2 = np.zeros(u)
        for n, b in enumerate(block_of):
            y = g[b] * signal[n]
            y += c1[b] * y1
            y += c2[b] * y2
            filtered[n] = y
            y2, y1 = y1, y
        signal = filtered
    out = signal.T
    peak = np.abs(out).max(axis=1, keepdims=True)
    return (0.5 * out / np.maximum(peak, 1e-9)).astype(np.float32)


class SyntheticSpeech(GeneratedDataset):
    """Source-filter vowel speech: speaker (static) x two-vowel content (dynamic), TIMIT-like features."""

    name = "synthetic-speech"
    version = "2"
    modality = "audio"
    family = "speech"
    description = ("synthesised vowel speech (source-filter): speakers differ in pitch and vocal-tract length (static), "
                   "two-vowel content per 200 ms (dynamic, 25 classes); TIMIT-style spectrogram sequences")
    defaults: ClassVar[dict[str, Any]] = {"speakers": 24, "utterances": 20, "test_utterances": 4, "chunks": 4,
                                          "feature": "log", "seed": 0}
    settings_keys = ("speakers", "utterances", "test_utterances", "chunks", "feature", "seed")
    identity_label = "speaker"
    extra_arrays: ClassVar[list[str]] = ["utterance", "chunk"]
    # Test holds unseen utterances of seen speakers, so validation is carved by utterance too
    # (version 2; version 1 carved by speaker, and the speaker-from-d probe could not name a
    # validation speaker it never saw).
    validation_group: ClassVar[str | None] = "utterance"

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = dict(options)
        n = self.name
        out["speakers"] = as_int(out["speakers"], "speakers", n, 2)
        out["utterances"] = as_int(out["utterances"], "utterances", n, 2)
        out["test_utterances"] = as_int(out["test_utterances"], "test_utterances", n, 1)
        out["chunks"] = as_int(out["chunks"], "chunks", n, 1)
        out["seed"] = as_int(out["seed"], "seed", n, 0)
        if out["test_utterances"] >= out["utterances"]:
            raise ConfigError(f"dataset {n!r}: test_utterances={out['test_utterances']} must be below "
                              f"utterances={out['utterances']} (every speaker needs training utterances)")
        if out["feature"] not in SPEECH_FEATURES:
            raise ConfigError(f"dataset {n!r}: feature={out['feature']!r}: choose one of {', '.join(SPEECH_FEATURES)}")
        return out

    def spec_extra(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"feature": meta["settings"]["feature"], "sample_rate": SAMPLE_RATE, "peak": meta.get("peak"),
                "speaker_parameters": meta.get("speaker_parameters")}

    def generate(self, target: Path) -> Path:
        o = self.options
        speakers, utterances, chunks = o["speakers"], o["utterances"], o["chunks"]
        rng = np.random.default_rng([o["seed"], 20240])
        params = speaker_parameters(speakers)
        speaker = np.repeat(np.arange(speakers), utterances)
        vowels = rng.integers(0, len(VOWELS), (speakers * utterances, 2 * chunks))
        waves = synthesise(vowels, params["f0"][speaker], params["scale"][speaker], params["open_quotient"][speaker], rng)
        feats = speech_features(waves.reshape(-1, CHUNK), o["feature"], sample_rate=SAMPLE_RATE)  # [U * chunks, T, F]
        utterance = np.repeat(np.arange(speakers * utterances), chunks)
        content = (vowels[:, 0::2] * len(VOWELS) + vowels[:, 1::2]).reshape(-1)
        spk = np.repeat(speaker, chunks)
        is_test = np.repeat(np.arange(speakers * utterances) % utterances >= utterances - o["test_utterances"], chunks)
        labels = (LabelSpec("speaker", speakers, "static", tuple(f"spk{s:02d}" for s in range(speakers))),
                  LabelSpec("content", len(CONTENT_NAMES), "dynamic", CONTENT_NAMES))
        rows = {"train": int((~is_test).sum()), "test": int(is_test.sum())}
        with ClipCacheWriter(target, rows, feats.shape[1:] + (1, 1), np.float32) as writer:
            for split, mask in (("train", ~is_test), ("test", is_test)):
                writer.add(split, feats[mask][..., None, None],
                           labels=np.stack([spk[mask], content[mask]], axis=1).astype(np.int64),
                           identity=spk[mask].astype(np.int64), utterance=utterance[mask].astype(np.int64),
                           chunk=(np.arange(len(utterance)) % chunks)[mask].astype(np.int64),
                           ids=np.flatnonzero(mask).astype(np.int64))
            peak = float(feats[~is_test].max())
            clipped = {split: normalise_features(writer.rows(split), o["feature"], peak) for split in rows}
            meta = self.base_meta(labels, [f"spk{s:02d}" for s in range(speakers)])
            meta.update({"peak": peak, "clipped_values": clipped, "value_range": [0.0, 1.0],
                         "speaker_parameters": {k: np.round(v, 4).tolist() for k, v in params.items()},
                         "waveform_sha256": hashlib.sha256(waves.tobytes()).hexdigest(),
                         "split_rule": f"by utterance: the last {o['test_utterances']} of every speaker are test"})
            return writer.finish(meta)


@hookimpl
def seqbench_add_datasets() -> list[type[GeneratedDataset]]:
    return [SyntheticSpeech]
