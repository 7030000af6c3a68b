"""The raw tables on disk: exact Arrow schemas, Parquet part files, loaded_at filtering, manifest.

dbt-duckdb reads each table as `read_parquet('<raw_dir>/<table>/*.parquet')`, so every part of a
table must have exactly the schema below; new arrivals are appended as a new part file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_TS = pa.timestamp("us", tz="UTC")

SCHEMAS = {
    "users": pa.schema([
        ("user_id", pa.int64()),
        ("home_country", pa.string()),
        ("signup_ts", _TS),
        ("birth_year", pa.int32()),
    ]),
    "merchants": pa.schema([
        ("merchant_id", pa.int64()),
        ("category", pa.string()),
        ("country", pa.string()),
        ("created_ts", _TS),
    ]),
    "transactions": pa.schema([
        ("transaction_id", pa.int64()),
        ("user_id", pa.int64()),
        ("merchant_id", pa.int64()),
        ("amount", pa.float64()),
        ("country", pa.string()),
        ("ts", _TS),
        ("is_fraud", pa.bool_()),
        ("loaded_at", _TS),
    ]),
    "user_updates": pa.schema([
        ("user_id", pa.int64()),
        ("home_country", pa.string()),
        ("credit_limit", pa.float64()),
        ("account_tier", pa.string()),
        ("updated_at", _TS),
        ("loaded_at", _TS),
    ]),
}  # fmt: skip
MANIFEST_NAME = "_demo_data.json"


def timestamps(us: np.ndarray) -> pa.Array:
    """An Arrow UTC timestamp column from integer microseconds."""
    return pa.array(np.asarray(us, dtype=np.int64), type=_TS)


def labels(names: Sequence[str], index: np.ndarray) -> pa.Array:
    """An Arrow string column from indices into `names` (vectorised: no Python strings per row)."""
    return pc.take(pa.array(names, type=pa.string()), pa.array(np.asarray(index, dtype=np.int64)))


@dataclass(frozen=True)
class LoadedRange:
    """Which rows of an arriving table to write: loaded_at in [from_us, before_us)."""

    from_us: int | None = None
    before_us: int | None = None

    def keep(self, table: pa.Table) -> pa.Table:
        """The rows of `table` whose loaded_at falls in the range."""
        if self.from_us is None and self.before_us is None:
            return table
        loaded = table.column("loaded_at").cast(pa.int64()).to_numpy()
        mask = np.ones(len(loaded), dtype=bool)
        if self.from_us is not None:
            mask &= loaded >= self.from_us
        if self.before_us is not None:
            mask &= loaded < self.before_us
        return table.filter(pa.array(mask))


def part_paths(table_dir: Path) -> list[Path]:
    """The table's existing part files, in name order."""
    return sorted(table_dir.glob("*.parquet"))


def next_part_path(table_dir: Path) -> Path:
    """The first unused `part-NNNNN.parquet` name in the folder."""
    taken = {p.name for p in part_paths(table_dir)}
    number = 0
    while f"part-{number:05d}.parquet" in taken:
        number += 1
    return table_dir / f"part-{number:05d}.parquet"


def clear_parts(table_dir: Path) -> None:
    """Delete the table's Parquet files (only those: the folder may hold a user's other files)."""
    for path in part_paths(table_dir):
        path.unlink()


def write_part(
    path: Path, schema: pa.Schema, batches: Iterable[pa.Table], row_group_size: int
) -> int:
    """Write tables of one schema into one Parquet file, in row groups of `row_group_size` rows.

    Batches are buffered until they fill a row group, so a file of small daily batches still has
    few, full row groups and memory holds about one row group, never the whole table. The file
    appears under its final name only when complete, so a reader never globs a half-written part.

    Returns:
        The number of rows written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    rows, pending = 0, []
    with pq.ParquetWriter(partial, schema) as writer:
        for batch in batches:
            pending.append(batch)
            if sum(t.num_rows for t in pending) >= row_group_size:
                table = pa.concat_tables(pending).combine_chunks()
                full = table.num_rows - table.num_rows % row_group_size
                writer.write_table(table.slice(0, full), row_group_size=row_group_size)
                rows += full
                pending = [table.slice(full)]
        rest = pa.concat_tables(pending) if pending else schema.empty_table()
        if rest.num_rows:
            writer.write_table(rest, row_group_size=row_group_size)
            rows += rest.num_rows
    os.replace(partial, path)
    return rows


def read_manifest(raw_dir: Path) -> dict | None:
    """What the last write into `raw_dir` recorded, or None if nothing was written there."""
    path = raw_dir / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else None


def write_manifest(raw_dir: Path, manifest: dict) -> None:
    """Record what was written, for the next append's consistency check."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
