"""The offline half of push: pushed rows appended to their feature view's Delta table.

A push view (config `push: true`) takes rows from `hindsight push`, `POST /v1/push` and
`hindsight.push`. Each acknowledged row waits in the journal (`online_sync.journal`) until the
flusher (`streams.flush`) hands a batch of them to `append_pushed_rows`, which writes them to the
view's Delta table in one commit, so training sets see them.

Pushed rows carry the column `_hs_pushed_at` (PUSHED_AT): the time the push was acknowledged
(the journal's sequence). Rows the dbt model computes have it NULL. The `feature_view`
materialization writes that column for push views and keeps every row where it is set through
every later run, full refresh included (offline_store.delta_writer; feature_view_spark.sql on
Spark), so a rebuild never drops what was pushed.

Rules of an append, per batch:
- The row's unique key is the view's: join keys, event time and, if declared, created time. A
  row without a created time gets its push time as created time, so every push is its own
  version, visible to training sets from the moment it was pushed.
- Dedupe: a row equal to the table's row with the same unique key (every column but
  `_hs_pushed_at`) is dropped, so a retried or replayed push adds nothing. A row with the same
  unique key but other values replaces that row, pushed or computed by dbt (newest push wins, as
  online, where a push wins a tie); a replayed row older than the pushed row it would replace is
  dropped.
- Partial pushes (config `push_partial: true`): a row may carry a subset of the features (the
  journal row lists them in `_hs_features`). The others are filled from the entity's newest row
  before it (by event time, created time, push time), the batch's own earlier rows included. Rows
  already in the table are never refilled: a late partial push does not change newer rows.
- Schema: every column must be a column of the table and cast to its type; a non-partial row
  must carry every feature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from sqlglot import exp

from hindsight.core.suggest import did_you_mean
from hindsight.offline_store.derived_partition import GRAINS, derived_partition_in, partition_values
from hindsight.offline_store.event_log import INGESTED_AT



class FeatureView(Protocol):
    """What this module reads of a push view: the registry's FeatureView has it (a higher layer, so
    not imported here)."""

    @property
    def name(self) -> str: ...
    @property
    def push(self) -> bool: ...
    @property
    def push_partial(self) -> bool: ...
    @property
    def delta_uri(self) -> str: ...
    @property
    def join_keys(self) -> tuple[str, ...]: ...
    @property
    def timestamp_field(self) -> str: ...
    @property
    def created_field(self) -> str | None: ...
    @property
    def features(self) -> tuple[Any, ...]: ...

#: The column marking pushed rows in a push view's Delta table: when the push was acknowledged.
PUSHED_AT = "_hs_pushed_at"
#: In a partial push's journal row: the features the row carries (the others are filled).
FEATURES_PRESENT = "_hs_features"

_COMMIT_ATTEMPTS = 5
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# Internal columns of the fill query; `_hs_` names cannot clash with features (codec.RESERVED_PREFIX).
_SIDE, _SEQ = "_hs_side", "_hs_seq"


class PushedRowsError(ValueError):
    """Pushed rows that do not fit the view's Delta table; nothing was written."""


def entry_id(row: Mapping[str, Any]) -> str:
    """The journal entry id of a pushed row: a digest of its content, so a retried push dedupes.

    `row` is the journal row (JSON-ready values); key order does not matter.

    >>> entry_id({"user_id": 1, "ts": "2026-01-01T00:00:00+00:00", "x": 1.5})
    'b5f778bb5fc993c9368ebd20ab68a011'
    """
    text = json.dumps(dict(row), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def append_pushed_rows(view: FeatureView, table: pa.Table, *, storage_options: dict[str, str] | None = None) -> int:
    """Append one batch of pushed rows to the view's Delta table, in one commit.

    Args:
        view: a push view of the registry.
        table: the rows: join keys, event time, optionally created time, the features they carry,
            optionally `_hs_features` (partial pushes: the features each row carries) and the push
            time as `_ingested_at` (the flusher's name) or `_hs_pushed_at`. Timestamps may be
            Arrow timestamps or ISO-8601 text (the journal's JSON), dates ISO text, decimals text.
        storage_options: deltalake storage options (object stores).

    Returns:
        Rows inserted or replaced (0 when every row was already there).

    Raises:
        PushedRowsError: the view takes no pushes, its table does not exist, or a column is
            unknown, missing or of a type the table cannot hold. Nothing is written then.
    """
    if not view.push:
        raise PushedRowsError(f"feature view {view.name!r} does not take pushed rows (config push is not true)")
    for attempt in range(_COMMIT_ATTEMPTS):
        delta = _open(view, storage_options)
        rows = prepare_rows(view, pa.schema(delta.schema().to_arrow()), table)
        if rows.num_rows == 0:
            return 0
        changed = _new_or_changed(view, delta, rows)
        if changed.num_rows == 0:
            return 0
        try:
            _merge(view, delta, changed)
            return changed.num_rows
        except CommitFailedError:
            # A dbt run or another writer committed in between: diff again against the new version.
            if attempt == _COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _open(view: FeatureView, storage_options: dict[str, str] | None) -> DeltaTable:
    try:
        return DeltaTable(view.delta_uri, storage_options=storage_options)
    except TableNotFoundError:
        raise PushedRowsError(
            f"feature view {view.name!r}: no Delta table at {view.delta_uri}; build it with "
            f"`dbt build --select {view.name}` before its pushed rows can be stored"
        ) from None


# ---------------------------------------------------------------------------------------------
# Rows as the table holds them
# ---------------------------------------------------------------------------------------------


def prepare_rows(view: FeatureView, schema: pa.Schema, table: pa.Table) -> pa.Table:
    """The batch in the table's schema, with a presence column per feature (`_hs_has:<name>`).

    Also derives the partition column (offline_store.derived_partition) and the created time (the push time where missing).

    Raises:
        PushedRowsError: unknown, missing or uncastable columns.
    """
    pushed_at_name = PUSHED_AT if PUSHED_AT in table.column_names else INGESTED_AT
    if pushed_at_name not in table.column_names:
        raise PushedRowsError(f"pushed rows for {view.name!r} lack their push time ({INGESTED_AT} or {PUSHED_AT})")
    known = set(schema.names) | {FEATURES_PRESENT, INGESTED_AT, PUSHED_AT}
    unknown = [c for c in table.column_names if c not in known]
    if unknown:
        raise PushedRowsError(
            f"pushed rows for {view.name!r}: column(s) {unknown} are not in its Delta table"
            f"{did_you_mean(unknown[0], schema.names)} (columns: {', '.join(schema.names)})"
        )
    required = [*view.join_keys, view.timestamp_field]
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise PushedRowsError(f"pushed rows for {view.name!r} lack column(s) {missing}")
    keys = set(view.join_keys) | {view.timestamp_field, PUSHED_AT}
    if view.created_field:
        keys.add(view.created_field)
    # Every column of the table that is neither a key, a time nor a derived partition: what a
    # push fills (partial) or must carry (whole rows).
    partition = derived_partition_in(schema.names)
    derived = {partition} if partition is not None and partition not in table.column_names else set()
    values = [n for n in schema.names if n not in keys and n not in derived]
    present = _presence(view, table, values)

    columns: dict[str, pa.Array] = {}
    n = table.num_rows
    pushed_at = _cast(view, pushed_at_name, table.column(pushed_at_name), pa.timestamp("us", tz="UTC"))
    for field in schema:
        if field.name == PUSHED_AT:
            columns[field.name] = pushed_at.cast(field.type)
        elif field.name in derived:
            ts = columns.get(view.timestamp_field)
            if ts is None:
                ts = _cast(view, view.timestamp_field, table.column(view.timestamp_field), pa.timestamp("us", tz="UTC"))
            columns[field.name] = partition_values(field.name, ts).cast(field.type)
        elif field.name in table.column_names:
            columns[field.name] = _cast(view, field.name, table.column(field.name), field.type)
        else:
            columns[field.name] = pa.nulls(n, field.type)
    if view.created_field and view.created_field in columns:
        created = columns[view.created_field]
        columns[view.created_field] = pc.if_else(pc.is_null(created), pushed_at.cast(created.type), created)
    for name in required:
        if columns[name].null_count:
            raise PushedRowsError(f"pushed rows for {view.name!r}: column {name} is null in {columns[name].null_count} row(s)")
    out = pa.table(columns)
    for name in values:
        out = out.append_column(_has(name), pa.array(present[name], pa.bool_()))
    return out


def _presence(view: FeatureView, table: pa.Table, values: Sequence[str]) -> dict[str, list[bool]]:
    """Which value columns each row carries: the journal's list for partial pushes, else its columns."""
    n = table.num_rows
    carried = {name: name in table.column_names for name in values}
    if view.push_partial and FEATURES_PRESENT in table.column_names:
        lists = table.column(FEATURES_PRESENT).to_pylist()
        return {
            name: [carried[name] if listed is None else (name in listed and carried[name]) for listed in lists]
            for name in values
        }
    if not view.push_partial:
        features = {f.name for f in view.features}
        lacking = [name for name in values if name in features and not carried[name]]
        if lacking:
            raise PushedRowsError(
                f"pushed rows for {view.name!r} lack feature(s) {lacking}; only a view with config "
                "push_partial=true takes rows with a subset of its features"
            )
    return {name: [carried[name]] * n for name in values}


def _has(name: str) -> str:
    return f"_hs_has:{name}"


def _cast(view: FeatureView, name: str, column: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.Array:
    """A column in the table's type; JSON text becomes timestamps, dates and decimals."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    try:
        if array.type.equals(target):
            return array
        if pa.types.is_timestamp(target) or pa.types.is_date(target) or pa.types.is_decimal(target):
            if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_null(array.type):
                return pa.array([_parse(v, target) for v in array.to_pylist()], target)
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError, ArithmeticError) as err:
        raise PushedRowsError(
            f"pushed rows for {view.name!r}: column {name} ({array.type}) does not fit the table's type {target}: {err}"
        ) from None


def _parse(value: Any, target: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_decimal(target):
        return Decimal(str(value))
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if pa.types.is_date(target):
        return parsed.date()
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------------------------
# Fill, dedupe, diff (DuckDB) and the MERGE (delta-rs)
# ---------------------------------------------------------------------------------------------


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _unique_key(view: FeatureView) -> list[str]:
    return [*view.join_keys, view.timestamp_field, *([view.created_field] if view.created_field else [])]


def _existing_rows(view: FeatureView, delta: DeltaTable, rows: pa.Table) -> Any:
    """The table's rows of the batch's entities up to the batch's newest event time (a dataset)."""
    dataset = delta.to_pyarrow_dataset()
    condition = pc.field(view.timestamp_field) <= pc.max(rows.column(view.timestamp_field))
    for key in view.join_keys:
        condition = condition & pc.field(key).isin(pc.unique(rows.column(key)))
    return dataset.filter(condition)


def _value_columns(rows: pa.Table, view: FeatureView) -> list[str]:
    fixed = {*_unique_key(view), PUSHED_AT}
    return [n for n in rows.column_names if not n.startswith("_hs_has:") and n not in fixed and n not in GRAINS]


def _new_or_changed(view: FeatureView, delta: DeltaTable, rows: pa.Table) -> pa.Table:
    """The batch rows to write: filled (partial views), last per unique key, new or changed."""
    names = [n for n in rows.column_names if not n.startswith("_hs_has:")]
    values = _value_columns(rows, view)
    key = _unique_key(view)
    batch = rows.append_column(_SEQ, pa.array(range(rows.num_rows), pa.int64()))
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("batch", batch)
        connection.register("existing", _existing_rows(view, delta, rows))
        query = _fill_query(view, names, values) if view.push_partial else _plain_query(names)
        latest = _last_per_key(query, names, key)
        result = connection.sql(_diff_query(latest, names, values, key).sql(dialect="duckdb")).to_arrow_table()
    finally:
        connection.close()
    schema = pa.schema([rows.schema.field(n) for n in names])
    return result.select(names).cast(schema)


def _plain_query(names: list[str]) -> exp.Select:
    """Whole rows: the batch as it is, with its order."""
    return exp.select(*(_col(n) for n in names), _col(_SEQ)).from_("batch")


def _fill_query(view: FeatureView, names: list[str], values: list[str]) -> exp.Select:
    """Partial rows: each value not carried is the entity's newest earlier row's.

    Table rows carry every value; so the filled value of a column is the one of the latest row (in
    (event time, created time, push time, batch order) order) that carries it: LAST_VALUE over a
    struct, IGNORE NULLS, which keeps a carried NULL apart from a value not carried.
    """
    existing = exp.select(
        *(_col(n) for n in names),
        *(exp.alias_(exp.true(), _has(v), quoted=True) for v in values),
        exp.alias_(exp.Literal.number(0), _SIDE, quoted=True),
        exp.alias_(exp.Literal.number(-1), _SEQ, quoted=True),
    ).from_("existing")
    incoming = exp.select(
        *(_col(n) for n in names),
        *(_col(_has(v)) for v in values),
        exp.alias_(exp.Literal.number(1), _SIDE, quoted=True),
        _col(_SEQ),
    ).from_("batch")
    order = [view.timestamp_field, *([view.created_field] if view.created_field else []), PUSHED_AT, _SIDE, _SEQ]
    window = {
        "partition_by": [_col(k) for k in view.join_keys],
        "order": exp.Order(expressions=[exp.Ordered(this=_col(c), nulls_first=True) for c in order]),
        "spec": exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"),
    }

    def filled(name: str) -> exp.Expression:
        carried = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier("v"), expression=_col(name))])
        when_carried = exp.Case(ifs=[exp.If(this=_col(_has(name)), true=carried)])
        last = exp.Window(this=exp.IgnoreNulls(this=exp.LastValue(this=when_carried)), **window)
        return exp.alias_(exp.func("struct_extract", last, exp.Literal.string("v")), name, quoted=True)

    both = exp.union(existing, incoming, distinct=False).subquery("u")
    select = [filled(n) if n in values else _col(n) for n in names]
    inner = exp.select(*select, _col(_SIDE), _col(_SEQ)).from_(both)
    return exp.select("*").from_(inner.subquery("f")).where(exp.EQ(this=_col(_SIDE), expression=exp.Literal.number(1)))


def _last_per_key(query: exp.Select, names: list[str], key: list[str]) -> exp.Select:
    """One row per unique key: the one pushed last (greatest push time, then batch order)."""
    rank = exp.Window(
        this=exp.func("row_number"),
        partition_by=[_col(k) for k in key],
        order=exp.Order(expressions=[exp.Ordered(this=_col(PUSHED_AT), desc=True), exp.Ordered(this=_col(_SEQ), desc=True)]),
    )
    ranked = exp.select(*(_col(n) for n in names), exp.alias_(rank, "_hs_rank", quoted=True)).from_(query.subquery("q"))
    return exp.select(*(_col(n) for n in names)).from_(ranked.subquery("r")).where(
        exp.EQ(this=_col("_hs_rank"), expression=exp.Literal.number(1))
    )


def _diff_query(latest: exp.Select, names: list[str], values: list[str], key: list[str]) -> exp.Select:
    """Rows whose key is new, or whose values differ from a row they may replace.

    A row replaces a computed row (push wins a tie) or an older push; a replayed row older than
    the push it would replace is dropped.
    """
    on = exp.and_(*(exp.EQ(this=_col(k, "t"), expression=_col(k, "s")) for k in key))
    differs = [exp.NullSafeNEQ(this=_col(v, "t"), expression=_col(v, "s")) for v in values]
    newer = exp.or_(
        exp.Is(this=_col(PUSHED_AT, "t"), expression=exp.null()),
        exp.GTE(this=_col(PUSHED_AT, "s"), expression=_col(PUSHED_AT, "t")),
    )
    new_key = exp.Is(this=_col(key[0], "t"), expression=exp.null())
    changed = exp.and_(exp.paren(exp.or_(*differs)) if differs else exp.false(), exp.paren(newer))
    return (
        exp.select(*(_col(n, "s") for n in names))
        .from_(latest.subquery("s"))
        .join(exp.to_table("existing").as_("t"), on=on, join_type="left")
        .where(exp.or_(new_key, changed))
    )


def _merge(view: FeatureView, delta: DeltaTable, rows: pa.Table) -> None:
    key = _unique_key(view)
    predicate = exp.and_(*(exp.EQ(this=_col(k, "t"), expression=_col(k, "s")) for k in key), *_pruning(rows))
    delta.merge(
        source=rows,
        predicate=predicate.sql(dialect="postgres"),
        source_alias="s",
        target_alias="t",
        streamed_exec=False,
        commit_properties=CommitProperties(custom_metadata={"hindsight_mode": "push", "hindsight_rows": str(rows.num_rows)}),
    ).when_matched_update_all().when_not_matched_insert_all().execute()


def _pruning(rows: pa.Table) -> list[exp.Expression]:
    """Restrict the MERGE's target scan to the derived partitions of the batch's event times."""
    partition = derived_partition_in(rows.column_names)
    if partition is None:
        return []
    low, high = pc.min(rows.column(partition)).as_py(), pc.max(rows.column(partition)).as_py()
    date = exp.DataType.build("date")
    return [exp.Between(this=_col(partition, "t"), low=exp.cast(exp.Literal.string(low.isoformat()), date),
                        high=exp.cast(exp.Literal.string(high.isoformat()), date))]
