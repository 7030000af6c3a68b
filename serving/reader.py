"""Running a read plan: one online-store read bounded by the request's deadline, the on-demand
views over what was read and the request context, and the response rows.

Statuses: PRESENT, NOT_FOUND and EXPIRED come from the store (it enforces ttl and returns no value
for an expired row; an aggregation view without events in its windows is NOT_FOUND with its count
features 0, which the response keeps); TIME_OUT marks features whose view was not read within the request's latency
budget, and on-demand outputs with such an input. An on-demand output that was computed is PRESENT.
Without a budget (or with one at or above the server's store deadline) a store that does not answer
in time is a 503, like one that cannot be reached.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hindsight.serving import metrics
from hindsight.serving.deadlines import FutureTimeout, call_by
from hindsight.serving.errors import ApiError
from hindsight.serving.parsing import FeatureRequest
from hindsight.serving.plans import OnDemandStep, ReadPlan

log = logging.getLogger(__name__)

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
EXPIRED = "EXPIRED"
TIME_OUT = "TIME_OUT"
STATUSES = (PRESENT, NOT_FOUND, EXPIRED, TIME_OUT)

#: Per row: feature view name -> the store's ViewRead (status, values, event_timestamp).
StoreRow = dict[str, Any]


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the online store cannot be reached (answered 503, not 500)."""
    from botocore import exceptions as boto

    from hindsight.online_sync.config import OnlineStoreUnavailable

    return (
        boto.EndpointConnectionError,
        boto.ConnectTimeoutError,
        boto.ReadTimeoutError,
        boto.ConnectionClosedError,
        OnlineStoreUnavailable,
    )


_UNAVAILABLE: tuple[type[BaseException], ...] | None = None
#: The 503's message when the store answered but a table of a requested view does not exist.
MISSING_TABLE_MESSAGE = ("the online store has no table for a requested feature view (not created yet, or "
                         "dropped): run `hindsight apply`; the server log names it")


def store_unavailable(error: BaseException) -> ApiError | None:
    """The 503 for a failure to reach the store, or None when `error` is not one.

    The client is told what kind of failure it is, never its detail: botocore's messages carry the
    endpoint URL and ours the table names, which are the operator's business (they are logged;
    docs/production.md: error bodies never carry the store's endpoint, host or table names). A
    missing table (`OnlineTableMissing`: the store answered) is told apart from an unreachable
    store, with its fix.
    """
    global _UNAVAILABLE
    if _UNAVAILABLE is None:
        _UNAVAILABLE = _unavailable_errors()
    if not isinstance(error, _UNAVAILABLE):
        return None
    from hindsight.online_sync.config import OnlineTableMissing

    log.warning("online store unavailable: %s: %s", type(error).__name__, error)
    if isinstance(error, OnlineTableMissing):
        return ApiError(503, "online_store_unavailable", MISSING_TABLE_MESSAGE)
    return ApiError(503, "online_store_unavailable", "the online store cannot be reached; see the server log")


def store_timed_out(deadline_s: float) -> ApiError:
    """The 503 for a store that did not answer within the request's deadline."""
    return ApiError(
        503,
        "online_store_unavailable",
        f"the online store did not answer within {deadline_s * 1000:.0f} ms of the request's arrival",
    )


def read_features(
    request: FeatureRequest, store: Any, pool: ThreadPoolExecutor, started: float, store_deadline_s: float
) -> list[dict[str, Any]]:
    """Answer a checked request: one result object (`features`, maybe `metadata`) per entity row.

    The store read runs on `pool` and is waited for until the request's deadline: `started` plus
    the latency budget when the request sets one below `store_deadline_s` (then features not read
    by then are TIME_OUT), else `started` plus `store_deadline_s` (then the answer is a 503). A
    read still running at the deadline finishes in the background, bounded by the client's own
    timeouts; its result is dropped.

    Args:
        request: the parsed request.
        store: the online store (`read(entity_rows, features, deadline=...)`).
        pool: threads that run store reads.
        started: `time.perf_counter()` when the request arrived; deadlines count from it.
        store_deadline_s: the server's bound on waiting for the store.

    Raises:
        ApiError: 503 when the store is unreachable or late, 500 when an on-demand view fails.
    """
    plan = request.plan
    budget = request.budget_s
    partial = budget is not None and budget < store_deadline_s
    deadline = started + (budget if partial and budget is not None else store_deadline_s)
    reads, timed_out = _read_store(plan, request.entity_rows, store, pool, started, deadline, partial)
    _count_statuses(plan, reads, timed_out)
    computed = {step.view.name: _run_on_demand(step, reads, timed_out, request.contexts) for step in plan.on_demand}
    return _assemble(plan, reads, timed_out, computed, request.include_metadata)


def _read_store(
    plan: ReadPlan,
    rows: list[dict[str, Any]],
    store: Any,
    pool: ThreadPoolExecutor,
    started: float,
    deadline: float,
    partial: bool,
) -> tuple[list[StoreRow], frozenset[str]]:
    if not plan.store_features:
        return [{} for _ in rows], frozenset()
    began = time.perf_counter()
    try:
        # One read for every view: DynamoDB answers all of a BatchGetItem or none of it, so reading
        # views separately would multiply calls without making a late answer partial.
        return call_by(pool, deadline, store.read, rows, plan.store_features, deadline=deadline), frozenset()
    except FutureTimeout:
        if partial:
            timed_out = frozenset(plan.store_features)
            return [{} for _ in rows], timed_out
        raise store_timed_out(deadline - started) from None
    except ApiError:
        raise
    except Exception as error:
        unavailable = store_unavailable(error)
        if unavailable is None:
            raise
        from hindsight.online_sync.config import is_timeout

        if is_timeout(error) and not partial:
            # The client's timeout is the deadline too and may fire first: the same answer.
            raise store_timed_out(deadline - started) from None
        raise unavailable from None
    finally:
        metrics.observe_store_read(time.perf_counter() - began)


def _count_statuses(plan: ReadPlan, reads: list[StoreRow], timed_out: frozenset[str]) -> None:
    """Count each (entity row, stored view) read by status, for /metrics."""
    counts: dict[tuple[str, str], int] = {}
    for view in plan.store_features:
        if view in timed_out:
            counts[(view, TIME_OUT)] = len(reads)
            continue
        for row in reads:
            read = row.get(view)
            key = (view, NOT_FOUND if read is None else read.status)
            counts[key] = counts.get(key, 0) + 1
    metrics.count_view_reads(counts)


def _present_value(row: StoreRow, view: str, feature: str) -> Any:
    # The store's values are None unless PRESENT, except an aggregation view's counts, which are 0
    # without events (NOT_FOUND included): that 0 is the feature's value.
    read = row.get(view)
    if read is None:
        return None
    return read.values.get(feature)


def _run_on_demand(
    step: OnDemandStep, reads: list[StoreRow], timed_out: frozenset[str], contexts: list[dict[str, Any]]
) -> dict[str, list[Any]] | None:
    """The view's output columns, or None when one of its inputs timed out."""
    if any(source in timed_out for _, source, _ in step.inputs):
        return None
    columns = {column: [_present_value(r, source, feature) for r in reads] for column, source, feature in step.inputs}
    for name in step.request_fields:
        columns[name] = [context[name] for context in contexts]
    name = step.view.name
    try:
        outputs = step.view.compute(columns)
    except Exception as error:
        log.exception("on-demand view %r failed", name)
        # The exception's text stays in the log: it may name files, hosts or data of the server.
        message = f"on-demand view {name!r} failed with {type(error).__name__}; see the server log"
        raise ApiError(500, "on_demand_failed", message) from None
    for output in step.view.outputs:
        if len(outputs.get(output, ())) != len(reads):
            raise ApiError(
                500,
                "on_demand_failed",
                f"on-demand view {name!r} returned no column of {len(reads)} values for {output!r}",
            )
    return outputs


def _assemble(
    plan: ReadPlan,
    reads: list[StoreRow],
    timed_out: frozenset[str],
    computed: dict[str, dict[str, list[Any]] | None],
    include_metadata: bool,
) -> list[dict[str, Any]]:
    # The innermost loop of every request: locals and an inlined NaN check keep it cheap.
    isfinite = math.isfinite
    results = []
    for index, row in enumerate(reads):
        features: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        for column in plan.outputs:
            stamp = None
            if column.on_demand:
                outputs = computed[column.view]
                if outputs is None:
                    value, status = None, TIME_OUT
                else:
                    value, status = outputs[column.feature][index], PRESENT
            elif column.view in timed_out:
                value, status = None, TIME_OUT
            else:
                read = row.get(column.view)
                if read is None:
                    value, status = None, NOT_FOUND
                else:
                    status, stamp = read.status, read.event_timestamp
                    # None unless PRESENT, except aggregation counts: 0 without events (see _present_value).
                    value = read.values.get(column.feature)
            if type(value) is float and not isfinite(value):
                value = None  # JSON has no NaN or infinities
            features[column.name] = value
            if include_metadata:
                metadata[column.name] = {"status": status, "event_timestamp": stamp}
        results.append({"features": features, "metadata": metadata} if include_metadata else {"features": features})
    return results
