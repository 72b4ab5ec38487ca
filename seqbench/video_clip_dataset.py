"""The base class of video dataset adapters: sample clips from every source item, crop, resize, cache as uint8.

Public, like :mod:`seqbench.dataset_lifecycle` below it: a third-party video adapter implements
``scan`` (and, for a crop other than the central square, ``crop_box``) and inherits decoding,
clip sampling, the prepared folder and verification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .dataset_lifecycle import Item, PreparedDataset, Scan
from .media import (Box, ClipCacheWriter, CorruptMediaError, LayoutError, SkipLog, center_square, clip_indices,
                    crop_resize, default_workers, item_rng, media_length, ordered_map, read_media)


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
