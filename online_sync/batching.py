"""DynamoDB batch calls with DynamoDB's limits and retries: BatchWriteItem and BatchGetItem.

Both calls may answer with part of the work undone (UnprocessedItems / UnprocessedKeys) when the
table is throttled; the AWS guidance is to resend just that part with exponential backoff and
jitter: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

#: DynamoDB's limits per request.
MAX_WRITE_BATCH = 25
MAX_GET_BATCH = 100

_BASE_DELAY_S = 0.05
_MAX_DELAY_S = 5.0
_MAX_ROUNDS = 12


class RetriesExhausted(RuntimeError):
    """DynamoDB kept part of a batch unprocessed through every retry."""


def backoff_delay(attempt: int) -> float:
    """Seconds to sleep before retry `attempt` (0-based): full jitter over an exponential cap.

    >>> 0 <= backoff_delay(0) <= 0.05 and 0 <= backoff_delay(30) <= 5.0
    True
    """
    return random.uniform(0, min(_MAX_DELAY_S, _BASE_DELAY_S * 2**attempt))


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most `size` items.

    >>> list(chunked(range(5), 2))
    [[0, 1], [2, 3], [4]]
    """
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_batch(client: Any, table: str, items: list[dict[str, Any]]) -> int:
    """Put up to 25 items with one BatchWriteItem, resending unprocessed ones; returns the count."""
    request: dict[str, list[dict[str, Any]]] = {table: [{"PutRequest": {"Item": item}} for item in items]}
    for attempt in range(_MAX_ROUNDS):
        unprocessed = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        if not unprocessed:
            return len(items)
        request = unprocessed
        time.sleep(backoff_delay(attempt))
    raise RetriesExhausted(f"table {table}: items still unprocessed after {_MAX_ROUNDS} attempts (throttled)")


def get_batch(client: Any, request_items: dict[str, dict[str, Any]],
              deadline: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """One BatchGetItem of up to 100 keys, resending unprocessed keys; returns items per table.

    `deadline` (a `time.perf_counter()` value) stops the resending: a retry that would start after
    it is not made, since its answer would come too late for the request waiting on it.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    request = request_items
    for attempt in range(_MAX_ROUNDS):
        response = client.batch_get_item(RequestItems=request)
        for table, items in response.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return found
        delay = backoff_delay(attempt)
        if deadline is not None and time.perf_counter() + delay >= deadline:
            raise RetriesExhausted("keys still unprocessed at the request's deadline (throttled)")
        time.sleep(delay)
    raise RetriesExhausted(f"keys still unprocessed after {_MAX_ROUNDS} attempts (throttled)")


class BoundedExecutor:
    """A thread pool whose producer blocks while `max_in_flight` jobs are pending.

    A producer streaming from Delta thus never holds more than that many jobs' rows in memory.
    `on_done` gets each job's result in the producer's thread; the first failed job's error is
    re-raised by `submit` or `close`.
    """

    def __init__(self, threads: int = 4, on_done: Callable[[Any], None] | None = None,
                 max_in_flight: int | None = None, name: str = "online-write") -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._max_in_flight = max_in_flight or threads * 4
        self._pending: set[Future[Any]] = set()
        self._on_done = on_done

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        """Run `job(*args)` on the pool, first waiting while too many jobs are pending."""
        while len(self._pending) >= self._max_in_flight:
            done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
            self._collect(done)
        self._pending.add(self._pool.submit(job, *args))

    def _collect(self, done: Iterable[Future[Any]]) -> None:
        for future in done:
            result = future.result()  # re-raises the job's error
            if self._on_done:
                self._on_done(result)

    def close(self) -> None:
        """Wait for every job; raise the first failure."""
        try:
            done, self._pending = wait(self._pending).done, set()
            self._collect(done)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop jobs not started yet and wait for running ones (their writes may still land)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BoundedExecutor:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
