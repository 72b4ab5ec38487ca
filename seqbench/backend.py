"""The evaluation-backend contract: the models metrics use to look at generated data.

A backend turns frames into keypoints (``kind = "landmarks"`` for faces, ``"pose"`` for bodies,
``"keypoints"`` for learned dataset-specific regressors) or identity embeddings
(``"identity"``). Every result row names the backend that produced it; backends of different
names never share a leaderboard column (the leaderboard puts the backend in the column name).

The contract lives here, in the core, apart from :mod:`seqbench.backends` (the folder scanned for
the built-in backend plugins), so a third-party backend imports the contract without the built-ins.
Each built-in backend lives in its own module of that package and registers through the plugin hook
``seqbench_add_backends``, exactly as a third-party backend would. Heavy libraries (dlib, cv2,
mediapipe, face_alignment, deepface, mmpose, rtmlib) are imported inside methods, so listing
backends costs nothing and a missing library shows up as :meth:`Backend.unavailable_reason`
(with the install command), never as an import error.

The calling convention (one for every backend, whatever the library wants inside):

* input: frames ``[N, C, H, W]`` float in [0, 1] (RGB, or one grey channel);
* keypoint kinds return :class:`Keypoints`: ``points [N, K, 2]`` pixel coordinates ``(x, y)`` of
  the input frames and ``valid [N, K]`` (a failed detection marks the whole frame invalid);
* the identity kind returns :class:`Embeddings`: ``vectors [N, E]`` and ``valid [N]``.
"""

from __future__ import annotations

import abc
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from .metric import EvalContext, EvalData

__all__ = ["Backend", "Embeddings", "Keypoints", "KEYPOINT_KINDS", "frames_to_uint8", "missing_module_reason"]

KEYPOINT_KINDS: tuple[str, ...] = ("landmarks", "pose", "keypoints")


@dataclass
class Keypoints:
    """Keypoints ``[N, K, 2]`` (x, y in input pixels) and their validity ``[N, K]``."""

    points: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        self.valid = np.asarray(self.valid, dtype=bool)
        if self.points.ndim != 3 or self.points.shape[2] != 2 or self.valid.shape != self.points.shape[:2]:
            raise ValueError(f"Keypoints need points [N, K, 2] and valid [N, K], got {self.points.shape} "
                             f"and {self.valid.shape}")


@dataclass
class Embeddings:
    """Identity embeddings ``[N, E]`` and their validity ``[N]`` (False where no face/body was found)."""

    vectors: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float64)
        self.valid = np.asarray(self.valid, dtype=bool)
        if self.vectors.ndim != 2 or self.valid.shape != self.vectors.shape[:1]:
            raise ValueError(f"Embeddings need vectors [N, E] and valid [N], got {self.vectors.shape} "
                             f"and {self.valid.shape}")


class Backend(abc.ABC):
    """Base class of evaluation backends.

    ``kind`` is what it computes, ``families`` the dataset families it applies to (``()`` = any),
    ``extra`` the pip extra that installs it, ``install`` the command that does. A backend that
    needs preparation on the dataset (a learned model, say) overrides :meth:`setup`;
    :meth:`unavailable_reason` returns why it cannot run here (missing package or weights, with
    the fix) or ``None``. ``comparable_to_papers`` says whether its numbers are on the scale of
    the published tables (same model as the reference code).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    families: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    install: ClassVar[str] = ""
    description: ClassVar[str] = ""
    comparable_to_papers: ClassVar[bool] = False

    #: A dataclass whose fields are further options (passed on by the constructor's ``**options``).
    options_dataclass: ClassVar[type | None] = None

    def __init__(self, **options: Any):
        self.options = options

    @classmethod
    def declared_options(cls) -> dict[str, Any] | None:
        """``{option: type}`` this backend takes (``--metric-option akd.backend_KEY=VALUE``), or ``None``
        when it declares none (a constructor of ``**options`` alone: any key goes, as before).

        The declaration is the named parameters of its constructors plus :attr:`options_dataclass`.
        """
        from .config import declared_options

        declared: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, Backend) and "__init__" in vars(klass):
                declared.update(declared_options(vars(klass)["__init__"]))
        if cls.options_dataclass is not None:
            declared.update(declared_options(cls.options_dataclass))
        return declared or None

    def unavailable_reason(self) -> str | None:
        return None

    def setup(self, data: "EvalData", ctx: "EvalContext") -> None:
        """Prepare for ``data`` (load or train models); called once before the first ``__call__``."""

    @property
    def label(self) -> str:
        """The name written in result rows (subclasses add what identifies their weights)."""
        return self.name

    @abc.abstractmethod
    def __call__(self, frames: "torch.Tensor") -> Any:
        """Run the backend on frames ``[N, C, H, W]`` in [0, 1] (see the module docstring)."""


def missing_module_reason(modules: tuple[str, ...], install: str) -> str | None:
    """``"<module> is not installed: <install>"`` for the first missing module, else ``None``."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{module} is not installed; install it with: {install}"
    return None


def frames_to_uint8(frames: "torch.Tensor | np.ndarray") -> np.ndarray:
    """``[N, C, H, W]`` floats in [0, 1] -> ``[N, H, W, 3]`` uint8 RGB (grey is repeated), C-contiguous."""
    x = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"frames must be [N, 1|3, H, W], got shape {x.shape}")
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1))
