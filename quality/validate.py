"""`validate`: run each feature view's expectations on the rows its newest Delta version holds, and record it.

Which rows: by default those added since the newest version that passed with the same
expectations and still present, read from Delta's change data feed (inserts and updates' new
values, less the rows a later commit in the range deleted or updated: a backfill that replaced bad
rows leaves only its own rows to check), so a passing version vouches for every row the table
holds then; every row when no version has passed yet, when
`all_rows` is asked, or when the feed is unavailable (vacuumed, or a table written without it;
the record says so). The result goes to the validation log (`quality.records`), one record per view
and Delta version, whether it passed or not.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from sqlglot import exp

from hindsight.core.suggest import did_you_mean
from hindsight.offline_store.tables import open_table
from hindsight.quality.records import ValidationLog, ValidationRecord, fingerprint
from hindsight.registry_sync.model import FeatureView, Registry

log = logging.getLogger(__name__)

#: Change data feed rows that carry a row's new values, those that carry values it no longer has,
#: and the feed's own columns.
_NEW_VALUES = ("insert", "update_postimage")
_OLD_VALUES = ("delete", "update_preimage")
_FEED_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass(frozen=True)
class ViewValidation:
    """One view's `validate` outcome: its record and how long it took."""

    record: ValidationRecord
    seconds: float


def views_to_validate(registry: Registry, select: Sequence[str] | None) -> list[FeatureView]:
    """The selected feature views (default: every one with expectations).

    Raises:
        ValueError: a selected name is not a feature view, or names a view without expectations.
    """
    views = {v.name: v for v in registry.feature_views}
    if not select:
        return [v for v in registry.feature_views if v.expectations]
    chosen = []
    for name in dict.fromkeys(select):
        if name not in views:
            raise ValueError(f"--select {name}: not a feature view{did_you_mean(name, views)}")
        if not views[name].expectations:
            with_expectations = [v.name for v in registry.feature_views if v.expectations]
            raise ValueError(
                f"feature view {name} declares no expectations (config.meta.hindsight.expectations in its .yml); "
                f"views that do: {', '.join(with_expectations) or 'none'}"
            )
        chosen.append(views[name])
    return chosen


def _open(view: FeatureView) -> DeltaTable:
    try:
        return open_table(view.delta_uri)
    except TableNotFoundError as error:
        raise FileNotFoundError(
            f"feature view {view.name}: no Delta table at {view.delta_uri}; run `dbt build --select {view.name}`"
        ) from error


def _changed_rows(table: DeltaTable, first: int, last: int) -> pa.Table:
    """Rows versions first..last added that are still there: new values EXCEPT ALL removed values.

    The multiset difference drops a row added then deleted within the range (one copy per
    deletion); a removed row identical to a new one was checked when it arrived. DuckDB does it
    (delta-rs hands strings over as string_view, which pyarrow's filter has no kernel for).
    """
    feed = table.load_cdf(starting_version=first, ending_version=last)
    columns = [f.name for f in feed.schema if f.name not in _FEED_COLUMNS]
    picked = [exp.column(c, quoted=True) for c in columns]

    def rows(change_types: tuple[str, ...]) -> exp.Select:
        is_type = exp.column("_change_type", quoted=True).isin(*(exp.Literal.string(t) for t in change_types))
        return exp.select(*picked).from_(exp.table_("hs_feed", quoted=True)).where(is_type)

    with duckdb.connect() as con:
        con.register("hs_feed", pa.table(feed.read_all()))
        query = exp.except_(rows(_NEW_VALUES), rows(_OLD_VALUES), distinct=False)
        return con.sql(query.sql("duckdb")).to_arrow_table()


def _rows(view: FeatureView, table: DeltaTable, log_: ValidationLog, all_rows: bool) -> tuple[pa.Table, str, int | None, str]:
    """(rows, scope, from_version, note) for the table's current version."""
    version = table.version()
    table_id = table.metadata().id
    if not all_rows:
        passed = log_.newest_passed(view, table_id, below=version)
        if passed is not None:
            first = passed.delta_version + 1
            try:
                return _changed_rows(table, first, version), "changes", first, ""
            except (DeltaError, OSError, ValueError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                note = f"the change data feed of versions {first}..{version} is unavailable ({reason}): validated all rows"
                log.warning("feature view %s: %s", view.name, note)
                return table.to_pyarrow_table(), "all_rows", None, note
    return table.to_pyarrow_table(), "all_rows", None, ""


def validate_view(view: FeatureView, log_: ValidationLog, *, all_rows: bool = False,
                  registry_version: int | None = None) -> ViewValidation:
    """Validate the view's newest Delta version and append the record to `log_`."""
    from hindsight.quality.gx import run_suite

    started = time.perf_counter()
    table = _open(view)
    rows, scope, first, note = _rows(view, table, log_, all_rows)
    results = run_suite(view.name, rows.to_pandas(), view.expectations)
    record = ValidationRecord(
        view=view.name,
        delta_version=table.version(),
        table_id=table.metadata().id,
        scope=scope,
        from_version=first,
        rows=rows.num_rows,
        passed=not any(r.blocking for r in results),
        expectations=fingerprint(view.expectations),
        results=results,
        validated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        registry_version=registry_version,
        note=note,
    )
    log_.append(record)
    return ViewValidation(record, time.perf_counter() - started)


def validate(registry: Registry, log_: ValidationLog, select: Sequence[str] | None = None, *,
             all_rows: bool = False) -> list[ViewValidation]:
    """Validate the selected views (default: all with expectations), recording each; see the module docstring.

    Raises:
        ValueError: an unknown selection (before anything runs).
        FileNotFoundError: a view's Delta table does not exist.
    """
    return [
        validate_view(view, log_, all_rows=all_rows, registry_version=registry.version)
        for view in views_to_validate(registry, select)
    ]
