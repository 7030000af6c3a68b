"""The spine: loading from what callers have, UTC event times, and checks that name the problem."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hindsight.training_sets import TrainingSetError
from hindsight.training_sets.spine import UTC_MICROS, event_time_utc, load_spine, prepare_spine

UTC = dt.timezone.utc
INSTANT = dt.datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def utc_values(array: pa.Array) -> list:
    return event_time_utc(pa.chunked_array([array])).to_pylist()


def test_naive_times_are_utc_and_zoned_times_are_converted() -> None:
    naive = pa.array([dt.datetime(2026, 3, 1, 12, 30)], pa.timestamp("s"))
    paris = pa.array([INSTANT], pa.timestamp("ms", tz="Europe/Paris"))
    assert utc_values(naive) == [INSTANT]
    assert utc_values(paris) == [INSTANT]
    assert event_time_utc(pa.chunked_array([paris])).type == UTC_MICROS


def test_dates_are_midnight_utc_and_nanoseconds_are_floored() -> None:
    assert utc_values(pa.array([dt.date(2026, 3, 1), None], pa.date32())) == [dt.datetime(2026, 3, 1, tzinfo=UTC), None]
    # 1 ns before the epoch floors to 1 us before it, never later than it was.
    assert utc_values(pa.array([-1, 1999], pa.timestamp("ns"))) == [
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    ]


def test_an_event_time_that_is_not_a_time_is_refused() -> None:
    with pytest.raises(TrainingSetError, match=r"event-time column 'when' is string, not a timestamp or a date"):
        event_time_utc(pa.chunked_array([pa.array(["2026-03-01"])]), "when")


def spine(**columns) -> pa.Table:
    base = {"user_id": pa.array([1, 2], pa.int64()), "event_timestamp": pa.array([INSTANT, INSTANT])}
    return pa.table({**base, **columns})


KEYS = {"user_id": {"user_profile": pa.int64()}}


def test_prepare_builds_row_ids_utc_times_and_keys_only() -> None:
    narrow = prepare_spine(spine(label=[0, 1]), event_timestamp="event_timestamp", key_types=KEYS)
    assert narrow.column_names == ["__hs_row", "__hs_event_time", "user_id"]
    assert narrow.column("__hs_row").to_pylist() == [0, 1]
    assert narrow.column("__hs_event_time").type == UTC_MICROS


def test_a_categorical_key_compares_by_value() -> None:
    table = pa.Table.from_pandas(pd.DataFrame({"user_id": pd.Categorical(["a", "b"]), "event_timestamp": [INSTANT] * 2}))
    narrow = prepare_spine(table, event_timestamp="event_timestamp", key_types={"user_id": {"v": pa.string()}})
    assert narrow.column("user_id").type == pa.string()


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (spine(), {"event_timestamp": "event_ts"}, r"no event-time column 'event_ts' \(did you mean 'event_timestamp'\?\)"),
        (
            spine().drop_columns(["user_id"]),
            {},
            r"lacks join key column\(s\): user_id \(for user_profile\); spine columns: \['event_timestamp'\]",
        ),
        (
            spine(user_id=pa.array(["1", "2"])),
            {},
            r"join key 'user_id': the spine's column is string but view 'user_profile' stores it as int64",
        ),
        (spine(), {"request_fields": {"amount": "transaction_context"}}, r"lacks column\(s\): amount \(request field of transaction_context\)"),
        (spine(__hs_row=[1, 2]), {}, r"use the prefix '__hs_' reserved for Hindsight"),
    ],
)
def test_bad_spines_are_named(table, kwargs, message) -> None:
    arguments = {"event_timestamp": "event_timestamp", "key_types": KEYS, **kwargs}
    with pytest.raises(TrainingSetError, match=message):
        prepare_spine(table, **arguments)


def test_load_spine_reads_tables_frames_and_parquet(tmp_path) -> None:
    table = spine()
    frame = table.to_pandas()
    path = tmp_path / "spine.parquet"
    pq.write_table(table, path)
    assert load_spine(table) is table
    assert load_spine(frame).equals(table)
    assert load_spine(path).equals(table)
    assert load_spine(str(path)).equals(table)


def test_load_spine_names_what_it_cannot_use(tmp_path) -> None:
    with pytest.raises(TrainingSetError, match=r"spine file '.*missing.parquet' does not exist"):
        load_spine(str(tmp_path / "missing.parquet"))
    with pytest.raises(TrainingSetError, match=r"a SQL spine runs on DuckDB only"):
        load_spine("SELECT 1")
    with pytest.raises(TrainingSetError, match=r"cannot use a list as a spine"):
        load_spine([1, 2])
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(TrainingSetError, match=r"cannot read spine file .* as Parquet"):
        load_spine(tmp_path / "bad.parquet")
