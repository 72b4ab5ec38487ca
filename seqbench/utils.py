"""Small helpers: stable hashing, atomic writes, provenance (git sha, versions), device choice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from collections.abc import Callable
from typing import Any, Iterator


def stable_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the input of every content hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    return repr(obj)


def content_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(stable_json(obj).encode()).hexdigest()[:length]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: Path) -> None:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The git commit of the seqbench source tree (``unknown`` outside a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            sha = out.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "seqbench", "methods", "metrics", "datasets"], cwd=here,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("seqbench", "torch", "numpy", "mlflow", "pluggy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def resolve_device(requested: str | None) -> "torch.device":  # noqa: F821
    import torch

    from .errors import ConfigError

    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ConfigError(f"--device {requested!r} is not a valid torch device ({exc}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested} was requested but CUDA is not available on this machine; use --device cpu")
    return device


def cache_root() -> Path:
    """Where trained models, judges and generated datasets are cached (``SEQBENCH_CACHE``)."""
    env = os.environ.get("SEQBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seqbench"


def writable_dir(path: Path, *, what: str, fix: str) -> Path:
    """``path``, created and probed for writing; otherwise a one-line usage error saying what and how to fix it."""
    from .errors import ConfigError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what} {path} is not writable ({exc.strerror or exc}); {fix}") from None
    return path


def quarantine(path: Path, error: BaseException) -> Path:
    """Move an unreadable cache file aside (``NAME.corrupt-<time>``), warning with both paths; returns the new path.

    The caller rebuilds the entry; the bad file is kept for a post-mortem instead of being deleted.
    """
    import time

    from .log import logger

    path = Path(path)
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process moved or rebuilt it first
        return aside
    logger.warning(f"cached file {path} is unreadable ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                   f"moved aside to {aside.name} and rebuilding it")
    return aside


def zip_readable(path: Path) -> bool:
    """Whether a ``torch.save`` file's zip directory can be read (catches truncated files cheaply)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
        return True
    except (OSError, zipfile.BadZipFile):
        return False


def check_cache_dir() -> Path:
    """The cache directory (``SEQBENCH_CACHE``), checked before a run writes models into it."""
    source = "SEQBENCH_CACHE" if os.environ.get("SEQBENCH_CACHE") else "default, SEQBENCH_CACHE unset"
    return writable_dir(cache_root(), what=f"cache directory ({source})",
                        fix="set SEQBENCH_CACHE to a writable directory")


def data_root() -> Path:
    """Where prepared real datasets live (``SEQBENCH_DATA``)."""
    env = os.environ.get("SEQBENCH_DATA")
    return Path(env).expanduser() if env else cache_root() / "data"


@contextlib.contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive advisory lock, so two processes never train the same cached model at once.

    ``on_wait()`` is called once when another process holds the lock, before blocking on it
    (so a waiting run can say so instead of sitting silent).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX: atomic writes still keep the cache whole
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


# ------------------------------------------------------------- evaluation models (judges, backends)

def to_unit_range(x: "torch.Tensor", value_range: tuple[float, float]) -> "torch.Tensor":  # noqa: F821
    """Map ``x`` from the dataset's value range to [0, 1], the input range of every evaluation model."""
    lo, hi = map(float, value_range)
    if (lo, hi) == (0.0, 1.0):
        return x
    return (x - lo) / (hi - lo)


def predict_in_batches(fn: Callable[[Any], Any], clips: Callable[[Any], Any], n: int, batch_size: int,
                       device: "torch.device") -> Any:  # noqa: F821
    """Apply ``fn`` to ``clips(index)`` batch by batch and concatenate (tensors or dicts of tensors) on the CPU."""
    import numpy as np
    import torch

    parts: list[Any] = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out = fn(clips(np.arange(start, min(n, start + batch_size))).to(device))
            parts.append({k: v.float().cpu() for k, v in out.items()} if isinstance(out, dict) else out.float().cpu())
    if not parts:
        raise ValueError("predict_in_batches needs at least one item")
    if isinstance(parts[0], dict):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)
