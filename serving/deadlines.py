"""Waiting for a call only until a request's deadline: the one rule behind every bounded store call.

Feature reads (`serving.reader`), API-key lookups (`serving.auth`) and ingest/push writes
(`serving.ingest`) each run their DynamoDB call on a per-process thread pool and wait for it until a
deadline counted from the request's arrival; past it the request gets its answer (a 503, or
TIME_OUT features) while the call finishes in the background, bounded by its client's timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

__all__ = ["FutureTimeout", "call_by"]


def call_by(pool: Executor, deadline: float, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)` on `pool`, waited for until `deadline` (a `time.perf_counter()` value;
    positional, so that `call` may take a `deadline` keyword of its own).

    Raises:
        FutureTimeout: not done by the deadline. A call still queued never runs (a request queued
            past its deadline is shed without touching the store); a running one finishes in the
            background and its result is dropped.
        Whatever `call` raises.
    """
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise FutureTimeout
    future = pool.submit(call, *args, **kwargs)
    try:
        return future.result(timeout=remaining)
    except FutureTimeout:
        future.cancel()
        raise
