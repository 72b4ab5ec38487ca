"""The decoded-clip cache: a prepared folder of ``.npy`` arrays that training memory-maps.

Adapters decode each item once, at the clip length, stride and size of the settings in use, into
uint8 (video) or float32 (audio) arrays written by :class:`ClipCacheWriter` into a temporary folder
that replaces the prepared folder only when complete (:mod:`seqbench.prepared_folder`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..prepared_folder import META_FILE, file_sha256, install_folder, new_temporary_folder
from .errors import CorruptMediaError

log = logging.getLogger(__name__)


@dataclass
class SkipLog:
    """Items that could not be used, by path, with the reason (written to ``meta.json``)."""

    strict: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)

    def corrupt(self, error: CorruptMediaError) -> None:
        """Record an unreadable file, or re-raise it when strict."""
        if self.strict:
            raise CorruptMediaError(error.path, error.reason + " (strict=true makes this fatal; fix or remove the "
                                                               "file, or prepare without strict to skip it)")
        log.warning("skipping unreadable file %s: %s", error.path, error.reason)
        self.skipped.append({"path": error.path, "reason": error.reason})

    def note(self, path: Path | str, what: str) -> None:
        """Record a readable item that needed a fallback (padded short clip, no face found...)."""
        self.notes.append({"path": str(path), "note": what})

    def summary(self) -> str:
        parts = []
        if self.skipped:
            parts.append(f"{len(self.skipped)} unreadable file(s) skipped (listed in meta.json 'skipped'; "
                         f"first: {self.skipped[0]['path']}: {self.skipped[0]['reason']})")
        if self.notes:
            kinds: dict[str, int] = {}
            for n in self.notes:
                kinds[n["note"]] = kinds.get(n["note"], 0) + 1
            parts.append("; ".join(f"{count} item(s): {what}" for what, count in sorted(kinds.items())))
        return "; ".join(parts)


class ClipCacheWriter:
    """Write one prepared dataset folder: per split ``x_{split}.npy`` plus integer side arrays.

    Rows are appended in order; the row count per split is an upper bound given up front (items
    that turn out unreadable leave it short, and :meth:`finish` compacts). Everything goes to a
    temporary folder next to ``target`` that replaces ``target`` only in :meth:`finish`.
    """

    def __init__(self, target: Path, rows: dict[str, int], item_shape: tuple[int, ...], dtype: Any = np.uint8):
        self.target = Path(target)
        self.tmp = new_temporary_folder(self.target)
        self.item_shape, self.dtype = tuple(item_shape), np.dtype(dtype)
        self.capacity = dict(rows)
        self.count = {split: 0 for split in rows}
        self.x = {split: np.lib.format.open_memmap(self.tmp / f"x_{split}.npy", mode="w+", dtype=self.dtype,
                                                   shape=(max(1, n),) + self.item_shape)
                  for split, n in rows.items()}
        self.side: dict[str, dict[str, list[np.ndarray]]] = {split: {} for split in rows}
        self._fds: dict[str, int] = {}
        self.started = time.perf_counter()

    def __enter__(self) -> "ClipCacheWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()

    def abort(self) -> None:
        """Drop the temporary folder (the previous prepared folder, if any, is untouched)."""
        self._close_fds()
        self.x = {}
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, split: str, clips: np.ndarray, **side: Any) -> None:
        """Append ``clips [k, *item_shape]`` with per-clip side values (scalars are repeated)."""
        k = len(clips)
        start = self.count[split]
        if start + k > self.capacity[split]:
            raise RuntimeError(f"{split}: more clips than the {self.capacity[split]} announced")
        self.x[split][start:start + k] = clips
        self.count[split] = start + k
        for name, value in side.items():
            arr = np.asarray(value)
            self.side[split].setdefault(name, []).append(np.broadcast_to(arr, (k,) + arr.shape[1:]) if arr.ndim
                                                         else np.full(k, arr))

    def put(self, split: str, rows: np.ndarray, clips: np.ndarray) -> None:
        """Write clips at arbitrary row positions (for adapters that produce rows out of order).

        Uses ``pwrite`` on the file rather than the memory map: scattered writes through a map
        cost a page fault per 4 KiB page. Call :meth:`mark_written` with the final row count.
        """
        array = self.x[split]
        offset = array.offset if hasattr(array, "offset") else 0
        row_bytes = int(np.prod(self.item_shape)) * self.dtype.itemsize
        fd = self._fds.get(split)
        if fd is None:
            fd = self._fds[split] = os.open(self.tmp / f"x_{split}.npy", os.O_WRONLY)
        block = np.ascontiguousarray(clips, dtype=self.dtype)
        for row, clip in zip(np.asarray(rows).tolist(), block):
            if not 0 <= row < self.capacity[split]:
                raise IndexError(f"{split}: row {row} outside the {self.capacity[split]} announced")
            os.pwrite(fd, clip.tobytes(), offset + row * row_bytes)

    def mark_written(self, split: str, count: int) -> None:
        self.count[split] = count

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def rows(self, split: str) -> np.ndarray:
        """The written rows of a split (a writable memmap view, e.g. to normalise in place)."""
        return self.x[split][:self.count[split]]

    def finish(self, meta: dict[str, Any]) -> Path:
        """Compact, write side arrays and ``meta.json`` (with file checksums), move into place."""
        files: list[str] = []
        checksums: dict[str, str] = {}
        self._close_fds()
        for split, array in list(self.x.items()):
            n = self.count[split]
            array.flush()
            path = self.tmp / f"x_{split}.npy"
            if n != array.shape[0]:  # fewer rows than announced: copy into an array of the right size
                compact = np.lib.format.open_memmap(self.tmp / f".x_{split}.compact.npy", mode="w+",
                                                    dtype=self.dtype, shape=(n,) + self.item_shape)
                for lo in range(0, n, 512):
                    compact[lo:lo + 512] = array[lo:min(n, lo + 512)]
                compact.flush()
                del compact, array
                self.x[split] = None  # type: ignore[assignment]
                os.replace(self.tmp / f".x_{split}.compact.npy", path)
            else:
                del array
                self.x[split] = None  # type: ignore[assignment]
            files.append(path.name)
            for name, parts in self.side[split].items():
                values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
                side_path = self.tmp / f"{name}_{split}.npy"
                np.save(side_path, values)
                files.append(side_path.name)
        for name in files:
            checksums[name] = file_sha256(self.tmp / name)
        data_sha = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(checksums.items())).encode()).hexdigest()
        meta = dict(meta)
        meta.update({"files": sorted(files), "sha256": checksums, "data_sha256": data_sha,
                     "clips": dict(self.count), "item_shape": list(self.item_shape), "dtype": self.dtype.name,
                     "prepare_seconds": round(time.perf_counter() - self.started, 3)})
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        install_folder(self.tmp, self.target)
        self.x = {}
        return self.target


def load_prepared(directory: Path, split: str, side: Iterable[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Memory-map ``x_{split}.npy`` and load the named side arrays of a prepared folder."""
    x = np.load(directory / f"x_{split}.npy", mmap_mode="r")
    out = {}
    for name in side:
        path = directory / f"{name}_{split}.npy"
        if path.is_file():
            out[name] = np.load(path, allow_pickle=False)
    return x, out
