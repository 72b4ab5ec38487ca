"""``mug``: MUG facial expressions (Aifanti et al., 2010) as preprocessed for DiffSDA / S3VAE.

Reads the DiffSDA layout ``mug_pre2_{train,test}/<label>/<clip>/NN.jpg`` (label folders ``0``..``5``
or the expression names; clips named like ``user014_take000_01``), and the public preprocessing
variant without split folders, ``<label>/user{:03d}_sess{}_take{:03d}_{:02d}/{01..16}.jpg``
(face crops, every 2nd frame). Labels: ``expression`` (dynamic; anger 0, disgust 1, happiness 2,
fear 3, sadness 4, surprise 5) and ``subject`` (static: the first number in the clip name, indexed
among the sorted subject numbers; 52 subjects in the full data). DiffSDA's split is by clip, not by
subject; the variant without split folders is split by clip with a seeded hash (``test_fraction``).

Clips: 15 frames, 2 apart, from a seeded random start (the stride shrinks for shorter folders,
e.g. the 16-frame variant), resized to 64 px. DiffSDA feeds [-1, 1]: set ``symmetric=true``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from seqbench.dataset_lifecycle import Item, Scan
from seqbench.hookspecs import hookimpl
from seqbench.media import IMAGE_SUFFIXES, LayoutError, stable_bucket
from seqbench.types import LabelSpec
from seqbench.video_clip_dataset import VideoClipDataset


EXPRESSIONS: tuple[str, ...] = ("anger", "disgust", "happiness", "fear", "sadness", "surprise")
_ALIASES = {"angry": 0, "anger": 0, "disgust": 1, "disgusted": 1, "happy": 2, "happiness": 2, "fear": 3,
            "fearful": 3, "sad": 4, "sadness": 4, "surprise": 5, "surprised": 5}
SPLIT_DIR = re.compile(r"(^|[_-])(train|test)$", re.IGNORECASE)


def expression_index(folder: str) -> int | None:
    """Label of a label folder: ``0``..``5`` or an expression name."""
    if folder.isdigit():
        value = int(folder)
        return value if 0 <= value < len(EXPRESSIONS) else None
    return _ALIASES.get(folder.lower())


class MUG(VideoClipDataset):
    """MUG facial expressions: subject (static) x expression (dynamic)."""

    name = "mug"
    version = "1"
    family = "faces"
    description = "MUG facial expressions (DiffSDA layout): 6 expressions (dynamic) x 52 subjects (static), 15 frames"
    layout_help = ("mug_pre2_train/ and mug_pre2_test/ with <label 0-5>/<clip e.g. user014_take000_01>/NN.jpg, "
                   "or <label>/<clip>/NN.jpg without split folders")
    defaults: ClassVar[dict[str, Any]] = {**VideoClipDataset.common_defaults, "frames": 15, "stride": 2,
                                          "test_fraction": 0.2}
    settings_keys = VideoClipDataset.settings_keys + ("test_fraction",)
    identity_label = "subject"

    def _clip_folders(self, label_root: Path) -> list[tuple[Path, int]]:
        out = []
        for label_dir in sorted(p for p in label_root.iterdir() if p.is_dir()):
            label = expression_index(label_dir.name)
            if label is None:
                continue
            out += [(clip, label) for clip in sorted(p for p in label_dir.iterdir() if p.is_dir())]
        return out

    def scan(self, source: Path) -> Scan:
        split_dirs = {m.group(2).lower(): d for d in sorted(source.iterdir())
                      if d.is_dir() and (m := SPLIT_DIR.search(d.name))}
        clips: list[tuple[Path, int, str]] = []
        if "train" in split_dirs or "test" in split_dirs:
            for split in ("train", "test"):
                if split not in split_dirs:
                    raise LayoutError(f"dataset {self.name!r}: {source} has {split_dirs[next(iter(split_dirs))].name} "
                                      f"but no matching *_{split} folder (expected mug_pre2_train/ and mug_pre2_test/)")
                clips += [(clip, label, split) for clip, label in self._clip_folders(split_dirs[split])]
            rule = "the source's mug_pre2_train / mug_pre2_test folders (by clip, as DiffSDA)"
        else:
            fraction = self.options["test_fraction"]
            clips = [(clip, label, "test" if stable_bucket(clip.name, self.options["seed"]) < fraction else "train")
                     for clip, label in self._clip_folders(source)]
            rule = f"by clip: seeded hash of the clip name, test fraction {fraction}"
        if not clips:
            labels = [p.name for p in source.iterdir() if p.is_dir()][:6]
            raise LayoutError(f"dataset {self.name!r}: no clip folders under {source}; expected {self.layout_help}. "
                              f"Label folders must be named 0..5 or {', '.join(EXPRESSIONS)}"
                              + (f"; found folders {', '.join(labels)}" if labels else ""))
        malformed, usable = [], []
        for clip, label, split in clips:
            number = re.search(r"\d+", clip.name)
            has_images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in clip.iterdir())
            if number is None or not has_images:
                malformed.append((str(clip), "no subject number in the clip name" if number is None else
                                  "clip folder holds no images; ignored"))
                continue
            usable.append((clip, label, split, int(number.group())))
        subjects = sorted({s for *_, s in usable})
        index = {s: i for i, s in enumerate(subjects)}
        items = [Item(path=clip, split=split, key=clip.relative_to(source).as_posix(),
                      labels={"subject": index[s], "expression": label}, identity=index[s])
                 for clip, label, split, s in usable]
        names = [f"user{s:03d}" for s in subjects]
        labels = (LabelSpec("subject", len(subjects), "static", tuple(names)),
                  LabelSpec("expression", len(EXPRESSIONS), "dynamic", EXPRESSIONS))
        return Scan(items, labels, names, {"malformed": malformed, "split_rule": rule})


@hookimpl
def seqbench_add_datasets() -> list[type[VideoClipDataset]]:
    return [MUG]
