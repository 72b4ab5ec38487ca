"""What goes wrong reading a dataset's files: unreadable media, a wrong layout, a missing decoder package."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataNotFoundError, SeqbenchError


class CorruptMediaError(SeqbenchError):
    """A file that exists but cannot be decoded (truncated, empty, not the format its name says)."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class LayoutError(DataNotFoundError):
    """A source folder that does not hold the layout an adapter reads (names what was expected)."""


def require(module: str, package: str | None = None) -> Any:
    """Import an optional dependency, or say exactly how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = package or module
        raise ConfigError(f"this dataset needs the Python package {package!r} ({exc}). Install the data extras: "
                          f"pip install 'seqbench[data]'  (or: pip install {package})") from None
