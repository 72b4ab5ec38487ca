"""The prepared folder of a dataset: built aside, marked complete by its ``meta.json``, installed atomically.

Decoding or generating a dataset is slow, so every adapter does it once into a *prepared folder*
that training memory-maps. The folder is built in a temporary folder beside its target and moved
into place only when complete, so an interrupted or failed prepare never destroys the previous
one. Its ``meta.json`` lists the folder's files (the completion marker: the folder counts only
when the meta and every file it lists exist) and, for verification, their sha256 checksums.

Public so that third-party dataset plugins build and check their folders exactly as the built-in
adapters do (see :mod:`seqbench.dataset_lifecycle` for the adapter base classes on top of it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

META_FILE = "meta.json"
#: temporary folders older than this were left by killed runs (a live build touches its folder sooner)
STALE_TEMPORARY_SECONDS = 6 * 3600


def read_meta(directory: Path) -> dict[str, Any]:
    """The ``meta.json`` of a prepared folder."""
    return json.loads((Path(directory) / META_FILE).read_text())


def folder_complete(directory: Path) -> bool:
    """True when ``meta.json`` exists and every file it lists is present."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    files = meta.get("files") if isinstance(meta, dict) else None
    return bool(files) and all((directory / name).is_file() for name in files)


def new_temporary_folder(target: Path) -> Path:
    """An empty folder beside ``target`` to build into (stale ones of killed runs are removed)."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    now = time.time()
    for path in parent.glob(f"{prefix}*"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def install_folder(tmp: Path, target: Path) -> None:
    """Move a complete folder into place; a previous version is removed only after the move."""
    trash = None
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent)) / "old"
        os.replace(target, trash)
    try:
        os.rename(tmp, target)
    except OSError:
        if trash is not None:  # put the previous version back
            os.replace(trash, target)
        raise
    if trash is not None:
        shutil.rmtree(trash.parent, ignore_errors=True)


@contextmanager
def building_folder(target: Path, *, keep_complete: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block succeeds, install it as ``target``.

    With ``keep_complete``, a complete ``target`` that another process finished first (the same
    deterministic data) wins and ours is dropped; otherwise ``target`` is replaced. The temporary
    folder never outlives the block, and a failed build leaves the previous ``target`` untouched.
    """
    target = Path(target)
    tmp = new_temporary_folder(target)
    try:
        yield tmp
        if not (keep_complete and folder_complete(target)):
            try:
                install_folder(tmp, target)
            except OSError:
                if not (keep_complete and folder_complete(target)):  # not a concurrent winner: a real failure
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def files_fingerprint(paths: Iterable[Path], root: Path) -> str:
    """Hash of the relative names and sizes of source files (cheap; detects added/removed/changed files)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        try:
            size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())
        except OSError:
            size = -1
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\n".encode())
    return digest.hexdigest()[:16]


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(directory: Path) -> list[str]:
    """Problems with a prepared folder's files (missing, or content not matching ``meta.json``)."""
    meta = read_meta(directory)
    problems = []
    for name, expected in sorted(meta.get("sha256", {}).items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing (prepare again)")
        elif file_sha256(path) != expected:
            problems.append(f"{path}: content changed since it was prepared (sha256 mismatch; prepare again)")
    return problems


def verify_folder(directory: Path) -> list[str]:
    """:func:`verify_checksums` plus the source files that were skipped when the folder was prepared."""
    skipped = read_meta(directory).get("skipped", [])
    return verify_checksums(directory) + [f"{s['path']}: skipped when prepared: {s['reason']}" for s in skipped]


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
