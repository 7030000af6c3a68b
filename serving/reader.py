"""Running a read plan: one online-store read (under an optional latency budget), the on-demand
views over what was read and the request context, and the response rows.

Statuses: PRESENT, NOT_FOUND and EXPIRED come from the store (it enforces ttl and returns no value
for an expired row); TIME_OUT marks features whose view was not read within the latency budget,
and on-demand outputs with such an input. An on-demand output that was computed is PRESENT.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from hindsight.serving import metrics
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


def _store_unavailable(error: BaseException) -> ApiError | None:
    global _UNAVAILABLE
    if _UNAVAILABLE is None:
        _UNAVAILABLE = _unavailable_errors()
    if isinstance(error, _UNAVAILABLE):
        return ApiError(503, "online_store_unavailable", f"the online store cannot be reached: {error}")
    return None


def read_features(
    request: FeatureRequest, store: Any, pool: ThreadPoolExecutor, started: float
) -> list[dict[str, Any]]:
    """Answer a checked request: one result object (`features`, maybe `metadata`) per entity row.

    Args:
        request: the parsed request.
        store: the online store (`read(entity_rows, features)`).
        pool: threads for reads under a latency budget.
        started: `time.perf_counter()` when the request arrived; the budget counts from it.

    Raises:
        ApiError: 503 when the store is unreachable, 500 when an on-demand view fails.
    """
    plan = request.plan
    deadline = None if request.budget_s is None else started + request.budget_s
    reads, timed_out = _read_store(plan, request.entity_rows, store, pool, deadline)
    _note_freshness(reads)
    computed = {step.view.name: _run_on_demand(step, reads, timed_out, request.contexts) for step in plan.on_demand}
    return _assemble(plan, reads, timed_out, computed, request.include_metadata)


def _read_store(
    plan: ReadPlan, rows: list[dict[str, Any]], store: Any, pool: ThreadPoolExecutor, deadline: float | None
) -> tuple[list[StoreRow], frozenset[str]]:
    if not plan.store_features:
        return [{} for _ in rows], frozenset()
    began = time.perf_counter()
    try:
        if deadline is None:
            return store.read(rows, plan.store_features), frozenset()
        return _read_within(plan, rows, store, pool, deadline)
    except ApiError:
        raise
    except Exception as error:
        unavailable = _store_unavailable(error)
        if unavailable is None:
            raise
        raise unavailable from None
    finally:
        metrics.observe_store_read(time.perf_counter() - began)


def _read_within(
    plan: ReadPlan, rows: list[dict[str, Any]], store: Any, pool: ThreadPoolExecutor, deadline: float
) -> tuple[list[StoreRow], frozenset[str]]:
    # One read per view, so the views that answer in time are served and only the others time out.
    futures = {pool.submit(store.read, rows, {view: names}): view for view, names in plan.store_features.items()}
    done, pending = wait(futures, timeout=max(0.0, deadline - time.perf_counter()))
    for future in pending:
        future.cancel()  # a read already running finishes in the background; its result is dropped
    merged: list[StoreRow] = [{} for _ in rows]
    for future in done:
        for target, got in zip(merged, future.result()):
            target.update(got)
    timed_out = frozenset(futures[f] for f in pending)
    metrics.count_timeouts(timed_out)
    return merged, timed_out


def _note_freshness(reads: list[StoreRow]) -> None:
    newest: dict[str, dt.datetime] = {}
    for row in reads:
        for view, read in row.items():
            stamp = read.event_timestamp
            if stamp is not None and (view not in newest or stamp > newest[view]):
                newest[view] = stamp
    for view, stamp in newest.items():
        metrics.note_event_time(view, stamp)


def _present_value(row: StoreRow, view: str, feature: str) -> Any:
    read = row.get(view)
    if read is None or read.status != PRESENT:
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
        message = f"on-demand view {name!r} failed: {type(error).__name__}: {error}"
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
                    value = read.values.get(column.feature) if status == PRESENT else None
            if type(value) is float and not isfinite(value):
                value = None  # JSON has no NaN or infinities
            features[column.name] = value
            if include_metadata:
                metadata[column.name] = {"status": status, "event_timestamp": stamp}
        results.append({"features": features, "metadata": metadata} if include_metadata else {"features": features})
    return results
