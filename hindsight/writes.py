"""The SDK's writes: `hindsight.ingest` (events of a stream source) and `hindsight.push` (rows of a
push feature view), straight to the stores of a project, without a server.

    import hindsight
    hindsight.ingest("streams.transactions", events)      # a list of dicts, a DataFrame or an Arrow table
    hindsight.push("user_profile", profiles)

Both go through the functions the API and the CLI use (`streams.ingest.Ingestor`,
`online_sync.push.push`): on return every event or row is committed online and in the journal, so
it reaches Delta at the next flush (a running `hindsight serve` or `hindsight stream run` flushes
every second, `hindsight stream flush` does it once, or pass `flush=True`).

Each function takes `project_dir=` like the rest of the SDK (default: $HINDSIGHT_PROJECT_DIR, else
the current folder or its nearest parent with a dbt_project.yml) and writes to the latest applied
registry's stores.
"""

from __future__ import annotations

import os
import threading
from typing import Any

ProjectDir = str | os.PathLike[str] | None

_lock = threading.Lock()
#: Ingestors by (registry folder, registry version, store config): each parses its views' stream SQL once.
_ingestors: dict[tuple[Any, ...], Any] = {}


def _project(project_dir: ProjectDir) -> tuple[Any, Any]:
    """The latest applied registry and the online store config of the project."""
    from hindsight.core.settings import Settings
    from hindsight.online_sync.config import OnlineStoreConfig
    from hindsight.registry_sync import load_registry

    settings = Settings.load(project_dir, require=True)
    return load_registry(settings), OnlineStoreConfig.from_settings(settings)


def ingest(source: str, rows: Any, project_dir: ProjectDir = None, *, flush: bool = False) -> Any:
    """Ingest events of a stream source: online at once, exactly once per event id.

    Args:
        source: "streams.transactions", or its table name when unique.
        rows: a list of dicts, a pandas DataFrame or an Arrow table, one event each, with every
            declared column of the source (timestamps as datetimes or ISO-8601 strings).
        project_dir: the dbt project (see the module docstring).
        flush: also write the journaled events to the source's Delta event log before returning
            (one Delta commit; otherwise the next flush does).

    Returns:
        An IngestReport: received, accepted (new events) and duplicates (event ids seen before).

    Raises:
        IngestValidationError: a row does not fit the source (naming the field, row and rule); nothing
            is written.
        KeyError: an unknown stream source, naming the nearest.
        OnlineStoreUnavailable: DynamoDB cannot be reached.
    """
    from hindsight.online_sync.config import shared_client
    from hindsight.streams.ingest import Ingestor

    registry, config = _project(project_dir)
    key = (registry.project, registry.version, config)
    with _lock:
        ingestor = _ingestors.get(key)
        if ingestor is None:
            ingestor = Ingestor(registry, config, shared_client(config))
            _ingestors.clear()  # only the newest registry's is kept
            _ingestors[key] = ingestor
    report = ingestor.ingest(source, rows)
    if flush:
        _flush(registry, config, source=source)
    return report


def push(view: str, rows: Any, project_dir: ProjectDir = None, *, flush: bool = False) -> Any:
    """Push rows to a feature view: online at once (newest event wins), journaled for its Delta table.

    Args:
        view: a feature view configured with `push: true`.
        rows: a list of dicts, a pandas DataFrame or an Arrow table: every join key, the timestamp
            field and the features (all of them, or a subset where the view has `push_partial: true`).
        project_dir: the dbt project (see the module docstring).
        flush: also append the rows to the view's Delta table before returning.

    Returns:
        A PushReport.

    Raises:
        ValueError: an unknown view, one that takes no pushes, or a malformed row (nothing is written).
        OnlineStoreUnavailable: DynamoDB cannot be reached.
    """
    from hindsight.online_sync.config import shared_client
    from hindsight.online_sync.push import push as push_rows

    registry, config = _project(project_dir)
    report = push_rows(registry, config, view, records(rows), client=shared_client(config))
    if flush:
        _flush(registry, config, view=view)
    return report


def _flush(registry: Any, config: Any, source: str | None = None, view: str | None = None) -> Any:
    from hindsight.online_sync.config import shared_client
    from hindsight.streams.flush import Flusher

    flusher = Flusher(registry, config, client=shared_client(config))
    return flusher.flush_once(flusher.resolve(source, view))


def records(rows: Any) -> list[dict[str, Any]]:
    """Rows as a list of dicts: from dicts, a pandas DataFrame or an Arrow table (NaN and NaT as None).

    >>> records([{"a": 1}])
    [{'a': 1}]
    """
    if hasattr(rows, "to_pylist"):  # a pyarrow Table or RecordBatch
        return rows.to_pylist()
    if hasattr(rows, "columns") and hasattr(rows, "to_dict"):  # a pandas DataFrame
        import pyarrow as pa

        return pa.Table.from_pandas(rows, preserve_index=False).to_pylist()
    if isinstance(rows, (dict, str, bytes)):
        raise TypeError(f"rows must be a list of dicts, a pandas DataFrame or an Arrow table, got {type(rows).__name__}")
    return list(rows)
