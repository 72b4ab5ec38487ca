"""seqbench: the reference benchmark for sequential disentanglement.

Public API for plugin authors: :class:`Method`, :class:`MethodConfig`, :class:`Metric`,
:class:`DatasetAdapter`, :class:`Factors`, :class:`DataSpec`, :data:`hookimpl`; for users:
:func:`load_results`. Heavy modules are imported lazily so ``seqbench --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Factors": "seqbench.types", "DataSpec": "seqbench.types", "LabelSpec": "seqbench.types",
    "MetricOutput": "seqbench.types", "MetricValue": "seqbench.types",
    "Method": "seqbench.method", "Batch": "seqbench.method",
    "MethodConfig": "seqbench.config",
    "Metric": "seqbench.metric", "Requirements": "seqbench.metric", "EvalContext": "seqbench.metric",
    "EvalData": "seqbench.metric",
    "DatasetAdapter": "seqbench.data", "SplitData": "seqbench.data",
    "Backend": "seqbench.backends",
    "hookimpl": "seqbench.hookspecs",
    "load_results": "seqbench.results",
    "load_plugins": "seqbench.plugins",
    "SeqbenchError": "seqbench.errors", "NotApplicable": "seqbench.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seqbench' has no attribute {name!r}")
