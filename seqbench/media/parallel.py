"""A bounded, ordered thread pool for decoding many items."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def ordered_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, result or exception)`` in input order, at most ``2 * workers`` in flight.

    Threads, because decoding (FFmpeg, libjpeg, libsndfile) and resizing (torch) release the GIL;
    exceptions are returned, not raised, so the caller decides to skip or stop.
    """
    def call(item: Any) -> Any:
        try:
            return fn(item)
        except Exception as exc:  # handed to the caller, which re-raises what it cannot handle
            return exc

    if workers <= 1:
        for item in items:
            yield item, call(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: list[tuple[Any, Future]] = []
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(call, item)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            item, future = pending.pop(0)
            yield item, future.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(call, nxt)))


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
