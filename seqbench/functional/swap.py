"""The DiViD swap protocol: judge accuracy on decodes whose factors come from two clips.

For a pair of clips (a, b) a method decodes ``(s_a, d_b)``; a fixed judge then predicts every
label. A static head is correct when it recovers the label of the clip that supplied the static
code (``a``), a dynamic head when it recovers the label of the clip that supplied the dynamics
(``b``). The caller builds those targets; this function only compares and aggregates:

- static-only accuracy  = ``mean_i AND_{h in static heads} [pred_h,i == target_h,i]``
- dynamic-only accuracy = ``mean_i AND_{h in dynamic heads} [pred_h,i == target_h,i]``
- joint accuracy        = ``mean_i AND_{all heads} [...]`` (DiViD sec. 4.2.2)

Per-item boolean arrays are returned as well so that bootstrap intervals can be drawn over items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ._utils import check_same_length, to_labels, to_predictions

__all__ = ["SwapAccuracies", "swap_accuracies", "compound_label_parts"]


@dataclass(frozen=True)
class SwapAccuracies:
    """Result of :func:`swap_accuracies`.

    ``static``/``dynamic`` are NaN when no head of that kind was given; ``per_item`` maps
    ``"static"``, ``"dynamic"``, ``"joint"`` (the groups that have heads) and ``"head/<name>"``
    for every head to a boolean ``[N]`` array.
    """

    static: float
    dynamic: float
    joint: float
    per_head: dict[str, float] = field(default_factory=dict)
    per_item: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    n: int = 0

    def as_dict(self) -> dict[str, float]:
        """Flat scalar view: ``static``, ``dynamic``, ``joint``, ``n`` and ``head/<name>``."""
        out: dict[str, float] = {"static": self.static, "dynamic": self.dynamic, "joint": self.joint,
                                 "n": self.n}
        out.update({f"head/{name}": acc for name, acc in self.per_head.items()})
        return out


def _head_hits(preds: Mapping[str, Any], targets: Mapping[str, Any], kind: str) -> dict[str, np.ndarray]:
    if set(preds) != set(targets):
        raise ValueError(f"{kind} predictions and targets name different heads: "
                         f"{sorted(preds)} vs {sorted(targets)}")
    hits = {}
    for name in preds:
        p = to_predictions(preds[name], f"pred_{kind}[{name!r}]")
        t = to_labels(targets[name], f"target_{kind}[{name!r}]")
        check_same_length(predictions=p, targets=t)
        hits[name] = p == t
    return hits


def swap_accuracies(
    pred_static: Mapping[str, Any],
    pred_dynamic: Mapping[str, Any],
    target_static: Mapping[str, Any],
    target_dynamic: Mapping[str, Any],
) -> SwapAccuracies:
    """Static-only, dynamic-only and joint accuracy of a judge on swapped decodes.

    Each mapping goes from a head name to predictions (indices ``[N]`` or logits ``[N, C]``) or
    target indices ``[N]``. ``pred_static[h]`` is head ``h``'s prediction on the swapped decode and
    ``target_static[h]`` the label of the clip that gave the static code (likewise for dynamic).
    """
    static_hits = _head_hits(pred_static, target_static, "static")
    dynamic_hits = _head_hits(pred_dynamic, target_dynamic, "dynamic")
    clash = set(static_hits) & set(dynamic_hits)
    if clash:
        raise ValueError(f"heads {sorted(clash)} are listed as both static and dynamic")
    heads = {**static_hits, **dynamic_hits}
    if not heads:
        raise ValueError("swap_accuracies needs at least one head")
    n = check_same_length(**heads)
    if n == 0:
        raise ValueError("swap_accuracies needs at least one item")

    def all_of(hits: dict[str, np.ndarray]) -> np.ndarray | None:
        return np.logical_and.reduce(list(hits.values())) if hits else None

    groups = {"static": all_of(static_hits), "dynamic": all_of(dynamic_hits), "joint": all_of(heads)}
    per_item = {k: v for k, v in groups.items() if v is not None}
    per_item.update({f"head/{name}": h for name, h in heads.items()})
    acc = {k: float(v.mean()) if v is not None else float("nan") for k, v in groups.items()}
    return SwapAccuracies(
        static=acc["static"], dynamic=acc["dynamic"], joint=acc["joint"],
        per_head={name: float(h.mean()) for name, h in heads.items()},
        per_item=per_item, n=n,
    )


def compound_label_parts(class_names: "tuple[str, ...] | list[str]") -> tuple[np.ndarray, np.ndarray] | None:
    """Class index -> (type index, direction index) for a ``<type>-<direction>`` label, else ``None``.

    Sprites' motion label is a product: 3 action types x 3 facing directions (``walk-front``,
    ``slash-left``...). A judge head that reads it can be right about the type and wrong about the
    direction; splitting its predictions shows which part a method's decodes carry. Applies only when
    every name has exactly one ``-`` and the names form the full grid of their parts.
    """
    names = list(class_names)
    if len(names) < 2 or any(name.count("-") != 1 for name in names):
        return None
    firsts = list(dict.fromkeys(name.split("-")[0] for name in names))
    seconds = list(dict.fromkeys(name.split("-")[1] for name in names))
    if len(firsts) < 2 or len(seconds) < 2 or len(firsts) * len(seconds) != len(names) or len(set(names)) != len(names):
        return None
    kind = np.array([firsts.index(name.split("-")[0]) for name in names], dtype=np.int64)
    direction = np.array([seconds.index(name.split("-")[1]) for name in names], dtype=np.int64)
    return kind, direction
