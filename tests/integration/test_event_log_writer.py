"""The event log writer on real Delta tables: one commit per batch, insert-only, declared schema."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from hindsight.offline_store.duckdb_delta import load_delta_extension
from hindsight.offline_store.event_log import EVENT_DATE, INGESTED_AT, event_log_schema
from hindsight.offline_store.event_log_writer import EventRowError, events_table, merge_predicate, write_events
from hindsight.registry_sync.model import Feature, StreamSource

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
COLUMNS = {"transaction_id": "string", "user_id": "int64", "merchant_id": "int32", "amount": "decimal",
           "rate": "float32", "country": "string", "flagged": "bool", "day": "date", "ts": "timestamp"}


def make_stream(tmp_path, name: str = "streams.transactions") -> StreamSource:
    return StreamSource(
        name=name, event_id_field="transaction_id", timestamp_field="ts", entities=("user",), join_keys=("user_id",),
        columns=tuple(Feature(c, t) for c, t in COLUMNS.items()), delta_uri=str(tmp_path / "log"),
    )


def journal_rows(n: int, start: int = 0) -> list[dict]:
    """Rows as the journal keeps them: JSON values, timestamps ISO-8601 with an offset."""
    return [{"transaction_id": f"t{i}", "user_id": i % 5, "merchant_id": i % 3, "amount": f"{i}.25",
             "rate": 0.5, "country": "FR" if i % 2 else None, "flagged": bool(i % 2), "day": "2026-11-29",
             "ts": (T0 + dt.timedelta(seconds=i)).isoformat()} for i in range(start, start + n)]


def table_of(stream, rows, seq0: int = 1_796_000_000_000_000):
    return events_table(stream, rows, [seq0 + i for i in range(len(rows))])


def read_all(stream) -> pa.Table:
    return DeltaTable(stream.delta_uri).to_pyarrow_table().sort_by("transaction_id")


def test_a_batch_is_one_commit_and_reads_back_with_the_declared_schema(tmp_path):
    stream = make_stream(tmp_path)
    result = write_events(stream, table_of(stream, journal_rows(500)))
    assert (result.rows, result.inserted, result.committed) == (500, 500, True)
    table = DeltaTable(stream.delta_uri)
    # Version 0 creates the empty log, version 1 is the batch: one commit for 500 events.
    assert table.version() == result.version == 1
    assert [h["operation"] for h in table.history()] == ["MERGE", "WRITE"]
    assert table.metadata().partition_columns == [EVENT_DATE]
    declared = event_log_schema(stream)
    assert pa.schema(table.schema().to_arrow()).equals(declared)
    # Read back without dbt, through DuckDB's delta_scan as dbt models do.
    con = duckdb.connect()
    load_delta_extension(con)
    rows = con.sql(f"select * from delta_scan('{stream.delta_uri}') order by ts").to_arrow_table()
    assert rows.num_rows == 500
    assert rows.column_names == declared.names
    assert rows.schema.field("amount").type == pa.decimal128(20, 4)
    first, second = rows.slice(0, 2).to_pylist()
    assert first["transaction_id"] == "t0" and first["amount"] == Decimal("0.2500") and first["country"] is None
    assert first[INGESTED_AT] == dt.datetime(2026, 11, 30, 0, 53, 20, tzinfo=UTC)
    # The event date is the UTC date of the event time: t0 is the last second of the 29th.
    assert (first[EVENT_DATE], second[EVENT_DATE]) == (dt.date(2026, 11, 29), dt.date(2026, 11, 30))
    assert second["day"] == dt.date(2026, 11, 29) and second["flagged"] is True


def test_writing_a_batch_again_inserts_nothing_and_commits_nothing(tmp_path):
    stream = make_stream(tmp_path)
    batch = table_of(stream, journal_rows(200))
    write_events(stream, batch)
    again = write_events(stream, batch)
    assert (again.inserted, again.already_present, again.committed, again.version) == (0, 200, False, 1)
    # Half old, half new: only the new half lands, in one more commit.
    mixed = write_events(stream, table_of(stream, journal_rows(200, start=100)))
    assert (mixed.inserted, mixed.already_present, mixed.version) == (100, 100, 2)
    ids = read_all(stream).column("transaction_id").to_pylist()
    assert len(ids) == len(set(ids)) == 300


def test_an_id_repeated_inside_one_batch_is_written_once_first_wins(tmp_path):
    stream = make_stream(tmp_path)
    rows = journal_rows(3)
    rows.append({**rows[1], "amount": "99"})
    result = write_events(stream, table_of(stream, rows))
    assert (result.rows, result.inserted) == (3, 3)
    assert read_all(stream).column("amount").to_pylist() == [Decimal("0.2500"), Decimal("1.2500"), Decimal("2.2500")]


def test_the_merge_reads_only_the_batch_date_partitions(tmp_path):
    stream = make_stream(tmp_path)
    old = [{**r, "ts": (T0 - dt.timedelta(days=30 + i)).isoformat()} for i, r in enumerate(journal_rows(20))]
    write_events(stream, table_of(stream, old))
    write_events(stream, table_of(stream, journal_rows(10, start=100)))
    metrics = DeltaTable(stream.delta_uri).history(1)[0]["operationMetrics"]
    # The 20 old files (one per day) are skipped, not scanned: the new batch's dates are 29 and 30 Nov.
    assert (metrics["num_target_files_scanned"], metrics["num_target_files_skipped_during_scan"]) == (0, 20)
    assert metrics["num_target_rows_inserted"] == 10


def test_merge_predicate_names_each_batch_date():
    predicate = merge_predicate("id", [dt.date(2026, 1, 2), dt.date(2026, 1, 1), dt.date(2026, 1, 2)])
    assert predicate == ('"t"."id" = "s"."id" AND "t"."_event_date" = "s"."_event_date" AND "t"."_event_date" IN '
                         "(CAST('2026-01-01' AS DATE), CAST('2026-01-02' AS DATE))")


def test_a_value_of_the_wrong_type_names_column_and_row(tmp_path):
    stream = make_stream(tmp_path)
    rows = journal_rows(3)
    rows[2]["ts"] = "yesterday"
    with pytest.raises(EventRowError, match=r"column 'ts' of row 2 holds 'yesterday'"):
        table_of(stream, rows)


def test_concurrent_writers_of_the_same_events_never_duplicate(tmp_path):
    """Two writers racing on one log (no lease): Delta's conflict check, then a retry, keeps ids unique."""
    stream = make_stream(tmp_path)
    write_events(stream, table_of(stream, journal_rows(1)))
    batch = table_of(stream, journal_rows(300))
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer() -> None:
        start.wait()
        for _ in range(3):
            try:
                write_events(stream, batch)
                return
            except Exception as err:  # noqa: BLE001 - a lost commit race (asserted below); the flusher retries
                errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = read_all(stream).column("transaction_id").to_pylist()
    assert len(ids) == len(set(ids)) == 300, errors
    # The losers of the race were refused by Delta's conflict check, not silently merged.
    assert all(isinstance(e, CommitFailedError) for e in errors), errors


def test_a_fragmented_partition_is_compacted_after_the_commit(tmp_path):
    stream = make_stream(tmp_path)
    day = [{**r, "ts": (T0 + dt.timedelta(hours=1)).isoformat()} for r in journal_rows(40 * 3)]
    results = [write_events(stream, table_of(stream, day[i:i + 3])) for i in range(0, 120, 3)]
    assert [r.compacted for r in results[:32]] == [0] * 32
    assert results[32].compacted == 1  # the 33rd file in the partition
    table = DeltaTable(stream.delta_uri)
    assert len(table.file_uris()) < 10
    assert sum(h["operation"] == "OPTIMIZE" for h in table.history()) == 1
    ids = read_all(stream).column("transaction_id").to_pylist()
    assert len(ids) == len(set(ids)) == 120
    # Rewriting a batch after the compaction still finds its events.
    assert write_events(stream, table_of(stream, day[:30])).inserted == 0
