"""A one-line summary per feature view's Delta table: rows, entities, time range, version."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import duckdb
from hindsight.core.instants import utc_instant
from hindsight.offline_store.tables import open_table
from sqlglot import exp


class FeatureView(Protocol):
    """What a summary needs of a registry feature view (the registry sits above this package)."""

    @property
    def name(self) -> str: ...
    @property
    def delta_uri(self) -> str: ...
    @property
    def join_keys(self) -> Sequence[str]: ...
    @property
    def timestamp_field(self) -> str: ...


@dataclass(frozen=True)
class TableSummary:
    """What is in one feature view's Delta table now."""

    view: str
    version: int
    rows: int
    entities: int
    first: str | None
    last: str | None


def summarize(view: FeatureView) -> TableSummary:
    table = open_table(view.delta_uri)
    keys = [exp.column(k, quoted=True) for k in view.join_keys]
    ts = exp.column(view.timestamp_field, quoted=True)
    entity = keys[0] if len(keys) == 1 else exp.Tuple(expressions=keys)
    query = exp.select(
        exp.Count(this=exp.Star()),
        exp.Count(this=exp.Distinct(expressions=[entity])),
        exp.Min(this=ts),
        exp.Max(this=ts.copy()),
    ).from_("view_rows")
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("view_rows", table.to_pyarrow_dataset())
        # An aggregate without GROUP BY always returns one row.
        rows, entities, first, last = connection.execute(query.sql(dialect="duckdb")).fetchone() or (0, 0, None, None)
    finally:
        connection.close()
    return TableSummary(
        view=view.name,
        version=table.version(),
        rows=rows,
        entities=entities,
        first=_utc_text(first),
        last=_utc_text(last),
    )


def _utc_text(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    return utc_instant(value).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
