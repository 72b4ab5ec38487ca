"""Errors a user can act on. The CLI prints their message (no traceback) and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SeqbenchError(Exception):
    """Base class: the message says what went wrong, where, and how to fix it."""


class UnknownNameError(SeqbenchError, KeyError):
    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}.{hint} Available {kind}s: {listing}. "
                         f"Run `seqbench list {kind}s` for details.")
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ConfigError(SeqbenchError):
    pass


class PluginError(SeqbenchError):
    pass


class DataNotFoundError(SeqbenchError):
    pass


class TrainingDivergedError(SeqbenchError):
    pass


class NotApplicable(SeqbenchError):
    """Raised (or returned as a reason) when a metric does not apply to a method/dataset."""
