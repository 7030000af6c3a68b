"""Write one feature view's rows to its Delta table, in one Delta commit per dbt run.

Modes, as the `feature_view` materialization chooses them:
- `full_refresh`: replace the whole table (schema included) atomically.
- `incremental`: MERGE on the unique key (entities, timestamp[, created]) of only the rows that are
  new or changed (diffed in DuckDB first), so re-running changes nothing and writes no new version,
  and the change data feed records exactly what changed.
- `backfill`: replace exactly the rows whose timestamp lies in [start, end) (delta-rs's
  overwrite-with-predicate, Spark's replaceWhere), in one commit.

A push view's pushed rows (column `pushed_column` set, see `offline_store.pushed_rows`) survive
every mode: a full refresh writes them back in the same commit (projected onto the new schema),
the MERGE never updates them and a backfill never replaces them; a computed row with the same
unique key as a pushed row is not written (the push wins, as online). `drop_pushed_rows` lets one
full refresh drop them.

Before any of them, the breaking-change gate: a write that would remove or retype a feature an
applied feature service uses, or change the view's join keys, is refused (contracts written by
`hindsight apply`, see `offline_store.contracts`) unless the request allows it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from hindsight.core.delta_paths import delta_path_problem
from hindsight.offline_store.contracts import Breach, breaches, contracts_path, read_contract
from hindsight.offline_store.derived_partition import GRAINS, partition_values
from hindsight.offline_store.tables import partitioning_mismatch
from hindsight.offline_store.uris import absolute_uri

MODES = ("full_refresh", "incremental", "backfill")
SCHEMA_CHANGE_POLICIES = ("fail", "append_new_columns")

#: Table properties of every feature view table: online sync reads the change data feed.
TABLE_CONFIGURATION = {"delta.enableChangeDataFeed": "true"}


class FeatureViewWriteError(RuntimeError):
    """A write that was refused; the table is left as it was."""


@dataclass(frozen=True)
class WriteRequest:
    """What the materialization asks for; built from the dict the Jinja side passes."""

    #: dbt model name, for messages and commit metadata.
    model: str
    #: Delta table location: a local path or a URI deltalake accepts.
    uri: str
    #: One of MODES.
    mode: str
    #: Columns that identify a row: entities, timestamp and, if declared, created time.
    unique_key: tuple[str, ...]
    timestamp_field: str
    partition_by: tuple[str, ...] = ()
    #: Backfill range [start, end) as ISO timestamps (UTC).
    range_start: str | None = None
    range_end: str | None = None
    on_schema_change: str = "fail"
    #: Floats closer than this (relative) count as unchanged; the materialization sets it
    #: (macros/materializations/feature_view/feature_view_config.sql says why).
    float_tolerance: float = 0.0
    #: Recorded in the Delta commit (dbt invocation id, model id, mode).
    commit_metadata: dict[str, str] = field(default_factory=dict)
    storage_options: dict[str, str] | None = None
    #: The view's join-key columns (entities), in config order.
    entities: tuple[str, ...] = ()
    #: The registry folder holding contracts.jsonl; None: no breaking-change gate.
    registry: str | None = None
    #: Write even if the change breaks what applied feature services use (var hindsight_allow_breaking).
    allow_breaking: bool = False
    #: Push views: the column marking pushed rows, which every write keeps. None: not a push view.
    pushed_column: str | None = None
    #: A full refresh that drops the pushed rows (var hindsight_drop_pushed_rows).
    drop_pushed_rows: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WriteRequest:
        mode = config.get("mode")
        if mode not in MODES:
            raise FeatureViewWriteError(f"unknown write mode {mode!r}; expected one of {MODES}")
        policy = config.get("on_schema_change") or "fail"
        if policy not in SCHEMA_CHANGE_POLICIES:
            raise FeatureViewWriteError(
                f"feature view {config.get('model')}: on_schema_change={policy!r} is not one of "
                f"{SCHEMA_CHANGE_POLICIES}"
            )
        return cls(
            model=config["model"],
            uri=absolute_uri(config["uri"]),
            mode=mode,
            unique_key=tuple(config["unique_key"]),
            timestamp_field=config["timestamp_field"],
            partition_by=tuple(config.get("partition_by") or ()),
            range_start=config.get("range_start"),
            range_end=config.get("range_end"),
            on_schema_change=policy,
            float_tolerance=float(config["float_tolerance"]),
            commit_metadata={k: str(v) for k, v in (config.get("commit_metadata") or {}).items()},
            storage_options=config.get("storage_options") or None,
            entities=tuple(config.get("entities") or ()),
            registry=config.get("registry") or None,
            allow_breaking=str(config.get("allow_breaking")).lower() == "true",
            pushed_column=config.get("pushed_column") or None,
            drop_pushed_rows=str(config.get("drop_pushed_rows")).lower() == "true",
        )


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the table version after it (None if nothing was committed)."""

    version: int | None
    rows_written: int
    committed: bool
    #: Breaking changes written anyway because the request allowed them.
    allowed_breaches: tuple[str, ...] = ()
    #: Things the user should know, e.g. new columns left NULL in older rows and how to fill them.
    notices: tuple[str, ...] = ()


def write_feature_view(data: pa.RecordBatchReader | pa.Table, request: WriteRequest) -> WriteResult:
    """Write `data` to the request's Delta table in a single commit.

    Raises:
        FeatureViewWriteError: on a local location delta-rs cannot open (hindsight.core.delta_paths),
            a schema change the policy refuses, a change that breaks what an
            applied feature service uses, or a backfill row outside its range; nothing is
            committed then.
    """
    if problem := delta_path_problem(request.uri, f"{request.model}'s location", "its config (location or location_root)"):
        raise FeatureViewWriteError(problem)
    table = _open(request)
    _check_partitioning(table, request)
    data = _as_reader(data)
    data = _normalize_schema(data)
    allowed = _check_contract(data.schema, table, request)
    result = _write(data, table, request)
    return dataclasses.replace(result, allowed_breaches=tuple(str(b) for b in allowed))


def _write(data: pa.RecordBatchReader, table: DeltaTable | None, request: WriteRequest) -> WriteResult:
    commit = CommitProperties(custom_metadata=request.commit_metadata)
    if request.mode == "full_refresh" and _keeps_pushed_rows(table, request):
        assert table is not None
        return _replace_keeping_pushed_rows(data, table, request, commit)
    if request.mode == "full_refresh" or table is None:
        write_deltalake(
            request.uri,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(request.partition_by) or None,
            configuration=TABLE_CONFIGURATION,
            storage_options=request.storage_options,
            commit_properties=commit,
        )
        return _result(request, None)
    data, schema_mode = _reconcile_schema(data, table, request)
    if _keeps_pushed_rows(table, request):
        # Computed rows never take the key of a pushed row: the push wins, as online.
        data = _without_pushed_keys(data, table, request, _range_filter(request))
    notice = None
    if schema_mode == "merge":
        # New columns: read what they leave NULL before the write, say it after (and how to fill it).
        batch = data.read_all()
        notice = _new_columns_notice(table, batch, request)
        data = batch.to_reader()
    if request.mode == "incremental":
        result = _merge(table, data, request, commit, schema_mode)
    else:
        result = _replace_range(data, request, commit, schema_mode, table.version())
    if notice and result.committed:
        result = dataclasses.replace(result, notices=(notice,))
    return result


def _check_partitioning(table: DeltaTable | None, request: WriteRequest) -> None:
    """Refuse to write into a table partitioned otherwise than `partition_by` says, short of a full refresh.

    Only a full refresh rewrites a table's partitioning; any other write would keep the old one
    while the model's config says another.
    """
    if table is None or request.mode == "full_refresh":
        return
    problem = partitioning_mismatch(request.model, list(table.metadata().partition_columns), list(request.partition_by))
    if problem is not None:
        raise FeatureViewWriteError(f"feature view {request.model}: {problem}")


def _check_contract(incoming: pa.Schema, table: DeltaTable | None, request: WriteRequest) -> list[Breach]:
    """Refuse a write that breaks what applied feature services use; returns breaches allowed anyway.

    Only what this write changes counts: a breach the table already has (written with
    hindsight_allow_breaking, not yet applied) does not block later runs.
    """
    if request.registry is None:
        return []
    try:
        contract = read_contract(contracts_path(request.registry), request.model)
    except ValueError as error:
        raise FeatureViewWriteError(f"feature view {request.model}: cannot read the breaking-change contracts: {error}") from error
    if contract is None:
        return []
    keys = request.entities or tuple(contract.join_keys)
    after = _schema_after_write(incoming, table, request)
    found = breaches(contract, after, keys)
    if table is not None:
        before = {(b.column, b.kind, b.new) for b in breaches(contract, pa.schema(table.schema().to_arrow()), tuple(contract.join_keys))}
        found = [b for b in found if (b.column, b.kind, b.new) not in before]
    if not found or request.allow_breaking:
        return found
    version = "" if table is None else f" (version {table.version()})"
    raise FeatureViewWriteError(
        f"feature view {request.model}: refusing a breaking change: {'; '.join(str(b) for b in found)}. "
        f"The Delta table was not changed{version}. To make the change anyway: dbt run --select "
        f"{request.model} --full-refresh --vars '{{\"hindsight_allow_breaking\": true}}', then "
        "`hindsight apply --allow-breaking` so the services' contracts follow."
    )


def _schema_after_write(incoming: pa.Schema, table: DeltaTable | None, request: WriteRequest) -> pa.Schema:
    """The table's schema once this write is committed (incremental writes keep compatible types)."""
    if table is None or request.mode == "full_refresh":
        return incoming
    existing = pa.schema(table.schema().to_arrow())
    return pa.schema(
        [
            existing.field(f.name) if f.name in existing.names and _compatible(f.type, existing.field(f.name).type) else f
            for f in incoming
        ]
    )


def _open(request: WriteRequest) -> DeltaTable | None:
    try:
        return DeltaTable(request.uri, storage_options=request.storage_options)
    except TableNotFoundError:
        return None


def _as_reader(data: pa.RecordBatchReader | pa.Table) -> pa.RecordBatchReader:
    if isinstance(data, pa.Table):
        return data.to_reader()
    return data


def _normalize_schema(data: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Timestamps become UTC-aware microseconds: Delta's `timestamp` type, readable by every engine."""
    fields = [_normalized_field(f) for f in data.schema]
    target = pa.schema(fields, metadata=data.schema.metadata)
    if target.equals(data.schema):
        return data
    return pa.RecordBatchReader.from_batches(target, (b.cast(target) for b in data))


def _normalized_field(f: pa.Field) -> pa.Field:
    if pa.types.is_timestamp(f.type):
        return f.with_type(pa.timestamp("us", tz="UTC"))
    # DuckDB sums integers into HUGEINT, exported as decimal(38, 0); a checked cast to int64 keeps
    # counts and integer sums integers in Delta (and raises rather than wraps on overflow).
    if pa.types.is_decimal(f.type) and f.type.scale == 0 and f.type.precision > 18:
        return f.with_type(pa.int64())
    return f


def _reconcile_schema(
    data: pa.RecordBatchReader, table: DeltaTable, request: WriteRequest
) -> tuple[pa.RecordBatchReader, str | None]:
    """Check the incoming columns against the table's; cast where types merely widen."""
    existing = pa.schema(table.schema().to_arrow())
    incoming = data.schema
    added = [n for n in incoming.names if n not in existing.names]
    removed = [n for n in existing.names if n not in incoming.names]
    changed = [
        f"{n} ({existing.field(n).type} -> {incoming.field(n).type})"
        for n in incoming.names
        if n in existing.names and not _compatible(incoming.field(n).type, existing.field(n).type)
    ]
    problems = []
    if changed:
        problems.append("changed type: " + ", ".join(changed))
    if removed:
        problems.append("removed: " + ", ".join(removed))
    # A view that starts taking pushes gains the pushed-rows column (NULL on its computed rows).
    unexpected = [n for n in added if n != request.pushed_column]
    if unexpected and request.on_schema_change != "append_new_columns":
        problems.append("added: " + ", ".join(unexpected))
    if problems:
        raise FeatureViewWriteError(
            f"feature view {request.model}: the model's columns no longer match its Delta table "
            f"({'; '.join(problems)}). The table was not changed. Rebuild it with "
            f"`dbt run --select {request.model} --full-refresh`"
            + ("" if removed or changed else ", or set on_schema_change='append_new_columns'")
            + "."
        )
    target = pa.schema(
        [existing.field(n) if n in existing.names else incoming.field(n) for n in incoming.names]
    )
    if not target.equals(incoming):
        data = pa.RecordBatchReader.from_batches(target, (b.cast(target) for b in data))
    return data, ("merge" if added else None)


def _new_columns_notice(table: DeltaTable, batch: pa.Table, request: WriteRequest) -> str | None:
    """How many rows this write leaves without the new columns, and the backfill that fills them.

    Those are the table's rows that the write does not rewrite: every row whose key is not in
    `batch` (and, for a backfill, outside its range).
    """
    existing = pa.schema(table.schema().to_arrow())
    added = [n for n in batch.schema.names if n not in existing.names and n != request.pushed_column]
    if not added:
        return None
    ts = _col(request.timestamp_field, "t")
    on = [_col(c, "t").eq(_col(c, "s")) for c in request.unique_key]
    untouched = exp.not_(exp.Exists(this=exp.select("1").from_(exp.to_table("incoming").as_("s")).where(exp.and_(*on))))
    if request.mode == "backfill":
        outside = exp.or_(ts.copy() < _duckdb_timestamp(request.range_start), ts.copy() >= _duckdb_timestamp(request.range_end))
        untouched = exp.and_(untouched, outside)
    query = exp.select(exp.func("count", exp.Star()), exp.func("min", ts.copy()), exp.func("max", ts.copy())).from_(
        exp.to_table("existing").as_("t")
    ).where(untouched)
    connection = duckdb.connect()
    try:
        # Naive range bounds and the printed times are UTC, as everywhere in Hindsight.
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("incoming", batch.select(list(request.unique_key)))
        connection.register("existing", table.to_pyarrow_dataset())
        found = connection.sql(query.sql(dialect="duckdb")).fetchone()
        assert found is not None  # an aggregate without GROUP BY always returns one row
        rows, first, last = found
    finally:
        connection.close()
    if not rows:
        return None
    start = first.date().isoformat()
    end = (last.date() + dt.timedelta(days=1)).isoformat()
    variables = f'{{"backfill_start": "{start}", "backfill_end": "{end}"}}'
    return (
        f"{request.model}: new column(s) {', '.join(added)} are NULL in {rows} historical rows "
        f"(event times {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S}); fill them with: "
        f"dbt run --select {request.model} --vars '{variables}'"
    )


def _duckdb_timestamp(value: str | None) -> exp.Expression:
    return exp.cast(exp.Literal.string(_iso(str(value))), exp.DataType.build("timestamptz"))


def _compatible(incoming: pa.DataType, existing: pa.DataType) -> bool:
    """Whether a column may change from `existing` to `incoming` by a cast (the Spark path's
    `_spark_type_compatible` agrees on the pairs in tests/cases/schema_changes.yml)."""
    if incoming.equals(existing):
        return True
    widening = (pa.types.is_integer, pa.types.is_floating, pa.types.is_timestamp, pa.types.is_string, pa.types.is_large_string)
    return any(check(incoming) and check(existing) for check in widening) or (
        pa.types.is_integer(incoming) and pa.types.is_floating(existing)
    )


def _merge(
    table: DeltaTable,
    data: pa.RecordBatchReader,
    request: WriteRequest,
    commit: CommitProperties,
    schema_mode: str | None,
) -> WriteResult:
    before = table.version()
    batch = data.read_all()
    if schema_mode != "merge":
        # Only new or changed rows go to the MERGE: delta-rs evaluates a per-row "changed"
        # predicate very slowly (20 s for 300k rows here), DuckDB diffs them in well under one.
        batch = _new_or_changed_rows(table, batch, request)
    if batch.num_rows == 0:
        return WriteResult(version=before, rows_written=0, committed=False)
    key = [_col(c, "t").eq(_col(c, "s")) for c in request.unique_key]
    merger = table.merge(
        source=batch,
        predicate=_render(exp.and_(*key, *_partition_pruning(batch, request))),
        source_alias="s",
        target_alias="t",
        merge_schema=schema_mode == "merge",
        # A materialized source lets delta-rs prune target files by the source's key statistics
        # (new rows cover a few days of event time); the streamed default scans every file.
        streamed_exec=False,
        commit_properties=commit,
    )
    # A pushed row is never updated by the model's (the same key was dropped above; this guards the rest).
    keep = None
    if request.pushed_column is not None and _keeps_pushed_rows(table, request):
        keep = _render(exp.Is(this=_col(request.pushed_column, "t"), expression=exp.null()))
    metrics = merger.when_matched_update_all(predicate=keep).when_not_matched_insert_all().execute()
    written = int(metrics.get("num_target_rows_inserted", 0)) + int(metrics.get("num_target_rows_updated", 0))
    table.update_incremental()
    return WriteResult(version=table.version(), rows_written=written, committed=table.version() != before)


def _new_or_changed_rows(table: DeltaTable, batch: pa.Table, request: WriteRequest) -> pa.Table:
    """The rows of `batch` whose key is new, or whose values differ from the table's."""
    if batch.num_rows == 0:
        return batch
    existing = table.to_pyarrow_dataset()
    partitions = _partition_filter(batch, request)
    if partitions is not None:
        existing = existing.filter(partitions)
    on = [_col(c, "t").eq(_col(c, "s")) for c in request.unique_key]
    changed = [
        exp.paren(_value_changed(f, request.float_tolerance)) for f in batch.schema if f.name not in request.unique_key
    ]
    query = (
        exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("s")))
        .from_(exp.to_table("incoming").as_("s"))
        .join(exp.to_table("existing").as_("t"), on=exp.and_(*on), join_type="left")
        .where(exp.or_(exp.column(request.unique_key[0], "t", quoted=True).is_(exp.null()), *changed))
    )
    connection = duckdb.connect()
    try:
        connection.register("incoming", batch)
        connection.register("existing", existing)
        return connection.sql(query.sql(dialect="duckdb")).to_arrow_table().cast(batch.schema)
    finally:
        connection.close()


def _partition_filter(batch: pa.Table, request: WriteRequest) -> pc.Expression | None:
    """A pyarrow filter on the partitions the batch's rows fall in."""
    condition = None
    for column in request.partition_by:
        values = batch.column(column)
        low, high = pc.min(values).as_py(), pc.max(values).as_py()
        if low is None:
            continue
        clause = (pc.field(column) >= low) & (pc.field(column) <= high)
        condition = clause if condition is None else condition & clause
    return condition


def _value_changed(field: pa.Field, tolerance: float) -> exp.Expression:
    """`t.c` and `s.c` differ: NULL-safe, and beyond `tolerance` (relative) for floating-point columns."""
    target, source = _col(field.name, "t"), _col(field.name, "s")
    distinct = exp.NullSafeNEQ(this=target, expression=source)
    if not pa.types.is_floating(field.type):
        return distinct
    close = exp.LTE(
        this=exp.Abs(this=exp.Sub(this=target.copy(), expression=source.copy())),
        expression=exp.Mul(
            this=exp.Literal.number(tolerance),
            expression=exp.Greatest(this=exp.Abs(this=target.copy()), expressions=[exp.Abs(this=source.copy())]),
        ),
    )
    return exp.and_(exp.paren(distinct), exp.not_(exp.Coalesce(this=close, expressions=[exp.false()])))


def _partition_pruning(batch: pa.Table, request: WriteRequest) -> list[exp.Expression]:
    """Restrict the MERGE's target scan to the partitions the new rows fall in."""
    clauses: list[exp.Expression] = []
    for column in request.partition_by:
        values = batch.column(column)
        if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type) or pa.types.is_integer(values.type):
            low, high = pc.min(values).as_py(), pc.max(values).as_py()
            if low is not None:
                clauses.append(exp.Between(this=_col(column, "t"), low=_literal(low), high=_literal(high)))
    return clauses


def _replace_range(
    data: pa.RecordBatchReader,
    request: WriteRequest,
    commit: CommitProperties,
    schema_mode: str | None,
    before: int,
) -> WriteResult:
    if not (request.range_start and request.range_end):
        raise FeatureViewWriteError(f"feature view {request.model}: a backfill needs both range_start and range_end")
    ts = _col(request.timestamp_field)
    in_range = exp.and_(ts.copy() >= _timestamp(request.range_start), ts.copy() < _timestamp(request.range_end))
    if request.pushed_column and _has_column(request, request.pushed_column):
        # The range's pushed rows stay: only computed rows are replaced.
        in_range = exp.and_(in_range, exp.Is(this=_col(request.pushed_column), expression=exp.null()))
    predicate = _render(in_range)
    batch = data.read_all()
    if batch.num_rows == 0 and not _has_rows_between(request):
        return WriteResult(version=before, rows_written=0, committed=False)
    write_deltalake(
        request.uri,
        batch,
        mode="overwrite",
        predicate=predicate,
        schema_mode=schema_mode,
        partition_by=list(request.partition_by) or None,
        storage_options=request.storage_options,
        commit_properties=commit,
    )
    return _result(request, before, rows=batch.num_rows)


def _has_rows_between(request: WriteRequest) -> bool:
    """Whether the table holds any row whose timestamp lies in the backfill range."""
    table = DeltaTable(request.uri, storage_options=request.storage_options)
    column = pc.field(request.timestamp_field)
    start, end = (dt.datetime.fromisoformat(_iso(v)).replace(tzinfo=dt.timezone.utc) for v in (request.range_start, request.range_end))
    rows = table.to_pyarrow_dataset().filter((column >= start) & (column < end))
    return rows.head(1, columns=[request.timestamp_field]).num_rows > 0


def _result(request: WriteRequest, before: int | None, rows: int | None = None) -> WriteResult:
    table = DeltaTable(request.uri, storage_options=request.storage_options)
    version = table.version()
    if rows is None:
        metrics = table.history(1)[0].get("operationMetrics") or {}
        rows = int(metrics.get("num_added_rows", 0))
    return WriteResult(version=version, rows_written=rows, committed=version != before)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _render(expression: exp.Expression) -> str:
    """delta-rs parses predicates with DataFusion, whose SQL follows PostgreSQL's."""
    return expression.sql(dialect="postgres")


def _timestamp(value: Any) -> exp.Expression:
    # A bare RFC 3339 string: DataFusion coerces it to the column's timestamp(us, UTC), whereas
    # CAST(... AS TIMESTAMP) yields nanoseconds that it then refuses to compare.
    text = _iso(value.isoformat() if isinstance(value, dt.datetime) else str(value))
    return exp.Literal.string(text.replace(" ", "T") + "Z")


def _iso(value: object) -> str:
    parsed = dt.datetime.fromisoformat(str(value))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed.isoformat(sep=" ")


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, dt.datetime):
        return _timestamp(value)
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("date"))
    return exp.Literal.number(int(value))


# ---------------------------------------------------------------------------------------------
# Push views: pushed rows survive every write (offline_store.pushed_rows appends them)
# ---------------------------------------------------------------------------------------------


def _keeps_pushed_rows(table: DeltaTable | None, request: WriteRequest) -> bool:
    """Whether this write must keep pushed rows: a push view whose existing table marks some."""
    if table is None or request.pushed_column is None or request.drop_pushed_rows:
        return False
    return request.pushed_column in pa.schema(table.schema().to_arrow()).names


def _has_column(request: WriteRequest, name: str) -> bool:
    table = DeltaTable(request.uri, storage_options=request.storage_options)
    return name in pa.schema(table.schema().to_arrow()).names


def _pushed_rows(table: DeltaTable, request: WriteRequest, where: pc.Expression | None = None) -> Any:
    """The table's pushed rows (a dataset), optionally only those matching `where`."""
    assert request.pushed_column is not None
    condition = pc.field(request.pushed_column).is_valid()
    return table.to_pyarrow_dataset().filter(condition if where is None else condition & where)


def _range_filter(request: WriteRequest) -> pc.Expression | None:
    """A backfill's range [start, end) as a dataset filter; None for other modes."""
    if request.mode != "backfill" or not (request.range_start and request.range_end):
        return None
    start, end = (dt.datetime.fromisoformat(_iso(v)).replace(tzinfo=dt.timezone.utc) for v in (request.range_start, request.range_end))
    column = pc.field(request.timestamp_field)
    return (column >= start) & (column < end)


def _without_pushed_keys(data: pa.RecordBatchReader, table: DeltaTable, request: WriteRequest,
                         where: pc.Expression | None = None) -> pa.RecordBatchReader:
    """`data` without the rows whose unique key a pushed row of the table holds."""
    pushed = _pushed_rows(table, request, where).to_table(columns=list(request.unique_key))
    if pushed.num_rows == 0:
        return data
    batch = data.read_all()
    on = [_col(c, "p").eq(_col(c, "s")) for c in request.unique_key]
    pushed_key = exp.select("1").from_(exp.to_table("pushed").as_("p")).where(exp.and_(*on))
    query = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("s"))).from_(
        exp.to_table("incoming").as_("s")).where(exp.not_(exp.Exists(this=pushed_key)))
    connection = duckdb.connect()
    try:
        connection.register("incoming", batch)
        connection.register("pushed", pushed)
        kept = connection.sql(query.sql(dialect="duckdb")).to_arrow_table().cast(batch.schema)
    finally:
        connection.close()
    return kept.to_reader()


def _project(pushed: pa.Table, schema: pa.Schema, request: WriteRequest) -> pa.Table:
    """Pushed rows in the schema the full refresh writes: dropped columns go, new ones are NULL.

    The derived partition is derived again: the full refresh may have chosen another grain.
    """
    columns = []
    for target in schema:
        if target.name in GRAINS and target.name in request.partition_by:
            columns.append(partition_values(target.name, pushed.column(request.timestamp_field)).cast(target.type))
            continue
        if target.name not in pushed.column_names:
            columns.append(pa.nulls(pushed.num_rows, target.type))
            continue
        try:
            columns.append(pushed.column(target.name).cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise FeatureViewWriteError(
                f"feature view {request.model}: the full refresh changes column {target.name} to {target.type}, which its "
                f"{pushed.num_rows} pushed rows cannot take ({err}). The table was not changed. Drop the pushed rows "
                f"with `dbt run --select {request.model} --full-refresh --vars '{{\"hindsight_drop_pushed_rows\": true}}'`, "
                "or keep the column's type."
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def _replace_keeping_pushed_rows(data: pa.RecordBatchReader, table: DeltaTable, request: WriteRequest,
                                 commit: CommitProperties) -> WriteResult:
    """A full refresh of a push view: the computed rows replaced, the pushed rows written back, one commit.

    The write goes through `table`, pinned at the version the pushed rows were read from, so a
    push appended in between makes the commit fail (and the dbt run with it) instead of being lost.
    """
    before = table.version()
    pushed = _project(_pushed_rows(table, request).to_table(), data.schema, request)
    data = _without_pushed_keys(data, table, request)
    batches = pa.RecordBatchReader.from_batches(data.schema, _chain(data, pushed.to_batches()))
    write_deltalake(
        table,
        batches,
        mode="overwrite",
        schema_mode="overwrite",
        partition_by=list(request.partition_by) or None,
        configuration=TABLE_CONFIGURATION,
        storage_options=request.storage_options,
        commit_properties=commit,
    )
    result = _result(request, before)
    notice = f"{request.model}: kept {pushed.num_rows} pushed row(s)" if pushed.num_rows else None
    return dataclasses.replace(result, notices=(notice,) if notice else ())


def _chain(reader: pa.RecordBatchReader, more: list[pa.RecordBatch]) -> Any:
    yield from reader
    yield from more
