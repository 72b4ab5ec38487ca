"""seqbench's messages and progress lines, through :mod:`logging` so users can route them.

Everything the framework tells the user while it works (cache reuse, training progress, lock
waits, warnings about tracking) goes to the ``seqbench`` logger. :func:`configure_logging` gives
it a handler writing ``[seqbench] message`` to the *current* ``sys.stderr`` unless the user (or
an application embedding seqbench) configured one first; the CLI installs it for every command, so
modules log to ``logging.getLogger(__name__)`` (a child of ``seqbench``) and never print to stderr.
What a command *produces* (tables, markdown, ``seqbench: error: ...``) is printed, not logged. :class:`ProgressLog` emits one line at
a steady interval - every tenth of the work or every ``SEQBENCH_PROGRESS_INTERVAL`` seconds
(default 30), whichever comes first - so a batch log (``seqbench run > log 2>&1``) is never
silent for long.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOGGER_NAME = "seqbench"
PROGRESS_INTERVAL_ENV = "SEQBENCH_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL_S = 30.0

logger = logging.getLogger(LOGGER_NAME)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (pytest's capsys, a redirected stream)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Give the ``seqbench`` logger a stderr handler, unless one is configured already (idempotent)."""
    if logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("[seqbench] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def progress_interval_s() -> float:
    """Seconds between two progress lines at most (``SEQBENCH_PROGRESS_INTERVAL``, default 30)."""
    try:
        return max(0.0, float(os.environ.get(PROGRESS_INTERVAL_ENV, DEFAULT_PROGRESS_INTERVAL_S)))
    except ValueError:
        return DEFAULT_PROGRESS_INTERVAL_S


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressLog:
    """One log line per tenth of ``total`` steps (``fractions``; 0: by time only) or per interval,
    with step, loss, elapsed and ETA.

    ``update(step, **values)`` may be called every step; it decides whether to write. The ETA
    extrapolates the rate of the steps done in this process (a resumed run starts counting at
    its first update).
    """

    def __init__(self, label: str, total: int, *, interval_s: float | None = None, fractions: int = 10,
                 emit: Callable[[str], None] | None = None, unit: str = "step"):
        self.label, self.total, self.unit = label, max(1, int(total)), unit
        self.interval_s = progress_interval_s() if interval_s is None else interval_s
        self.every = max(1, self.total // fractions) if fractions else None  # None: by time alone
        self.emit = emit or logger.info
        self.start = time.monotonic()
        self.first_step: int | None = None
        self.last_time = self.start
        self.last_step: int | None = None

    def update(self, step: int, **values: float) -> bool:
        """Record progress at ``step``; returns whether a line was written."""
        now = time.monotonic()
        if self.first_step is None:
            self.first_step = step
            self.start = now
            self.last_time = now
        crossed = self.last_step is None or (self.every is not None and step // self.every > self.last_step // self.every)
        due = now - self.last_time >= self.interval_s
        if not (crossed or due or step >= self.total):
            return False
        if self.last_step == step:
            return False
        self.last_step, self.last_time = step, now
        self.emit(self.line(step, now, values))
        return True

    def line(self, step: int, now: float, values: dict[str, float]) -> str:
        elapsed = now - self.start
        done = step - (self.first_step or 0)
        remaining = self.total - step
        eta = format_duration(elapsed / done * remaining) if done > 0 else "?"
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, (int, float)))
        return (f"{self.label}: {self.unit} {step}/{self.total}" + (f", {shown}" if shown else "")
                + f", elapsed {format_duration(elapsed)}, ETA {eta}")


@contextmanager
def heartbeat(message: Callable[[float], str], *, interval_s: float | None = None) -> Iterator[None]:
    """While the block runs, log ``message(elapsed_s)`` every interval (work whose steps are not visible)."""
    interval = progress_interval_s() if interval_s is None else interval_s
    stop = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not stop.wait(interval):
            logger.info(message(time.monotonic() - start))

    thread = threading.Thread(target=beat, name="seqbench-heartbeat", daemon=True)
    if interval > 0:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=1)
