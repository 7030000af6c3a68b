"""DuckDB's delta extension (and httpfs for S3), loaded from the `duckdb-extension-*` wheels.

DuckDB would download an extension on `LOAD delta`; Hindsight loads the file the wheel ships for
this exact DuckDB version instead, so `delta_scan()` works offline. Used by the dbt-duckdb plugin
(every dbt connection) and by training sets (`process_cursor`: a connection of their own to one
in-memory database per process, so the extension, once a training set needs it, loads once).
Tables on S3 also need httpfs and an S3 secret: `enable_s3`, configured from
hindsight.core.object_store.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import duckdb_extension_delta
import duckdb_extension_httpfs
from sqlglot import exp

from hindsight.core.object_store import S3Config

#: The name of the connection's S3 secret: created again (replaced) with fresh credentials.
SECRET_NAME = "hindsight_s3"

_process_database: tuple[int, duckdb.DuckDBPyConnection] | None = None
_process_database_lock = threading.Lock()


def delta_extension_path() -> Path:
    """The delta extension shipped in the `duckdb-extension-delta` wheel for this DuckDB version.

    Raises:
        RuntimeError: the wheel has no build for this DuckDB version (the two pins differ).
    """
    return _extension_path(duckdb_extension_delta.__file__, "delta")


def _extension_path(package_file: str | None, name: str) -> Path:
    path = Path(package_file or "").parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(
            f"no DuckDB {name} extension for duckdb {duckdb.__version__} at {path}: pin "
            f"duckdb-extension-{name} to the same version as duckdb"
        )
    return path


def load_delta_extension(connection: duckdb.DuckDBPyConnection) -> None:
    """Load the delta extension into `connection` (see `delta_extension_path` for the errors)."""
    connection.load_extension(str(delta_extension_path()))


def process_cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory DuckDB database.

    An extension loaded through one cursor (`load_delta_extension`: 0.16 s) is loaded for all: a
    notebook pays it once. Each cursor keeps its own settings and its own TEMPORARY tables and
    views (closing it drops them), so concurrent callers must create only temporary objects. A
    forked child opens a database of its own: DuckDB's threads do not survive a fork.
    """
    global _process_database
    with _process_database_lock:
        if _process_database is None or _process_database[0] != os.getpid():
            database = duckdb.connect()
            # Return freed memory to the OS between calls: without it this long-lived database kept
            # ~260 MB for good after a 1M-row training set (DuckDB's allocator holds freed pages).
            database.execute("SET allocator_background_threads = true")
            _process_database = (os.getpid(), database)
        return _process_database[1].cursor()


def enable_s3(connection: duckdb.DuckDBPyConnection, config: S3Config | None = None) -> None:
    """Let `connection` read s3:// (delta_scan, read_parquet): httpfs from its wheel, and a secret
    with the project's endpoint and region and the credentials boto3 resolves now.

    Raises:
        RuntimeError: no httpfs extension for this DuckDB, or no AWS credentials.
    """
    connection.load_extension(str(_extension_path(duckdb_extension_httpfs.__file__, "httpfs")))
    connection.execute(_create_secret((config or S3Config.from_settings()).duckdb_secret()))


def _create_secret(parameters: dict[str, str | bool]) -> str:
    """`CREATE OR REPLACE SECRET` with each value rendered as a DuckDB literal by sqlglot.

    sqlglot has no AST for CREATE SECRET (it parses it as an opaque command), so the statement is
    assembled here; every value still goes through sqlglot's quoting, never pasted raw.

    >>> _create_secret({"KEY_ID": "it's", "USE_SSL": False})
    "CREATE OR REPLACE TEMPORARY SECRET hindsight_s3 (TYPE s3, KEY_ID 'it''s', USE_SSL FALSE)"
    """
    values = [exp.Boolean(this=v) if isinstance(v, bool) else exp.Literal.string(v) for v in parameters.values()]
    options = ", ".join(["TYPE s3", *(f"{key} {value.sql('duckdb')}" for key, value in zip(parameters, values))])
    return f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ({options})"
