"""The stream transform: a stream-fed view's own SQL, run over one batch of events in DuckDB.

A stream-fed aggregation view is a dbt model over `source('<stream>', '<table>')`; dbt runs it over
the event log offline. Online, each batch of newly ingested events must pass through the same SQL
(filters, renames, casts) before its rows update the view's tiles. The registry keeps the model's
compiled SQL (`FeatureView.stream_sql`, in `stream_sql_dialect`); here it is parsed with sqlglot
once, and rewritten:

- the processing-range predicate (the parenthesised span that ends with the comment
  `/* hindsight:processing_range_end */`, offline_store.event_log) becomes `(1 = 1)`: a batch is
  all new events, whatever range a dbt run would have selected;
- the stream source's relation becomes the batch (an Arrow table registered in DuckDB), keeping
  the name the query refers to it by;
- the result is narrowed to what the tiles need: the join keys, the event time and the input
  columns of the view's aggregations.

The SQL must work event by event (a filter, a projection, casts, CASE ...): the batch holds only
the new events, so a model that joins other relations or aggregates over several events cannot be
run per batch, and is refused here with the relations named.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from hindsight.offline_store import tiles
from hindsight.offline_store.event_log import PROCESSING_RANGE_END
from hindsight.registry_sync.model import FeatureView, StreamSource

#: The name the batch is registered under in DuckDB.
BATCH_TABLE = "hs_stream_batch"
_END_MARK = PROCESSING_RANGE_END.strip("/* ").strip()


class StreamTransformError(ValueError):
    """A stream-fed view whose SQL cannot run per batch of events."""


def _is_range_end(node: exp.Expression) -> bool:
    return any(_END_MARK in comment for comment in node.comments or ())


def _replace_processing_range(tree: exp.Expression) -> int:
    """Replace every processing-range predicate by (1 = 1); returns how many there were."""
    spans = [node for node in tree.find_all(exp.Paren) if _is_range_end(node)]
    for span in spans:
        span.replace(exp.Paren(this=exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1))))
    return len(spans)


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name for cte in tree.find_all(exp.CTE)}


def _name(table: exp.Table, dialect: str) -> str:
    return exp.table_name(table, dialect=dialect, identify=True)


def _matches(table: exp.Table, stream: StreamSource) -> bool:
    if table.name != stream.table_name:
        return False
    return not table.db or table.db == stream.source_name


class StreamTransform:
    """One view's SQL, rewritten to read a batch of events (parse once, run per batch)."""

    def __init__(self, view: FeatureView, stream: StreamSource) -> None:
        if not view.stream_sql:
            raise StreamTransformError(
                f"feature view {view.name!r} reads stream source {stream.name!r} but the registry has no "
                "compiled SQL for it (stream_sql); run `hindsight apply` again")
        dialect = view.stream_sql_dialect or "duckdb"
        try:
            tree = sqlglot.parse_one(view.stream_sql, read=dialect)
        except sqlglot.errors.ParseError as err:
            raise StreamTransformError(f"feature view {view.name!r}: its compiled SQL does not parse as {dialect}: {err}") from None
        self.view, self.stream = view, stream
        self.ranges_replaced = _replace_processing_range(tree)
        ctes = _cte_names(tree)
        sources: list[exp.Table] = []
        others: list[exp.Table] = []
        for table in tree.find_all(exp.Table):
            if not table.db and table.name in ctes:
                continue
            (sources if _matches(table, stream) else others).append(table)
        if not sources and others:
            # A source declared with its own schema: the table name alone, when unique.
            named = [t for t in others if t.name == stream.table_name]
            if named and len({t.sql() for t in named}) == 1:
                sources, others = named, [t for t in others if t.name != stream.table_name]
        if not sources:
            raise StreamTransformError(
                f"feature view {view.name!r}: its SQL does not read stream source {stream.name!r} "
                f"(relations read: {', '.join(sorted({_name(t, dialect) for t in others})) or 'none'})")
        if others:
            raise StreamTransformError(
                f"feature view {view.name!r}: its SQL reads {', '.join(sorted({_name(t, dialect) for t in others}))} "
                f"besides stream source {stream.name!r}; online, each batch of new events runs through the view's "
                "SQL alone, so a stream-fed view may only filter, rename and compute columns of its events")
        for table in sources:
            alias = table.alias or table.name
            table.replace(exp.Table(this=exp.to_identifier(BATCH_TABLE, quoted=True),
                                    alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))))
        columns = [*view.join_keys, view.timestamp_field]
        columns += [a.column for a in view.aggregations if a.column != tiles.STAR]
        self.columns = tuple(dict.fromkeys(columns))
        outer = (
            exp.select(*[exp.column(c, quoted=True) for c in self.columns])
            .from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("hs_view", quoted=True))))
        )
        #: The SQL run per batch (DuckDB).
        self.sql = outer.sql("duckdb")

    def run(self, batch: pa.Table, con: duckdb.DuckDBPyConnection) -> pa.Table:
        """The view's rows for `batch` (the stream source's columns): join keys, time, inputs."""
        try:
            # The batch as a relation the query sees under BATCH_TABLE: no catalog entry to register
            # and drop (a quarter of the time of a one-event transform).
            return con.from_arrow(batch).query(BATCH_TABLE, self.sql).to_arrow_table()
        except duckdb.Error as err:
            raise StreamTransformError(f"feature view {self.view.name!r}: its SQL failed over a batch of events: {err}") from err


_local = threading.local()


def connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection for transforms (in memory, UTC, one thread)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


def run_transform(transform: StreamTransform, batch: pa.Table) -> pa.Table:
    """`transform.run` on this thread's connection."""
    return transform.run(batch, connection())


__all__: list[Any] = ["BATCH_TABLE", "StreamTransform", "StreamTransformError", "connection", "run_transform"]
