"""Shared machinery of the real-data adapters: options, the prepared-folder life cycle, errors.

A real dataset has a *source* (the folder users downloaded, in its own layout) and a *prepared*
folder: the clips decoded once at the settings in use, memory-mapped for training. Prepared
folders live under ``root`` (option ``root``, default ``$SEQBENCH_DATA/<name>``), one per setting
(``v<version>-<settings>``), so changing the clip length or size never overwrites another.
``load_split`` on an unprepared dataset prepares it when the ``source`` option is given and
otherwise raises :class:`DataNotFoundError` with the exact ``seqbench data prepare`` command.
"""

from __future__ import annotations

import abc
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from seqbench.data import DatasetAdapter, SplitData
from seqbench.errors import ConfigError, DataNotFoundError
from seqbench.media import (Box, ClipCacheWriter, CorruptMediaError, LayoutError, SkipLog, center_square,
                            clip_indices, crop_resize, default_workers, folder_complete, item_rng, load_prepared,
                            media_length, ordered_map, read_media, verify_checksums)
from seqbench.types import DataSpec, LabelSpec
from seqbench.utils import cache_root, content_hash, data_root

log = logging.getLogger(__name__)


def as_bool(value: Any, option: str, dataset: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"dataset {dataset!r}: {option}={value!r} must be true or false")


def as_int(value: Any, option: str, dataset: str, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"dataset {dataset!r}: {option}={value!r} must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or (isinstance(value, float) and value != number):
        raise ConfigError(f"dataset {dataset!r}: {option}={value!r} must be an integer")
    if minimum is not None and number < minimum:
        raise ConfigError(f"dataset {dataset!r}: {option}={value!r} must be >= {minimum}")
    return number


def as_float(value: Any, option: str, dataset: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"dataset {dataset!r}: {option}={value!r} must be a number") from None
    if not lo <= number <= hi:
        raise ConfigError(f"dataset {dataset!r}: {option}={value!r} must be between {lo} and {hi}")
    return number


def as_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


@dataclass
class Item:
    """One source sequence: where it is, its split, its labels and its subject."""

    path: Path
    split: str
    key: str  # stable id: the path relative to the source folder
    labels: dict[str, int]
    identity: int
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scan:
    """What an adapter found in a source folder."""

    items: list[Item]
    labels: tuple[LabelSpec, ...]
    identities: list[str]
    notes: dict[str, Any] = field(default_factory=dict)


class CachedDataset(DatasetAdapter):
    """Options, the prepared folder (one per setting), and loading it: shared by real and generated data.

    Subclasses set ``name``, ``family``, ``defaults`` (their options and default values) and
    ``settings_keys`` (the options that change what is prepared) and say what happens when the
    folder is missing (:meth:`when_missing`).
    """

    family: ClassVar[str] = "generic"
    modality: ClassVar[Literal["video", "audio"]] = "video"
    layout_help: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: options that change what is prepared (the prepared folder's name hashes them)
    settings_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: Path | str | None = None, **options: Any):
        unknown = sorted(set(options) - set(self.defaults) - {"source"})
        if unknown:
            listing = ", ".join(f"{k}={v!r}" for k, v in sorted(self.defaults.items()))
            raise ConfigError(f"dataset {self.name!r} has no option(s) {', '.join(unknown)}; its options are "
                              f"root, source, {listing}")
        super().__init__(Path(root).expanduser() if root is not None else None)
        merged = dict(self.defaults)
        merged.update(options)
        source = merged.pop("source", None)
        self.source = Path(str(source)).expanduser() if source not in (None, "") else None
        self.options = self.validate(merged)
        self._meta: dict[str, Any] | None = None

    # -- options ---------------------------------------------------------------------------
    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise options (subclasses extend); common ones are checked here."""
        out = dict(options)
        n = self.name
        if "size" in out:
            out["size"] = as_int(out["size"], "size", n, 8)
        if "frames" in out:
            out["frames"] = as_int(out["frames"], "frames", n, 1)
        if "stride" in out:
            out["stride"] = as_int(out["stride"], "stride", n, 1)
        if "clips" in out:
            out["clips"] = as_int(out["clips"], "clips", n, 1)
        if "seed" in out:
            out["seed"] = as_int(out["seed"], "seed", n, 0)
        if "sampling" in out and out["sampling"] not in ("window", "uniform"):
            raise ConfigError(f"dataset {n!r}: sampling={out['sampling']!r}: use window (frames `stride` apart from "
                              f"a seeded start) or uniform (spread over the whole sequence)")
        if "strict" in out:
            out["strict"] = as_bool(out["strict"], "strict", n)
        if "symmetric" in out:
            out["symmetric"] = as_bool(out["symmetric"], "symmetric", n)
        if "workers" in out:
            out["workers"] = as_int(out["workers"], "workers", n, 0)
        if "test_fraction" in out:
            out["test_fraction"] = as_float(out["test_fraction"], "test_fraction", n, 0.0, 0.9)
        return out

    @property
    def settings(self) -> dict[str, Any]:
        return {k: self.options[k] for k in self.settings_keys}

    @property
    def data_dir(self) -> Path:
        return self.root if self.root is not None else data_root() / self.name

    @property
    def prepared_dir(self) -> Path:
        """This setting's prepared folder; it exists only once complete."""
        s = self.settings
        short = "-".join(f"{k[:2]}{v}" for k, v in s.items() if k in ("size", "frames", "stride"))
        return self.data_dir / "-".join(part for part in (f"v{self.version}", short, content_hash(s, 8)) if part)

    def meta(self) -> dict[str, Any]:
        """The prepared folder's metadata (see :meth:`when_missing` when there is none)."""
        if self._meta is None:
            directory = self.prepared_dir
            if not folder_complete(directory):
                self.when_missing()
            self._meta = json.loads((directory / "meta.json").read_text())
        return self._meta

    @abc.abstractmethod
    def when_missing(self) -> None:
        """Prepare this setting's folder, or raise :class:`DataNotFoundError` saying how to."""

    def reset(self) -> None:
        self._meta, self._spec, self._splits = None, None, {}

    @property
    def value_range(self) -> tuple[float, float]:
        """Range of uint8 data once batched: [0, 1], or [-1, 1] with ``symmetric=true``."""
        return (-1.0, 1.0) if self.options.get("symmetric") else (0.0, 1.0)

    def data_value_range(self, meta: dict[str, Any]) -> tuple[float, float]:
        """Float data carries its range in ``meta.json``; uint8 data is mapped by the options."""
        if meta.get("dtype") != "uint8" and meta.get("value_range"):
            return tuple(float(v) for v in meta["value_range"])  # type: ignore[return-value]
        return self.value_range

    def build_spec(self) -> DataSpec:
        meta = self.meta()
        labels = tuple(LabelSpec(d["name"], int(d["num_classes"]), d["kind"], tuple(d["class_names"]))
                       for d in meta["labels"])
        shape = meta["item_shape"]
        value_range = self.data_value_range(meta)
        fingerprint = content_hash({"dataset": self.name, "adapter_version": self.version, "value_range": value_range,
                                    "settings": meta["settings"], "data_sha256": meta["data_sha256"]})
        return DataSpec(name=self.name, modality=self.modality, frames=shape[0], channels=shape[1],
                        height=shape[2], width=shape[3], value_range=value_range,
                        labels=labels, identity_label=self.identity_label, family=self.family,
                        has_keypoints=bool(meta.get("keypoint_names")),
                        keypoint_names=tuple(meta.get("keypoint_names") or ()),
                        fingerprint=fingerprint, adapter_version=self.version,
                        extra={"prepared_dir": str(self.prepared_dir), "source": meta.get("source"),
                               "identities": len(meta.get("identities", [])), "split": meta.get("split_rule", ""),
                               **self.spec_extra(meta)})

    identity_label: ClassVar[str | None] = "identity"

    def spec_extra(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    def load_split(self, split: Literal["train", "test"]) -> SplitData:
        if split not in ("train", "test"):
            raise ConfigError(f"dataset {self.name!r} has splits 'train' and 'test', not {split!r}; validation "
                              f"is carved from train by the framework")
        meta = self.meta()
        label_names = [d["name"] for d in meta["labels"]]
        x, side = load_prepared(self.prepared_dir, split,
                                ["labels", "identity", "ids", "key", "keypoints"] + self.extra_arrays)
        table = side.get("labels", np.zeros((len(x), 0), dtype=np.int64)).reshape(len(x), -1)
        labels = {name: np.ascontiguousarray(table[:, i]) for i, name in enumerate(label_names)}
        extra = {name: side[name] for name in self.extra_arrays + ["key"] if name in side}
        return SplitData(x=x, labels=labels, identity=side.get("identity"), ids=side.get("ids"),
                         keypoints=side.get("keypoints"), value_range=self.data_value_range(meta), extra=extra)

    extra_arrays: ClassVar[list[str]] = []

    def info(self) -> dict[str, Any]:
        out = super().info()
        meta = self.meta()
        out.update({"prepared_dir": str(self.prepared_dir), "source": meta.get("source"),
                    "settings": meta.get("settings"), "split_rule": meta.get("split_rule"),
                    "skipped_files": len(meta.get("skipped", [])), "notes": _count_notes(meta.get("notes", [])),
                    "prepare_seconds": meta.get("prepare_seconds"), "sha256": meta.get("sha256")})
        return out

    def verify(self) -> list[str]:
        """Check the prepared files against their checksums; list the files skipped when preparing."""
        directory = self.prepared_dir
        self.meta()
        meta = json.loads(directory.joinpath("meta.json").read_text())
        problems = verify_checksums(directory)
        problems += [f"{s['path']}: skipped when prepared: {s['reason']}" for s in meta.get("skipped", [])]
        return problems


class PreparedDataset(CachedDataset):
    """Base of the adapters that decode a user's source folder into a prepared folder.

    Besides the :class:`CachedDataset` attributes, subclasses set ``layout_help`` (the layout in
    words, used in errors) and implement :meth:`scan` and :meth:`prepare_into`.
    """

    def prepare_command(self) -> str:
        parts = [f"seqbench data prepare {self.name} --source DIR"]
        if self.root is not None:
            parts.append(f"--data-option root={self.root}")
        for key in self.settings_keys:
            if self.options[key] != self.defaults.get(key):
                value = self.options[key]
                value = ",".join(value) if isinstance(value, (list, tuple)) else value
                parts.append(f"--data-option {key}={value}")
        return " ".join(parts)

    # -- life cycle ------------------------------------------------------------------------
    def _source_for(self, source: Path | str | None) -> Path:
        source = Path(source).expanduser() if source is not None else self.source
        if source is None:
            raise DataNotFoundError(f"dataset {self.name!r}: no source folder given. Run `{self.prepare_command()}` "
                                    f"with DIR the folder that holds {self.layout_help}")
        if not source.is_dir():
            raise DataNotFoundError(f"dataset {self.name!r}: source folder {source} does not exist (or is not a "
                                    f"folder). It should hold {self.layout_help}. Run `{self.prepare_command()}` "
                                    f"with the right DIR")
        return source

    def prepare(self, source: Path | str | None = None, **kwargs: Any) -> Path:
        """Decode the source into this setting's prepared folder (atomically) and return it."""
        if kwargs:
            raise ConfigError(f"dataset {self.name!r}: prepare() takes no options besides the source; got "
                              f"{sorted(kwargs)} (give them as --data-option KEY=VALUE)")
        source = self._source_for(source)
        scan = self.scan(source)
        if not scan.items:
            raise LayoutError(f"dataset {self.name!r}: found no usable items in {source}; expected "
                              f"{self.layout_help}")
        for split in ("train", "test"):
            if not any(item.split == split for item in scan.items):
                raise LayoutError(f"dataset {self.name!r}: no {split} items among the {len(scan.items)} found in {source} "
                                  f"(split rule: {scan.notes.get('split_rule', '?')}); expected {self.layout_help}"
                                  + ("; change test_fraction or seed" if "test_fraction" in self.options else ""))
        skips = SkipLog(strict=bool(self.options.get("strict", False)))
        target = self.prepared_dir
        meta = {"name": self.name, "adapter_version": self.version, "source": str(source.resolve()),
                "settings": self.settings, "labels": [_label_dict(l) for l in scan.labels],
                "identities": scan.identities, "scan": scan.notes}
        path = self.prepare_into(target, source, scan, skips, meta)
        self.reset()
        summary = skips.summary()
        if summary:
            log.warning("%s: %s", self.name, summary)
        return path

    def when_missing(self) -> None:
        if self.source is not None:
            self.prepare()
            return
        others = sorted(p.name for p in self.data_dir.glob("v*") if folder_complete(p)) if self.data_dir.is_dir() else []
        hint = f" Prepared settings present there: {', '.join(others)} (other options)." if others else ""
        raise DataNotFoundError(f"dataset {self.name!r} is not prepared: looked for {self.prepared_dir}.{hint} "
                                f"Run `{self.prepare_command()}` with DIR the folder that holds {self.layout_help}, "
                                f"or pass --data-option {self.name}.source=DIR to prepare on first use")

    def verify(self) -> list[str]:
        """Re-read every source item (when the source is known) and check the prepared files.

        A file skipped when prepared and found corrupt again on re-reading is one problem, not two.
        """
        problems: list[str] = []
        directory = self.prepared_dir
        source = self.source
        if folder_complete(directory):
            meta = json.loads(directory.joinpath("meta.json").read_text())
            problems += verify_checksums(directory)
            problems += [f"{s['path']}: skipped when prepared: {s['reason']}" for s in meta.get("skipped", [])]
            if source is None and meta.get("source"):
                source = Path(meta["source"])
        elif source is None:
            raise DataNotFoundError(f"dataset {self.name!r}: nothing to verify: not prepared ({directory} missing) and "
                                    f"no source given. Pass --data-option source=DIR to check a source folder, or "
                                    f"run `{self.prepare_command()}`")
        if source is not None:
            if not source.is_dir():
                problems.append(f"{source}: source folder no longer exists")
            else:
                scan = self.scan(source)
                problems += [f"{p}: {reason}" for p, reason in scan.notes.get("malformed", [])]
                workers = self.options.get("workers") or default_workers()
                for item, result in ordered_map(self.read_whole, scan.items, workers):
                    if isinstance(result, CorruptMediaError):
                        problems.append(f"{result.path}: {result.reason}")
                    elif isinstance(result, Exception):
                        raise result
        return one_problem_per_path(problems)

    def read_whole(self, item: Item) -> None:
        """Decode an item completely (verify): every frame or sample must be readable."""
        read_media(item.path)

    # -- to implement ------------------------------------------------------------------------
    @abc.abstractmethod
    def scan(self, source: Path) -> Scan:
        """Find the items of a source folder, or raise :class:`LayoutError` naming what is missing."""

    @abc.abstractmethod
    def prepare_into(self, target: Path, source: Path, scan: Scan, skips: SkipLog, meta: dict[str, Any]) -> Path:
        """Decode the scanned items into ``target`` (through :class:`ClipCacheWriter`)."""


def _label_dict(label: LabelSpec) -> dict[str, Any]:
    return {"name": label.name, "num_classes": label.num_classes, "kind": label.kind,
            "class_names": list(label.class_names)}


def _count_notes(notes: list[dict[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for note in notes:
        out[note["note"]] = out.get(note["note"], 0) + 1
    return out


class VideoClipDataset(PreparedDataset):
    """Base of the video adapters: sample clips from each item, crop, resize, cache as uint8.

    Options every video adapter has: ``size`` (output pixels), ``frames`` (clip length),
    ``stride`` and ``sampling`` (window / uniform, see :func:`seqbench.media.clip_indices`),
    ``clips`` (clips per source item, drawn with ``seed``), ``strict`` (unreadable files are
    fatal instead of skipped and counted), ``symmetric`` (values in [-1, 1] instead of [0, 1]),
    ``workers`` (decoding threads, 0 = automatic).
    """

    settings_keys = ("size", "frames", "stride", "sampling", "clips", "seed")
    common_defaults: ClassVar[dict[str, Any]] = {"size": 64, "frames": 10, "stride": 1, "sampling": "window",
                                                 "clips": 1, "seed": 0, "strict": False, "symmetric": False,
                                                 "workers": 0}

    def crop_box(self, item: Item, frames: np.ndarray, skips: SkipLog) -> Box | None:
        """The crop applied before resizing (default: the central square)."""
        return center_square(*frames.shape[1:3])

    def load_item(self, item: Item, skips: SkipLog) -> np.ndarray:
        """Clips ``[clips, frames, 3, size, size]`` uint8 of one item."""
        o = self.options
        n = media_length(item.path)
        if n < 1:
            raise CorruptMediaError(item.path, "no frames")
        idx, padded = clip_indices(n, o["frames"], stride=o["stride"], mode=o["sampling"], clips=o["clips"],
                                   rng=item_rng(o["seed"], item.key) if o["sampling"] == "window" else None)
        if padded:
            skips.note(item.path, f"shorter than {o['frames']} frames: last frame repeated")
        unique, inverse = np.unique(idx, return_inverse=True)
        frames = read_media(item.path, unique)
        out = np.empty((o["clips"], o["frames"], 3, o["size"], o["size"]), dtype=np.uint8)
        for c in range(o["clips"]):
            clip = frames[inverse.reshape(idx.shape)[c]]
            out[c] = crop_resize(clip, o["size"], self.crop_box(item, clip, skips))
        return out

    def prepare_into(self, target: Path, source: Path, scan: Scan, skips: SkipLog, meta: dict[str, Any]) -> Path:
        o = self.options
        rows = {split: sum(o["clips"] for item in scan.items if item.split == split) for split in ("train", "test")}
        label_names = [l.name for l in scan.labels]
        workers = o.get("workers") or default_workers()
        writer = ClipCacheWriter(target, rows, (o["frames"], 3, o["size"], o["size"]), np.uint8)
        with writer:
            for number, (item, result) in enumerate(ordered_map(lambda it: self.load_item(it, skips), scan.items,
                                                                workers)):
                if isinstance(result, CorruptMediaError):
                    skips.corrupt(result)
                    continue
                if isinstance(result, Exception):
                    raise result
                k = len(result)
                writer.add(item.split, result,
                           labels=np.array([[item.labels[name] for name in label_names]] * k, dtype=np.int64),
                           identity=np.int64(item.identity), ids=number * o["clips"] + np.arange(k, dtype=np.int64),
                           key=np.array([item.key] * k))
            for split, count in writer.count.items():
                if count == 0:
                    raise LayoutError(f"dataset {self.name!r}: every {split} item in {source} was unreadable "
                                      f"({len(skips.skipped)} skipped; first: "
                                      f"{skips.skipped[0]['path'] if skips.skipped else '-'})")
            meta.update({"skipped": skips.skipped, "notes": skips.notes,
                         "split_rule": scan.notes.get("split_rule", "")})
            return writer.finish(meta)


class GeneratedDataset(CachedDataset):
    """Base of the embedded datasets: generated by seqbench on first use, cached, deterministic.

    The cache lives in ``$SEQBENCH_CACHE/datasets/<name>/v<version>-<settings>`` (or under the
    ``root`` option); subclasses implement :meth:`generate`, which writes it through a
    :class:`ClipCacheWriter` (atomic: a half-generated cache is never seen).
    """

    embedded = True

    def __init__(self, root: Path | str | None = None, **options: Any):
        if "source" in options:
            raise ConfigError(f"dataset {self.name!r} is generated by seqbench and reads no files; drop the source "
                              f"option (its options: {', '.join(f'{k}={v!r}' for k, v in self.defaults.items())})")
        super().__init__(root, **options)

    @property
    def data_dir(self) -> Path:
        return self.root if self.root is not None else cache_root() / "datasets" / self.name

    def prepare(self, source: Path | str | None = None, **kwargs: Any) -> Path:
        """Generate the cache if missing and return its folder."""
        if source is not None:
            raise ConfigError(f"dataset {self.name!r} is generated by seqbench and reads no files; run "
                              f"`seqbench data prepare {self.name}` without --source")
        if kwargs:
            raise ConfigError(f"dataset {self.name!r}: prepare() takes no options, got {sorted(kwargs)}")
        target = self.prepared_dir
        if not folder_complete(target):
            log.info("generating %s %s into %s", self.name, self.settings, target)
            self.generate(target)
            self.reset()
        return target

    def when_missing(self) -> None:
        self.prepare()

    def base_meta(self, labels: tuple[LabelSpec, ...], identities: list[str]) -> dict[str, Any]:
        return {"name": self.name, "adapter_version": self.version, "settings": self.settings, "source": None,
                "labels": [_label_dict(label) for label in labels], "identities": identities}

    @abc.abstractmethod
    def generate(self, target: Path) -> Path:
        """Write the whole dataset into ``target`` (through :class:`ClipCacheWriter`) and return it."""


def one_problem_per_path(problems: list[str]) -> list[str]:
    """``PATH: reason`` lines merged per file (a relative and an absolute spelling of one path are one file)."""
    merged: list[tuple[str, list[str]]] = []
    for line in problems:
        path, _, reason = line.partition(": ")
        for known, reasons in merged:
            if known.endswith(path) or path.endswith(known):
                if reason not in reasons:
                    reasons.append(reason)
                break
        else:
            merged.append((path, [reason]))
    return [f"{path}: {'; '.join(reasons)}" for path, reasons in merged]
