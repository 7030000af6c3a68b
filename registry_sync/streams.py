"""Stream sources in the registry: dbt source tables declared with `meta.hindsight.stream`.

A stream source's rows are events that arrive one by one (Kinesis, the ingest API) and are kept in
its event log (offline_store.event_log), which dbt models read with `source(...)`. Declared on the
source table, so dbt docs and lineage see it:

    sources:
      - name: streams
        tables:
          - name: transactions
            meta:
              hindsight:
                stream:
                  event_id: transaction_id        # required: unique per event (the dedupe key)
                  timestamp_field: ts             # required: the event time
                  entities: [user, merchant]      # required: their join keys must be columns
                  kinesis_stream: transactions    # optional: the Kinesis stream to consume
                  location: s3://bucket/events    # optional: the event log (default: offline_store)
            columns:                              # every column, each with a registry data_type
              - {name: transaction_id, data_type: string}

This module reads those declarations from dbt's manifest into `StreamSource`s, and links the
aggregation views that read one (`stream_source`, `stream_sql`). Every problem is added to
`problems`, naming the file, the field, the rule and the nearest valid value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hindsight.core.suggest import closest, did_you_mean
from hindsight.offline_store.event_log import SYSTEM_COLUMNS
from hindsight.registry_sync.model import FEATURE_TYPES, Entity, Feature, StreamSource

#: The keys of `meta.hindsight.stream`.
STREAM_KEYS = ("event_id", "timestamp_field", "entities", "kinesis_stream", "location")
#: Registry dtypes an event id may have.
EVENT_ID_TYPES = ("string", "int32", "int64")
#: Registry dtypes an event time may have.
TIMESTAMP_TYPES = ("timestamp",)

#: SQL spellings of the registry's types, to name the nearest one in an error (not accepted:
#: one name per type keeps declarations comparable across engines).
SQL_TYPE_NAMES = {
    "boolean": "bool", "int": "int32", "integer": "int32", "smallint": "int32", "tinyint": "int32",
    "bigint": "int64", "long": "int64", "real": "float32", "float": "float32", "double": "float64",
    "double precision": "float64", "varchar": "string", "text": "string", "char": "string",
    "timestamptz": "timestamp", "timestamp with time zone": "timestamp", "datetime": "timestamp",
    "numeric": "decimal",
}

#: (source name, table name, location or None) -> the event log's absolute URI.
EventLogUri = Callable[[str, str, "str | None"], str]


def stream_sources(
    manifest: Mapping[str, Any], entities: Mapping[str, Entity], event_log_uri: EventLogUri, problems: list[str]
) -> list[StreamSource]:
    """Every enabled source table of the manifest that declares `meta.hindsight.stream`."""
    found: list[StreamSource] = []
    kinesis: dict[str, str] = {}
    # In name order, so which of two clashing declarations is named first does not vary.
    nodes = sorted(manifest.get("sources", {}).values(), key=lambda n: (str(n.get("source_name")), str(n.get("name"))))
    for node in nodes:
        declared = ((node.get("meta") or {}).get("hindsight") or {}).get("stream")
        if declared is None or not (node.get("config") or {}).get("enabled", True):
            continue
        stream = stream_source(node, declared, entities, event_log_uri, problems)
        if stream is None:
            continue
        if stream.kinesis_stream is not None:
            if stream.kinesis_stream in kinesis:
                problems.append(
                    f"stream source {stream.name} ({stream.original_file_path}): kinesis_stream "
                    f"{stream.kinesis_stream!r} is already the stream of {kinesis[stream.kinesis_stream]}; "
                    "one Kinesis stream feeds one stream source"
                )
                continue
            kinesis[stream.kinesis_stream] = stream.name
        found.append(stream)
    return sorted(found, key=lambda s: s.name)


def stream_source(
    node: Mapping[str, Any],
    declared: Any,
    entities: Mapping[str, Entity],
    event_log_uri: EventLogUri,
    problems: list[str],
) -> StreamSource | None:
    """One source table's stream declaration, or None (and problems) when it is invalid."""
    name = f"{node.get('source_name')}.{node.get('name')}"
    where = f"stream source {name} ({node.get('original_file_path')})"
    before = len(problems)
    if not isinstance(declared, Mapping):
        problems.append(
            f"{where}: meta.hindsight.stream must be a mapping with the keys event_id, timestamp_field and "
            f"entities, got {declared!r}"
        )
        return None
    for key in declared:
        if key not in STREAM_KEYS:
            problems.append(
                f"{where}: unknown key '{key}' in meta.hindsight.stream{did_you_mean(key, STREAM_KEYS)}; "
                f"accepted: {', '.join(STREAM_KEYS)}"
            )
    columns = _columns(node, where, problems)
    # Every declared name, also those whose data_type was refused (that problem is listed already).
    names = list(node.get("columns") or {})
    dtypes = {c.name: c.dtype for c in columns}

    def column_field(key: str, accepted: tuple[str, ...]) -> str:
        value = declared.get(key)
        if not value or not isinstance(value, str):
            example = {"event_id": "transaction_id", "timestamp_field": "ts"}[key]
            hint = f" (columns: {', '.join(names)})" if names else ""
            problems.append(f"{where}: meta.hindsight.stream needs {key}: the name of a column, e.g. {key}: {example}{hint}")
            return ""
        if value not in names:
            problems.append(
                f"{where}: {key} {value!r} is not a declared column{did_you_mean(value, names)}; "
                f"columns: {', '.join(names) or 'none'}"
            )
        elif value in dtypes and dtypes[value] not in accepted:
            problems.append(f"{where}: {key} {value!r} has data_type {dtypes[value]}; it must be one of {', '.join(accepted)}")
        return value

    event_id = column_field("event_id", EVENT_ID_TYPES)
    timestamp_field = column_field("timestamp_field", TIMESTAMP_TYPES)
    stream_entities, join_keys = _entities(declared.get("entities"), entities, names, where, problems)
    kinesis_stream = _optional_string(declared, "kinesis_stream", where, problems)
    location = _optional_string(declared, "location", where, problems)
    if len(problems) > before:
        return None
    return StreamSource(
        name=name,
        event_id_field=event_id,
        timestamp_field=timestamp_field,
        entities=stream_entities,
        join_keys=join_keys,
        columns=columns,
        delta_uri=event_log_uri(str(node.get("source_name")), str(node.get("name")), location),
        kinesis_stream=kinesis_stream,
        description=(node.get("description") or "").strip(),
        unique_id=str(node.get("unique_id") or ""),
        original_file_path=str(node.get("original_file_path") or ""),
    )


def _columns(node: Mapping[str, Any], where: str, problems: list[str]) -> tuple[Feature, ...]:
    declared = node.get("columns") or {}
    if not declared:
        problems.append(
            f"{where}: a stream source declares every column of its events, each with a data_type "
            f"({', '.join(FEATURE_TYPES)}); it has none"
        )
        return ()
    columns = []
    for name, column in declared.items():
        dtype = str((column or {}).get("data_type") or "").strip().lower()
        if name in SYSTEM_COLUMNS:
            problems.append(f"{where}: column {name!r} is a name the event log adds itself ({', '.join(SYSTEM_COLUMNS)}); rename it")
            continue
        if not dtype:
            problems.append(f"{where}: column {name!r} needs a data_type, one of {', '.join(FEATURE_TYPES)}")
            continue
        if dtype not in FEATURE_TYPES:
            nearest = _nearest_type(dtype)
            problems.append(
                f"{where}: column {name!r} has data_type {dtype!r}{nearest}; accepted: {', '.join(FEATURE_TYPES)}"
            )
            continue
        columns.append(Feature(name=name, dtype=dtype, description=((column or {}).get("description") or "").strip()))
    return tuple(columns)


def _nearest_type(dtype: str) -> str:
    """" (did you mean int64?)" for a misspelled registry type or an SQL spelling of one.

    >>> _nearest_type("integr"), _nearest_type("double"), _nearest_type("zzz")
    (' (did you mean int32?)', ' (did you mean float64?)', '')
    """
    spellings = {**{t: t for t in FEATURE_TYPES}, **SQL_TYPE_NAMES}
    types = list(dict.fromkeys(spellings[c] for c in closest(dtype, spellings)))
    return f" (did you mean {', '.join(types)}?)" if types else ""


def _entities(
    declared: Any, entities: Mapping[str, Entity], columns: list[str], where: str, problems: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    listed = [declared] if isinstance(declared, str) else declared
    if not isinstance(listed, list) or not listed or not all(isinstance(e, str) for e in listed):
        known = ", ".join(sorted(entities)) or "none declared"
        problems.append(f"{where}: meta.hindsight.stream needs entities: a list of entity names (known: {known})")
        return (), ()
    names: list[str] = []
    keys: list[str] = []
    for name in listed:
        entity = entities.get(name)
        if entity is None:
            problems.append(
                f"{where}: entity {name!r} is not declared{did_you_mean(name, entities)}; "
                f"known: {', '.join(sorted(entities)) or 'none'} (declare one in the meta.hindsight.entity of a source or a seed)"
            )
            continue
        for key in entity.join_keys:
            if key not in columns:
                problems.append(
                    f"{where}: join key {key!r} of entity {name} is not a declared column"
                    f"{did_you_mean(key, columns)}; columns: {', '.join(columns) or 'none'}"
                )
            elif key not in keys:
                keys.append(key)
        names.append(name)
    return tuple(names), tuple(keys)


def _optional_string(declared: Mapping[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = declared.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty string, got {value!r}")
        return None
    return value.strip()


def stream_source_of(
    node: Mapping[str, Any], streams: Mapping[str, StreamSource], where: str, problems: list[str]
) -> str | None:
    """The stream source an aggregation view's model reads, or None.

    Refused: a model reading two stream sources (the per-batch transform runs over one), or a
    stream source and another relation (a batch of events has nothing to join it with).
    """
    by_id = {s.unique_id: s for s in streams.values()}
    upstream = list((node.get("depends_on") or {}).get("nodes") or ())
    read = [by_id[u].name for u in upstream if u in by_id]
    if not read:
        return None
    if len(read) > 1:
        problems.append(
            f"{where}: reads {len(read)} stream sources ({', '.join(read)}); an aggregation view reads at most one "
            "stream source: split it into one view per stream"
        )
        return None
    others = [u for u in upstream if u not in by_id]
    if others:
        problems.append(
            f"{where}: reads the stream source {read[0]} and also {', '.join(others)}; a stream-fed aggregation "
            "view reads only its stream source (each batch of events is aggregated on its own)"
        )
        return None
    return read[0]
