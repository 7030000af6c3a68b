"""The layout of a stream source's event log: where its Delta table lives and its schema.

A stream source (a dbt source table with `meta.hindsight.stream`, registry_sync.streams) keeps
every event it receives in one Delta table, its event log, which dbt models read with
`source('<source>', '<table>')` like any other source. The table sits at

    <offline_store>/_streams/<source>/<table>

(`offline_store` of hindsight.yml), unless the stream declares its own `location`. Its columns are
the declared columns in order, then INGESTED_AT (when the ingest acknowledged the event) and
EVENT_DATE (the UTC date of the event time), and it is partitioned by EVENT_DATE.

This module is the Python home of that rule; macros/streams/event_log_location.sql is the Jinja
home (the on-run-start hook creates the table there), and tests/cases/event_log_locations.yml
holds the cases both must agree on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol

import pyarrow as pa

from hindsight.core.arrow_types import ARROW_TYPES
from hindsight.offline_store.uris import absolute_uri

#: When the ingest acknowledged the event (the journal's sequence time), timestamp[us, UTC].
INGESTED_AT = "_ingested_at"
#: The UTC date of the event time; the event log's partition column.
EVENT_DATE = "_event_date"
#: The folder under the offline store that holds the event logs.
STREAMS_FOLDER = "_streams"
#: The comments around the processing-range predicate in a model's compiled SQL
#: (macros/materializations/feature_view/range_predicate.sql): the stream transform replaces the
#: span between them by `1 = 1`.
PROCESSING_RANGE_START = "/* hindsight:processing_range */"
PROCESSING_RANGE_END = "/* hindsight:processing_range_end */"
#: Columns every event log has after the declared ones, in order.
SYSTEM_COLUMNS = (INGESTED_AT, EVENT_DATE)
#: The partition columns of every event log.
PARTITION_BY = (EVENT_DATE,)


class _Column(Protocol):
    name: str
    dtype: str


class _Stream(Protocol):
    @property
    def columns(self) -> Iterable[_Column]: ...


def event_log_location(offline_store: str, source: str, table: str, location: str | None = None) -> str:
    """Where a stream source's event log is, as configured (relative paths stay relative).

    >>> event_log_location("data/offline_store/", "streams", "transactions")
    'data/offline_store/_streams/streams/transactions'
    >>> event_log_location("s3://bucket/fs", "streams", "clicks", location="s3://other/clicks")
    's3://other/clicks'
    """
    if location:
        return location
    return f"{offline_store.rstrip('/')}/{STREAMS_FOLDER}/{source}/{table}"


def event_log_uri(
    offline_root: str,
    source: str,
    table: str,
    location: str | None = None,
    base: str | os.PathLike[str] | None = None,
) -> str:
    """The event log's absolute path or URI: `event_log_location` resolved against `base`
    (the project folder, where dbt runs; default: the working directory).

    >>> event_log_uri("data/offline_store", "streams", "transactions", base="/project")
    '/project/data/offline_store/_streams/streams/transactions'
    """
    return absolute_uri(event_log_location(offline_root, source, table, location), base=base)


def event_log_schema(stream: _Stream | Iterable[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema of a stream source's event log.

    `stream` is a registry StreamSource (anything with `columns` of `.name`/`.dtype`) or the
    (name, dtype) pairs of its declared columns.

    >>> event_log_schema([("event_id", "string"), ("ts", "timestamp")]).names
    ['event_id', 'ts', '_ingested_at', '_event_date']

    Raises:
        ValueError: a dtype that is not a registry type, or a column named like a system column.
    """
    columns = stream.columns if hasattr(stream, "columns") else stream
    fields = []
    for column in columns:
        if isinstance(column, tuple):
            name, dtype = column
        else:
            name, dtype = column.name, column.dtype
        if name in SYSTEM_COLUMNS:
            raise ValueError(f"column {name!r}: the event log adds {', '.join(SYSTEM_COLUMNS)} itself; rename the column")
        if dtype not in ARROW_TYPES:
            raise ValueError(f"column {name!r}: data_type {dtype!r} is not one of {', '.join(ARROW_TYPES)}")
        fields.append(pa.field(name, ARROW_TYPES[dtype]))
    fields += [pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC")), pa.field(EVENT_DATE, pa.date32())]
    return pa.schema(fields)


class EventLogSchemaError(ValueError):
    """The event log on disk has columns the stream source no longer declares, or other types."""


def ensure_event_log(uri: str, schema: pa.Schema, storage_options: dict[str, Any] | None = None) -> bool:
    """Create the empty event log at `uri` unless it exists; True when it was created.

    An existing log gains the declared columns it lacks (nullable, as a Delta schema change); a
    column it has with another type, or one the declaration dropped, is refused: events already
    stored would be lost or misread.

    Raises:
        EventLogSchemaError: naming the columns that differ.
    """
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:
        write_deltalake(
            uri,
            schema.empty_table(),
            mode="append",
            partition_by=list(PARTITION_BY),
            storage_options=storage_options,
        )
        return True
    existing = pa.schema(table.schema().to_arrow())
    problems = []
    for field in existing:
        if field.name not in schema.names:
            problems.append(f"{field.name} is in the event log but no longer declared (declare it again)")
        elif not schema.field(field.name).type.equals(field.type):
            problems.append(
                f"{field.name} is {field.type} in the event log but declared as {schema.field(field.name).type}"
            )
    if problems:
        raise EventLogSchemaError(f"event log {uri}: " + "; ".join(problems))
    missing = [f for f in schema if f.name not in existing.names]
    if missing:
        from deltalake.schema import Field

        table.alter.add_columns([Field.from_arrow(f) for f in missing])
    return False
