"""Evaluation backends: the models metrics use to look at generated data.

A backend turns frames into landmarks/keypoints (``kind = "landmarks"`` / ``"pose"``),
identity embeddings (``"identity"``) or speaker embeddings (``"speaker"``). Every result row
names the backend that produced it; backends of different names never share a leaderboard column.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar


class Backend(abc.ABC):
    """Base class of evaluation backends.

    ``kind`` is what it computes, ``families`` the dataset families it applies to (``()`` = any),
    ``extra`` the pip extra that installs it. :meth:`unavailable_reason` returns why it cannot
    run here (missing package or weights, with the fix) or ``None``.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    families: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    def __init__(self, **options: Any):
        self.options = options

    def unavailable_reason(self) -> str | None:
        return None

    @abc.abstractmethod
    def __call__(self, frames: Any) -> Any:
        """Run the backend on a batch of frames (layout documented by each kind)."""
