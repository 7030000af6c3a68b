"""One DuckDB database per process for training sets: the extension loads once, callers stay apart."""

from __future__ import annotations

import pyarrow as pa

from hindsight.offline_store import duckdb_delta
from hindsight.training_sets.engine import DuckDBEngine


def test_cursors_share_the_loaded_extension() -> None:
    first, second = duckdb_delta.process_cursor(), duckdb_delta.process_cursor()
    try:
        duckdb_delta.load_delta_extension(first)
        for cursor in (first, second):
            loaded = cursor.sql("select loaded from duckdb_extensions() where extension_name = 'delta'").fetchall()
            assert loaded == [(True,)]
    finally:
        first.close()
        second.close()


def test_engines_keep_their_relations_apart() -> None:
    one, two = DuckDBEngine(), DuckDBEngine()
    try:
        one.register_arrow("spine", pa.table({"x": [1, 2]}))
        two.register_arrow("spine", pa.table({"x": [10]}))
        assert one.connection.sql('select sum(x) from "spine"').fetchall() == [(3,)]
        assert two.connection.sql('select sum(x) from "spine"').fetchall() == [(10,)]
    finally:
        one.close()
    # Closing one engine drops its relations only.
    assert two.connection.sql('select sum(x) from "spine"').fetchall() == [(10,)]
    two.close()
    fresh = DuckDBEngine()
    try:
        tables = fresh.connection.sql("select table_name from duckdb_tables()").fetchall()
        assert ("spine",) not in tables
    finally:
        fresh.close()


def test_a_forked_child_opens_its_own_database(monkeypatch) -> None:
    duckdb_delta.process_cursor().close()
    parent = duckdb_delta._process_database
    monkeypatch.setattr(duckdb_delta, "_process_database", parent)  # restored after the test
    monkeypatch.setattr(duckdb_delta.os, "getpid", lambda: -1)
    duckdb_delta.process_cursor().close()
    assert duckdb_delta._process_database is not parent
    assert duckdb_delta._process_database[0] == -1
