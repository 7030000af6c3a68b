"""validate_rows: events checked against their stream source, errors naming field, row, rule and
the nearest valid value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from hindsight.online_sync.push import FutureBound
from hindsight.registry_sync.model import Feature
from hindsight.streams.validation import IngestValidationError, validate, validate_rows
from tests.fixtures.stream_registry import stream_source

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BOUND = FutureBound(NOW, dt.timedelta(minutes=5))


def row(**overrides):
    base = {"transaction_id": "t1", "user_id": 7, "ts": "2026-11-30T11:59:00Z", "amount": 12.5, "quantity": 2,
            "country": "FR"}
    return {**base, **overrides}


def error(rows, stream=None) -> IngestValidationError:
    with pytest.raises(IngestValidationError) as caught:
        validate_rows(stream or stream_source(), rows, bound=BOUND)
    return caught.value


def test_valid_rows_come_back_typed_in_declared_order():
    table = validate_rows(stream_source(), [row(), row(transaction_id="t2", ts=dt.datetime(2026, 11, 30, 11), amount=3,
                                                     country=None)], bound=BOUND)
    assert table.schema.names == ["transaction_id", "user_id", "ts", "amount", "quantity", "country"]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("ts").to_pylist() == [dt.datetime(2026, 11, 30, 11, 59, tzinfo=UTC),
                                              dt.datetime(2026, 11, 30, 11, tzinfo=UTC)]  # naive: UTC
    assert table.column("amount").to_pylist() == [12.5, 3.0]
    assert table.column("country").to_pylist() == ["FR", None]


def test_unknown_field_names_the_nearest_declared_one():
    bad = {**row(), "amout": 3.0}
    del bad["amount"]
    err = error([row(), bad])
    assert (err.field, err.index, err.rule, err.nearest) == ("amout", 1, "unknown_field", "'amount'")
    assert "row 1: field 'amout'" in str(err) and "did you mean 'amount'?" in str(err)


def test_missing_field_and_null_rules():
    bad = row()
    del bad["country"]
    err = error([bad])
    assert (err.field, err.index, err.rule, err.nearest) == ("country", 0, "missing_field", "null")
    err = error([row(), row(transaction_id=None)])
    assert (err.field, err.index, err.rule) == ("transaction_id", 1, "not_null")
    assert "the event id" in str(err)
    err = error([row(user_id=None)])
    assert (err.field, err.rule) == ("user_id", "not_null") and "a join key" in str(err)
    err = error([row(ts=None)])
    assert (err.field, err.rule) == ("ts", "not_null") and "the event time" in str(err)


@pytest.mark.parametrize(("field", "value", "nearest", "problem"), [
    ("amount", "12.5", "12.5", "expected a number (float64), got the text '12.5'"),
    ("user_id", 7.5, "8", "expected an integer (int64), got 7.5"),
    ("user_id", "42", "42", "expected an integer (int64), got the text '42'"),
    ("user_id", True, "1", "expected an integer (int64), got True"),
    ("country", 33, "'33'", "expected text (string), got 33 (int)"),
    ("ts", 1_796_054_400, "'2026-11-30T16:00:00+00:00' (if 1796054400 is in epoch seconds)",
     "expected an ISO-8601 timestamp, got the number 1796054400"),
    ("ts", "yesterday", "'2026-11-30T17:00:00+00:00'", "expected an ISO-8601 timestamp, got 'yesterday'"),
])
def test_wrong_types_name_the_nearest_valid_value(field, value, nearest, problem):
    err = error([row(), row(transaction_id="t2"), row(transaction_id="t3", **{field: value})])
    assert (err.field, err.index, err.rule, err.nearest) == (field, 2, "type", nearest)
    assert problem in str(err)
    assert str(err).startswith(f"ingest into 'streams.transactions': row 2: field {field!r}: ")


def test_integers_sent_as_floats_are_accepted():
    table = validate_rows(stream_source(), [row(user_id=7.0, quantity=3.0)], bound=BOUND)
    assert table.column("user_id").to_pylist() == [7] and table.column("quantity").to_pylist() == [3]


def test_future_event_time_names_the_latest_accepted():
    err = error([row(), row(transaction_id="t2", ts="2026-11-30T12:06:00+00:00")])
    assert (err.field, err.index, err.rule) == ("ts", 1, "future_event")
    assert err.nearest == "'2026-11-30T12:05:00+00:00'"
    assert "HINDSIGHT_PUSH_MAX_FUTURE_SKEW" in str(err)
    assert validate_rows(stream_source(), [row(ts="2026-11-30T12:05:00+00:00")], bound=BOUND).num_rows == 1


def test_the_skew_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HINDSIGHT_PUSH_MAX_FUTURE_SKEW", "3d")
    later = dt.datetime.now(UTC) + dt.timedelta(days=2)
    assert validate_rows(stream_source(), [row(ts=later)]).num_rows == 1
    monkeypatch.setenv("HINDSIGHT_PUSH_MAX_FUTURE_SKEW", "1h")
    with pytest.raises(IngestValidationError, match="future"):
        validate_rows(stream_source(), [row(ts=later)])


def test_not_an_object():
    err = error([row(), ["t1", 7]])
    assert (err.field, err.index, err.rule) == (None, 1, "not_an_object")


def test_repeated_event_ids_keep_the_first_row():
    checked = validate(stream_source(), [row(amount=1.0), row(transaction_id="t2"), row(amount=3.0)], bound=BOUND)
    assert (checked.received, checked.duplicates) == (3, 1)
    assert checked.table.column("transaction_id").to_pylist() == ["t1", "t2"]
    assert checked.table.column("amount").to_pylist() == [1.0, 12.5]


def test_dataframes_and_arrow_tables():
    frame = pd.DataFrame([row(ts=pd.Timestamp("2026-11-30 11:00")), row(transaction_id="t2", ts=pd.Timestamp("2026-11-30 11:30"))])
    table = validate_rows(stream_source(), frame, bound=BOUND)
    assert table.column("ts").to_pylist()[1] == dt.datetime(2026, 11, 30, 11, 30, tzinfo=UTC)
    assert validate_rows(stream_source(), pa.Table.from_pandas(frame[list(reversed(frame.columns))]),
                         bound=BOUND).schema.names[0] == "transaction_id"
    err = error(frame.rename(columns={"country": "cntry"}))
    assert (err.field, err.index, err.rule, err.nearest) == ("cntry", None, "unknown_field", "'country'")
    assert "every row: field 'cntry'" in str(err)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[1, "amount"] = "lots"
    err = error(frame)
    assert (err.field, err.index, err.rule) == ("amount", 1, "type")


def test_decimal_dates_and_bools():
    stream = stream_source()
    stream = type(stream)(**{**stream.__dict__, "columns": (*stream.columns, Feature("fee", "decimal"),
                                                             Feature("day", "date"), Feature("flag", "bool"))})
    good = row(fee="1.25", day="2026-11-30", flag=False)
    table = validate_rows(stream, [good], bound=BOUND)
    assert table.column("fee").to_pylist() == [Decimal("1.2500")]
    assert table.column("day").to_pylist() == [dt.date(2026, 11, 30)]
    err = error([row(fee="1.23456", day="2026-11-30", flag=False)], stream)
    assert (err.field, err.rule, err.nearest) == ("fee", "type", "'1.2346'")
    err = error([row(fee=1, day="2026-11-30", flag="true")], stream)
    assert (err.field, err.rule, err.nearest) == ("flag", "type", "true")
    err = error([row(fee=1, day="2026-11-30T10:00:00", flag=True)], stream)
    assert (err.field, err.rule) == ("day", "type") and "'2026-11-30'" in err.nearest


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_an_infinite_or_nan_amount_is_refused_as_rows_and_as_arrow(value):
    """JSON's 1e999 parses as infinity: accepted, it made every sum, mean and max of its window null."""
    err = error([row(), row(transaction_id="t2", amount=value)])
    assert (err.field, err.index, err.rule) == ("amount", 1, "type") and "finite number" in str(err)
    arrow = pa.Table.from_pylist([row(ts=NOW), row(transaction_id="t2", ts=NOW, amount=value)])
    err = error(arrow)
    assert (err.field, err.index, err.rule) == ("amount", 1, "type") and "finite number" in str(err)
