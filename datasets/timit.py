"""``timit``: TIMIT read speech (LDC93S1) for the audio protocol, with DBSE's features.

Reads ``TRAIN|TEST/DR1-8/<SPEAKER>/<UTTERANCE>.WAV`` (NIST SPHERE, read with soundfile; lower-case
layouts and extra parent folders such as ``TIMIT/`` or ``data/`` are found too; when a ``.WAV.wav``
RIFF copy sits beside a SPHERE file, one of them is used). SA1/SA2 (read by every speaker) are
left out (``include_sa``). Train: every TRAIN speaker; test: the 24 core-test speakers
(``test_speakers=all`` for the whole TEST folder).

Each utterance is cut into non-overlapping 3200-sample chunks (200 ms at 16 kHz; the remainder is
dropped) and each chunk is one sequence: a linear magnitude spectrogram with n_fft 400, a
320-sample Hann window and hop 165 (centred frames: 20 frames x 201 bins), stored as
``x[20, 201, 1, 1]`` float32. Values are divided by the largest training magnitude and clipped to
[0, 1] (``feature=log`` / ``mel`` give a 60 dB log range, mel with 80 bins, also in [0, 1]).

Labels: ``speaker`` (static; train and test speakers are disjoint, so it is for verification, not a
classifier), ``gender`` and ``dialect`` (static, shared by both splits). Identity = speaker.
``SplitData.extra['utterance']`` groups the chunks of one utterance (the EER protocol averages
codes per utterance).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqbench.dataset_lifecycle import Item, PreparedDataset, Scan, as_bool, as_int
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.media import (SPEECH_FEATURES, ClipCacheWriter, CorruptMediaError, LayoutError, SkipLog, audio_length,
                            default_workers, normalise_features, ordered_map, read_audio, speech_features)
from seqbench.types import LabelSpec


SAMPLE_RATE = 16000
CORE_TEST_SPEAKERS: tuple[str, ...] = (
    "MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0", "FPKT0", "MLLL0", "MTLS0", "FJLM0",
    "MBPM0", "MKLT0", "FNLP0", "MCMJ0", "MJDH0", "FMGD0", "MGRT0", "MNJM0", "FDHC0", "MJLN0", "MPAM0", "FMLD0")
DIALECTS: tuple[str, ...] = ("new_england", "northern", "north_midland", "south_midland", "southern", "new_york_city",
                             "western", "army_brat")
SPEAKER = re.compile(r"^[MF][A-Z]{3}\d$", re.IGNORECASE)
DIALECT = re.compile(r"^dr([1-8])$", re.IGNORECASE)


def find_timit_root(source: Path, depth: int = 3) -> Path | None:
    """The folder holding TRAIN/ and TEST/ (any case), at most ``depth`` levels below ``source``."""
    frontier = [source]
    for _ in range(depth + 1):
        nxt = []
        for folder in frontier:
            names = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
            if "train" in names and "test" in names:
                return folder
            nxt += list(names.values())
        frontier = nxt
    return None


class SpeechDataset(PreparedDataset):
    """Base of the speech adapters: waveform chunks -> spectrogram sequences ``[T, bins, 1, 1]``."""

    modality = "audio"
    family = "speech"
    extra_arrays: ClassVar[list[str]] = ["utterance", "chunk"]

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(options)
        if out["feature"] not in SPEECH_FEATURES:
            raise ConfigError(f"dataset {self.name!r}: feature={out['feature']!r}: choose one of "
                              f"{', '.join(SPEECH_FEATURES)} (linear is DBSE's)")
        return out

    @property
    def feature_kwargs(self) -> dict[str, int]:
        return {"n_fft": 400, "win_length": 320, "hop_length": 165, "mels": 80, "sample_rate": SAMPLE_RATE}

    def feature_shape(self) -> tuple[int, int]:
        k = self.feature_kwargs
        frames = 1 + self.options["chunk"] // k["hop_length"]
        bins = k["mels"] if self.options["feature"] == "mel" else k["n_fft"] // 2 + 1
        return frames, bins

    def spec_extra(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"feature": meta["settings"]["feature"], "sample_rate": SAMPLE_RATE, "peak": meta.get("peak"),
                "clipped_values": meta.get("clipped_values"), "stft": self.feature_kwargs}

    def write_chunks(self, writer: ClipCacheWriter, item: Item, wave: np.ndarray, utterance: int,
                     label_names: list[str]) -> float:
        """Cut a waveform into chunks, append their raw features; return the largest value."""
        chunk = self.options["chunk"]
        n = len(wave) // chunk
        if n == 0:
            return 0.0
        feats = speech_features(wave[:n * chunk].reshape(n, chunk), self.options["feature"], **self.feature_kwargs)
        writer.add(item.split, feats[:, :, :, None, None],
                   labels=np.array([[item.labels[name] for name in label_names]] * n, dtype=np.int64),
                   identity=np.int64(item.identity), utterance=np.int64(utterance), chunk=np.arange(n),
                   ids=utterance * 10_000 + np.arange(n), key=np.array([item.key] * n))
        return float(feats.max())

    def finalise(self, writer: ClipCacheWriter, peak: float, meta: dict[str, Any]) -> dict[str, Any]:
        """Normalise every split in place with the training peak (see :func:`normalise_features`)."""
        clipped = {split: normalise_features(writer.rows(split), self.options["feature"], peak)
                   for split in writer.count}
        meta.update({"peak": peak, "clipped_values": clipped, "value_range": [0.0, 1.0],
                     "normalisation": ("value / training peak" if self.options["feature"] == "linear" else
                                       "(log(v + 1e-3 peak) - log(1e-3 peak)) / (log(peak + 1e-3 peak) - log(1e-3 peak))")
                     + ", clipped to [0, 1]"})
        return meta


class TIMIT(SpeechDataset):
    """TIMIT: 3200-sample chunks as spectrogram sequences; speaker (static) for the EER protocol."""

    name = "timit"
    version = "1"
    description = "TIMIT read speech: 200 ms chunks, DBSE linear spectrogram (20 x 201), 462 train / 24 core-test speakers"
    layout_help = "TRAIN/ and TEST/ with DR1-DR8/<SPEAKER>/<UTTERANCE>.WAV (NIST SPHERE), any case"
    defaults: ClassVar[dict[str, Any]] = {"feature": "linear", "chunk": 3200, "include_sa": False,
                                          "test_speakers": "core", "strict": False, "workers": 0}
    settings_keys = ("feature", "chunk", "include_sa", "test_speakers")
    identity_label = "speaker"

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(options)
        out["chunk"] = as_int(out["chunk"], "chunk", self.name, 400)
        out["include_sa"] = as_bool(out["include_sa"], "include_sa", self.name)
        if out["test_speakers"] not in ("core", "all"):
            raise ConfigError(f"dataset {self.name!r}: test_speakers={out['test_speakers']!r}: use core (the 24 "
                              f"core-test speakers) or all")
        return out

    def scan(self, source: Path) -> Scan:
        root = find_timit_root(source)
        if root is None:
            raise LayoutError(f"dataset {self.name!r}: no folder with TRAIN/ and TEST/ found in {source} (searched 3 "
                              f"levels deep); expected {self.layout_help}")
        core = set(CORE_TEST_SPEAKERS)
        found, malformed = [], []
        for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in ("train", "test")):
            split = split_dir.name.lower()
            dialects = [d for d in sorted(split_dir.iterdir()) if d.is_dir() and DIALECT.match(d.name)]
            if not dialects:
                raise LayoutError(f"dataset {self.name!r}: {split_dir} has no DR1..DR8 folders; expected {self.layout_help}")
            for dialect_dir in dialects:
                dialect = int(DIALECT.match(dialect_dir.name).group(1)) - 1
                for speaker_dir in sorted(p for p in dialect_dir.iterdir() if p.is_dir()):
                    speaker = speaker_dir.name.upper()
                    if not SPEAKER.match(speaker):
                        malformed.append((str(speaker_dir), "not a TIMIT speaker folder (e.g. MDAB0); ignored"))
                        continue
                    if split == "test" and self.options["test_speakers"] == "core" and speaker not in core:
                        continue
                    chosen: dict[str, Path] = {}
                    for wav in sorted(speaker_dir.iterdir()):
                        if not wav.name.lower().endswith(".wav"):
                            continue
                        utterance = wav.name.split(".")[0].upper()
                        if utterance.startswith("SA") and not self.options["include_sa"]:
                            continue
                        chosen.setdefault(utterance, wav)  # X.WAV (SPHERE) sorts before X.WAV.wav
                    found += [(chosen[u], split, speaker, dialect, u) for u in sorted(chosen)]
        speakers = sorted({f[2] for f in found})
        if not speakers:
            raise LayoutError(f"dataset {self.name!r}: no utterances found under {root}; expected {self.layout_help}")
        index = {s: i for i, s in enumerate(speakers)}
        items = [Item(path=path, split=split, key=path.relative_to(source).as_posix(),
                      labels={"speaker": index[spk], "gender": int(spk[0] == "M"), "dialect": dialect},
                      identity=index[spk], info={"utterance": utt})
                 for path, split, spk, dialect, utt in found]
        labels = (LabelSpec("speaker", len(speakers), "static", tuple(speakers)),
                  LabelSpec("gender", 2, "static", ("female", "male")),
                  LabelSpec("dialect", len(DIALECTS), "static", DIALECTS))
        missing_core = sorted(core - set(speakers)) if self.options["test_speakers"] == "core" else []
        return Scan(items, labels, speakers, {"malformed": malformed, "missing_core_speakers": missing_core,
                                              "split_rule": "TIMIT TRAIN / TEST (" + self.options["test_speakers"]
                                                            + " test speakers), SA sentences "
                                                            + ("kept" if self.options["include_sa"] else "left out")})

    def read_whole(self, item: Item) -> None:
        read_audio(item.path)

    def prepare_into(self, target: Path, source: Path, scan: Scan, skips: SkipLog, meta: dict[str, Any]) -> Path:
        chunk = self.options["chunk"]
        lengths = {}
        for item in scan.items:
            try:
                samples, rate = audio_length(item.path)
            except CorruptMediaError as exc:
                skips.corrupt(exc)
                continue
            if rate != SAMPLE_RATE:
                skips.corrupt(CorruptMediaError(item.path, f"sample rate {rate} Hz; TIMIT is {SAMPLE_RATE} Hz"))
                continue
            if samples < chunk:
                skips.note(item.path, f"shorter than one {chunk}-sample chunk: no sequence")
            lengths[item.key] = samples
        items = [item for item in scan.items if lengths.get(item.key, 0) >= chunk]
        rows = {split: sum(lengths[i.key] // chunk for i in items if i.split == split) for split in ("train", "test")}
        label_names = [l.name for l in scan.labels]
        frames, bins = self.feature_shape()
        peak = 0.0
        workers = self.options.get("workers") or default_workers()
        with ClipCacheWriter(target, rows, (frames, bins, 1, 1), np.float32) as writer:
            for number, (item, result) in enumerate(ordered_map(lambda it: read_audio(it.path), items, workers)):
                if isinstance(result, CorruptMediaError):
                    skips.corrupt(result)
                    continue
                if isinstance(result, Exception):
                    raise result
                wave, _ = result
                top = self.write_chunks(writer, item, wave[:lengths[item.key]], number, label_names)
                if item.split == "train":
                    peak = max(peak, top)
            for split, count in writer.count.items():
                if count == 0:
                    raise LayoutError(f"dataset {self.name!r}: no readable {split} utterance of at least {chunk} "
                                      f"samples in {source}")
            meta = self.finalise(writer, peak, meta)
            meta.update({"skipped": skips.skipped, "notes": skips.notes, "split_rule": scan.notes["split_rule"],
                         "utterances": len(items)})
            return writer.finish(meta)


@hookimpl
def seqbench_add_datasets() -> list[type[PreparedDataset]]:
    return [TIMIT]
