"""Where a frame network meets a dataset: output activation, value-range mapping, frame-size support.

The DCGAN/MLP frame decoders end in a fixed activation (Sigmoid -> [0, 1], Tanh -> [-1, 1], or
linear), while datasets declare their own ``value_range``. The VAE-style methods (DBSE, SPYL,
C-DSVAE) all resolve the activation the same way and map data linearly into the activation's
range and back, so the rule lives here once:

* ``auto`` picks Sigmoid, except for audio whose range is not [0, 1]: such features (log spectra,
  standardised bins) are unbounded in practice, so the decoder is linear and values pass as they are.
* a bounded activation needs a finite value range (else a ConfigError naming the fix).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ..types import DataSpec
from .frames import DCGAN_SIZES, OutputActivation

__all__ = ["DECODER_OUTPUTS", "dcgan_unsupported", "from_model_space", "model_range", "resolve_output",
           "to_model_space"]

#: The choices of a method's ``decoder_output`` setting.
DECODER_OUTPUTS: tuple[str, ...] = ("auto", "sigmoid", "tanh", "linear")


def resolve_output(choice: str, spec: DataSpec, *, owner: str) -> OutputActivation:
    """The decoder's output activation for ``spec``: Sigmoid unless the data is audio outside [0, 1].

    ``owner`` is the method name, used in the error (``dbse.decoder_output=...``).
    """
    if choice not in DECODER_OUTPUTS:
        raise ConfigError(f"{owner}.decoder_output={choice!r}: choose one of {', '.join(DECODER_OUTPUTS)}")
    if choice == "auto":
        unit = tuple(map(float, spec.value_range)) == (0.0, 1.0)
        choice = "linear" if spec.modality == "audio" and not unit else "sigmoid"
    if choice != "linear" and not all(math.isfinite(v) for v in spec.value_range):
        raise ConfigError(f"{owner}.decoder_output={choice!r} needs a finite value range; dataset {spec.name!r} "
                          f"has {spec.value_range}. Use decoder_output=linear.")
    return choice  # type: ignore[return-value]


def model_range(output: str) -> tuple[float, float] | None:
    """The range an output activation produces; ``None`` for linear (data used as it is)."""
    return {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}.get(output)


def to_model_space(x: torch.Tensor, value_range: tuple[float, float], output: str) -> torch.Tensor:
    """Map data from ``value_range`` linearly onto the range ``output`` produces (identity for linear)."""
    target = model_range(output)
    lo, hi = map(float, value_range)
    if target is None or (lo, hi) == target:
        return x
    return (x - lo) / (hi - lo) * (target[1] - target[0]) + target[0]


def from_model_space(y: torch.Tensor, value_range: tuple[float, float], output: str) -> torch.Tensor:
    """Inverse of :func:`to_model_space`: decoder output back to ``value_range``."""
    target = model_range(output)
    lo, hi = map(float, value_range)
    if target is None or (lo, hi) == target:
        return y
    return (y - target[0]) / (target[1] - target[0]) * (hi - lo) + lo


def dcgan_unsupported(spec: DataSpec, owner: str) -> str | None:
    """Why the DCGAN frame networks cannot take ``spec``'s video frames, or ``None`` if they can."""
    if spec.modality == "video" and (spec.height != spec.width or spec.height not in DCGAN_SIZES):
        return (f"{owner}'s DCGAN frame networks need square frames of {', '.join(map(str, DCGAN_SIZES))} pixels; "
                f"dataset {spec.name!r} has {spec.height}x{spec.width}")
    return None
