"""DuckDB's delta extension, loaded from the `duckdb-extension-delta` wheel.

DuckDB would download the extension on `LOAD delta`; Hindsight loads the file the wheel ships for
this exact DuckDB version instead, so `delta_scan()` works offline. Used by the dbt-duckdb plugin
(every dbt connection) and by training sets (their own DuckDB connection).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_extension_delta


def delta_extension_path() -> Path:
    """The delta extension shipped in the `duckdb-extension-delta` wheel for this DuckDB version.

    Raises:
        RuntimeError: the wheel has no build for this DuckDB version (the two pins differ).
    """
    root = Path(duckdb_extension_delta.__file__).parent
    path = root / "extensions" / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    if not path.exists():
        raise RuntimeError(
            f"no DuckDB delta extension for duckdb {duckdb.__version__} at {path}: pin "
            "duckdb-extension-delta to the same version as duckdb"
        )
    return path


def load_delta_extension(connection: duckdb.DuckDBPyConnection) -> None:
    """Load the delta extension into `connection` (see `delta_extension_path` for the errors)."""
    connection.load_extension(str(delta_extension_path()))
