"""Writing acknowledged events into a stream source's event log (the flusher's offline half).

The flusher (`streams.flush`) hands a batch of journal entries here; they become ONE Delta commit:
a MERGE on the event id that only inserts rows whose id the log does not hold yet. So a batch
written twice (a flusher killed between the commit and marking its entries flushed, then run
again) adds nothing the second time: the event log holds every event exactly once.

The MERGE's target scan is restricted to the `_event_date` partitions the batch falls in (an event
id is unique, and an event's date never changes, so a duplicate can only sit in its own date's
partition): a flush reads the days it writes, not the whole log. Each flush adds a small file to
today's partition, and a MERGE reads every file of its partitions (measured: 30 ms per commit of
100 events with 20 files there, 165 ms with 270), so a partition that passes
COMPACT_AFTER_FILES files is compacted right after the commit (a Delta OPTIMIZE: a second commit
that changes no data; `hindsight vacuum` later deletes the replaced files).

Layout and schema are `offline_store.event_log`'s; this module converts journal rows (JSON
values: timestamps and dates as ISO-8601 text, decimals as text or numbers) to that schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from sqlglot import exp

from hindsight.offline_store.event_log import EVENT_DATE, INGESTED_AT, ensure_event_log, event_log_schema

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: Files a date partition may hold before a flush compacts it.
COMPACT_AFTER_FILES = 32


@dataclass(frozen=True)
class EventLogWrite:
    """What one batch did to an event log."""

    #: Rows in the batch (after dropping ids repeated inside it).
    rows: int
    #: Rows the MERGE inserted: events the log did not hold.
    inserted: int
    #: The Delta version after the write (unchanged when nothing was inserted and nothing committed).
    version: int
    #: Whether a Delta commit was made.
    committed: bool
    #: Date partitions compacted after the commit (each one more, data-neutral, commit).
    compacted: int = 0

    @property
    def already_present(self) -> int:
        """Rows whose event id the log already held (a batch written again after a crash)."""
        return self.rows - self.inserted


class EventRowError(ValueError):
    """A journal row that does not fit the event log's schema (names the column and the row)."""


def _timestamp(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, (int, float)):  # epoch microseconds
        return _EPOCH + dt.timedelta(microseconds=int(value))
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _converter(kind: pa.DataType) -> Any:
    if pa.types.is_timestamp(kind):
        return _timestamp
    if pa.types.is_date(kind):
        return _date
    if pa.types.is_decimal(kind):
        return _decimal
    if pa.types.is_floating(kind):
        return _float
    return None


def events_table(stream: Any, rows: Sequence[dict[str, Any]], ingested_us: Sequence[int]) -> pa.Table:
    """Journal rows (one dict per event) as an Arrow table with the event log's schema.

    `_ingested_at` comes from `ingested_us` (the journal's sequence time, epoch microseconds) and
    `_event_date` is the UTC date of the event time. Columns a row lacks are null.

    Raises:
        EventRowError: a value that cannot be read as its column's type.
    """
    schema = event_log_schema(stream)
    declared = [f for f in schema if f.name not in (INGESTED_AT, EVENT_DATE)]
    columns: dict[str, list[Any]] = {}
    for field in declared:
        convert = _converter(field.type)
        values = [row.get(field.name) for row in rows]
        if convert is not None:
            try:
                values = [convert(v) for v in values]
            except (TypeError, ValueError, ArithmeticError) as err:
                bad = next(i for i, v in enumerate(values) if _fails(convert, v))
                raise EventRowError(
                    f"event log of {stream.name}: column {field.name!r} of row {bad} holds {values[bad]!r}, "
                    f"not a {field.type} ({err})"
                ) from err
        columns[field.name] = values
    times = columns[stream.timestamp_field]
    columns[INGESTED_AT] = [_EPOCH + dt.timedelta(microseconds=int(us)) for us in ingested_us]
    columns[EVENT_DATE] = [None if t is None else t.astimezone(dt.timezone.utc).date() for t in times]
    try:
        return pa.Table.from_pydict(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
        raise EventRowError(f"event log of {stream.name}: {err}") from err


def _fails(convert: Any, value: Any) -> bool:
    try:
        convert(value)
    except (TypeError, ValueError, ArithmeticError):
        return True
    return False


def _col(name: str, table: str) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def merge_predicate(event_id: str, dates: Sequence[dt.date]) -> str:
    """The MERGE's join: same event id, same date, and only the batch's date partitions.

    delta-rs parses it with DataFusion, whose SQL follows PostgreSQL's.

    >>> merge_predicate("txn_id", [dt.date(2026, 11, 30)])
    '"t"."txn_id" = "s"."txn_id" AND "t"."_event_date" = "s"."_event_date" AND "t"."_event_date" IN (CAST(\\'2026-11-30\\' AS DATE))'
    """
    same_id = _col(event_id, "t").eq(_col(event_id, "s"))
    same_date = _col(EVENT_DATE, "t").eq(_col(EVENT_DATE, "s"))
    literals = [exp.cast(exp.Literal.string(d.isoformat()), exp.DataType.build("date")) for d in sorted(set(dates))]
    in_batch = exp.In(this=_col(EVENT_DATE, "t"), expressions=literals)
    return exp.and_(same_id, same_date, in_batch).sql(dialect="postgres")


def write_events(
    stream: Any,
    batch: pa.Table,
    *,
    storage_options: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> EventLogWrite:
    """Insert the batch's events the event log lacks, in one Delta commit (creating the log if missing).

    Args:
        stream: the registry StreamSource (its `delta_uri`, `event_id_field`, columns).
        batch: rows with the event log's schema (`events_table`).
        storage_options: deltalake storage options (object stores).
        metadata: extra commit metadata (the flusher records its target and entry count).

    Returns:
        What was inserted and the Delta version after.
    """
    uri = stream.delta_uri
    ensure_event_log(uri, event_log_schema(stream), storage_options)
    table = DeltaTable(uri, storage_options=storage_options)
    before = table.version()
    batch = _first_per_event_id(batch, stream.event_id_field)
    if batch.num_rows == 0:
        return EventLogWrite(0, 0, before, False)
    dates = [d for d in pc.unique(batch.column(EVENT_DATE)).to_pylist() if d is not None]
    merger = table.merge(
        source=batch,
        predicate=merge_predicate(stream.event_id_field, dates),
        source_alias="s",
        target_alias="t",
        # Materialized, so delta-rs prunes target files by the batch's partition values.
        streamed_exec=False,
        commit_properties=CommitProperties(custom_metadata={"hindsight.operation": "stream flush", **(metadata or {})}),
    )
    metrics = merger.when_not_matched_insert_all().execute()
    inserted = int(metrics.get("num_target_rows_inserted", 0))
    table.update_incremental()
    version = table.version()
    compacted = _compact_fragmented(table, dates) if inserted else 0
    return EventLogWrite(batch.num_rows, inserted, version, version != before, compacted)


def _compact_fragmented(table: DeltaTable, dates: Sequence[dt.date]) -> int:
    """Compact each of `dates`' partitions holding more than COMPACT_AFTER_FILES files."""
    compacted = 0
    for day in dates:
        partition = [(EVENT_DATE, "=", day.isoformat())]
        if len(table.file_uris(file_pruning_predicate=partition)) > COMPACT_AFTER_FILES:
            table.optimize.compact(partition_filters=partition,
                                   commit_properties=CommitProperties(custom_metadata={
                                       "hindsight.operation": "stream flush compaction"}))
            compacted += 1
    return compacted


def _first_per_event_id(batch: pa.Table, event_id: str) -> pa.Table:
    """The batch without rows repeating an earlier row's event id (MERGE would insert both)."""
    ids = batch.column(event_id)
    if pc.count_distinct(ids, mode="all").as_py() == batch.num_rows:
        return batch
    indices = pa.table({"id": ids, "i": pa.array(range(batch.num_rows), pa.int64())}).group_by(
        "id", use_threads=False).aggregate([("i", "min")]).column("i_min")
    return batch.take(pc.sort_indices(indices))
