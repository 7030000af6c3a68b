"""Opening a Delta table wherever it lives: a local path or S3, with the project's storage options.

Every reader (training sets, sync, validation, status, summaries) opens tables through `open_table`
so a table on S3 is reached with the endpoint and region of hindsight.yml's `s3:` section
(hindsight.core.object_store); a local path opens exactly as `DeltaTable(path)` does.
"""

from __future__ import annotations

from deltalake import DeltaTable

from hindsight.core.object_store import delta_storage_options

__all__ = [
    "ROW_PRESERVING_OPERATIONS", "delta_storage_options", "open_table", "partitioning_mismatch", "plain_parquet_files",
    "same_rows_versions",
]

#: Delta operations that rewrite or forget files without changing a row (`hindsight optimize`,
#: `hindsight vacuum`): a version one of them made reads the same rows as the version before it.
ROW_PRESERVING_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})

#: Reader features that change nothing about how a data file's rows are read: with only these (or
#: reader version 1), a snapshot's rows are exactly its data files read as plain Parquet. Deletion
#: vectors, column mapping, type widening and any feature not known here need a Delta reader.
PLAIN_PARQUET_READER_FEATURES = frozenset({"timestampNtz", "vacuumProtocolCheck"})


def open_table(uri: str, version: int | None = None) -> DeltaTable:
    """The Delta table at `uri` (at `version`, default the latest).

    Raises:
        deltalake.exceptions.TableNotFoundError: there is no Delta table at `uri`.
    """
    return DeltaTable(uri, version=version, storage_options=delta_storage_options(uri))


def plain_parquet_files(table: DeltaTable) -> tuple[str, ...] | None:
    """The data files of `table`'s snapshot when reading them as plain Parquet gives its rows, else None.

    None for a table whose protocol needs a Delta reader (PLAIN_PARQUET_READER_FEATURES) and for
    an empty one. Partition columns are not in the files (Delta keeps their values in its log),
    and a file written before a column was added lacks that column: readers of the files must
    leave partition columns out and union the files by name.
    """
    protocol = table.protocol()
    # Reader version 2 is column mapping; 3 lists its features; anything later is unknown here.
    features = set(protocol.reader_features or ())
    if not (protocol.min_reader_version == 1 or (protocol.min_reader_version == 3 and features <= PLAIN_PARQUET_READER_FEATURES)):
        return None
    files = tuple(table.file_uris())
    return files or None


def partitioning_mismatch(model: str, current: list[str], configured: list[str]) -> str | None:
    """Why a table partitioned by `current` does not match `configured`, with the fix; None if it does.

    Only a full refresh rewrites a table's partitioning: the writers refuse any other write into a
    table partitioned otherwise (DuckDB), and the registry refuses such a table (Spark's MERGE
    keeps the old partitioning without a word).

    >>> partitioning_mismatch("v", ["a"], ["a"]) is None
    True
    """
    if current == configured:
        return None
    return (
        f"its Delta table is partitioned by {current or 'nothing'}, but partition_by is now "
        f"{configured or 'nothing'}; only a full refresh rewrites the partitioning: run "
        f"`dbt run --full-refresh --select {model}`, or set partition_by back"
    )


def same_rows_versions(table: DeltaTable, version: int) -> list[int]:
    """`version` and the versions before it that read the same rows, newest first.

    Walks back over commits that changed no row (ROW_PRESERVING_OPERATIONS), so a validation of
    the version a compaction started from still vouches for the compacted one.
    """
    versions: list[int] = []
    for commit in table.history():
        number = commit.get("version")
        if number is None or number > version:
            continue
        versions.append(number)
        if commit.get("operation") not in ROW_PRESERVING_OPERATIONS:
            break
    return versions or [version]
