"""Running a view's expectations with Great Expectations, offline, on a pandas DataFrame.

Great Expectations is imported (about 3 s) only when a view has expectations, through
`registry_sync.expectations.import_gx` (which also owns its catalogue of expectation names). GE
runs on pandas batches read from the Delta table: GE has no DuckDB support, and through SQLAlchemy
every metric fails. The context is ephemeral (in memory, nothing written to disk) with
analytics off: `GX_ANALYTICS_ENABLED=false` is set before the first import and the context is
created with `analytics_enabled=False`, and nothing here asks for GX Cloud (whose environment
variables `get_context` would otherwise follow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

from hindsight.quality.records import BLOCKING_SEVERITY, ExpectationResult
from hindsight.registry_sync.expectations import build, import_gx
from hindsight.registry_sync.model import Expectation

#: How many offending values a record keeps per expectation.
SAMPLE_VALUES = 20


@cache
def _context() -> Any:
    gx = import_gx()
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        # Its tqdm bars would interleave with Hindsight's output.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _json_safe(value: Any) -> Any:
    """Observed values as JSON keeps them: numpy scalars as Python numbers, NaN as None, timestamps as text."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        try:
            value = value.item()
        except (TypeError, ValueError):
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _result(declared: Expectation, outcome: Any) -> ExpectationResult:
    details = outcome.result or {}
    info = outcome.exception_info or {}
    raised = info.get("raised_exception") if isinstance(info, dict) else False
    return ExpectationResult(
        type=declared.type,
        kwargs=declared.kwargs,
        success=bool(outcome.success),
        severity=str(declared.kwargs.get("severity") or BLOCKING_SEVERITY),
        observed_value=_json_safe(details.get("observed_value")),
        element_count=details.get("element_count"),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=_json_safe(details.get("unexpected_percent")),
        partial_unexpected_list=_json_safe(details.get("partial_unexpected_list")),
        exception=(info.get("exception_message") or "error") if raised else None,
    )


def run_suite(name: str, frame: Any, expectations: Sequence[Expectation]) -> tuple[ExpectationResult, ...]:
    """Run `expectations` on the pandas DataFrame `frame`; one result per expectation, in order.

    An expectation that cannot run (a column the rows lack) is a failure carrying the error, not
    an exception: the other expectations still run and are recorded.
    """
    gx = import_gx()
    context = _context()
    source = context.data_sources.add_or_update_pandas(f"hindsight_{name}")
    asset = source.add_dataframe_asset(name=f"{name}_rows")
    batch = asset.add_batch_definition_whole_dataframe(f"{name}_batch").get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name=f"{name}_expectations")
    for declared in expectations:
        suite.add_expectation(build(declared))
    try:
        outcome = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_VALUES})
    finally:
        context.data_sources.delete(f"hindsight_{name}")
    return tuple(_result(declared, result) for declared, result in zip(expectations, outcome.results))
