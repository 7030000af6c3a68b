"""A pushed value must be of its column's type, by the same rule as the ingest API
(`hindsight.core.values`): one the view's Delta table cannot hold is refused before anything is
acknowledged, naming the row, the field and the nearest valid value. Before, "12" for an int64 key
was acknowledged, and the flusher then failed on it for ever, holding back every later push."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from hindsight.core.arrow_types import ARROW_TYPES
from hindsight.online_sync import OnlineStoreConfig, push
from hindsight.online_sync.push import PushValueError, push_item
from tests.fixtures.dynamodb import make_registry, make_view

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GOOD = {"user_id": 12, "ts": "2026-11-30T11:00:00Z", "created": None, "amount": 1.5, "count": 3, "country": "FR"}


class NoStore:
    def __getattr__(self, name):
        raise AssertionError(f"the store was called ({name}) although a row was refused")


@pytest.fixture
def view(tmp_path):
    return dataclasses.replace(make_view(tmp_path, push=True), join_key_dtypes=("int64",))


@pytest.mark.parametrize(
    ("field", "value", "nearest"),
    [
        ("user_id", "12", "12"),
        ("user_id", -(2**63) - 1, str(-(2**63))),
        ("user_id", True, "1"),
        ("count", 1980.5, "1980"),
        ("count", "7", "7"),
        ("amount", "7500", "7500.0"),
        ("country", 33, "'33'"),
        ("ts", "soon", "'2026-11-30T17:00:00+00:00'"),
    ],
)
def test_a_value_of_another_type_is_refused_naming_the_field_and_nearest_value(view, field, value, nearest):
    with pytest.raises(PushValueError) as caught:
        push(make_registry(view), OnlineStoreConfig(), view.name, [GOOD, {**GOOD, field: value}], client=NoStore())
    error = caught.value
    assert (error.index, error.field, error.rule, error.nearest) == (1, field, "type", nearest)
    assert f"row 1: field {field!r}" in str(error)


def test_what_push_accepts_the_delta_table_takes(view):
    """Each accepted row's journal entry casts to the view's Delta schema (what the flusher does)."""
    from hindsight.online_sync.push import _row

    rows = [GOOD, {**GOOD, "user_id": 13.0, "count": 4.0, "amount": 2}, {**GOOD, "amount": None, "country": None}]
    journal = [_row(view, row, i, None).journal for i, row in enumerate(rows)]
    schema = pa.schema([pa.field("user_id", pa.int64()), pa.field("amount", ARROW_TYPES["float64"]),
                        pa.field("count", pa.int64()), pa.field("country", pa.string())])
    table = pa.Table.from_pylist([{k: entry[k] for k in schema.names} for entry in journal], schema=schema)
    assert table.column("user_id").to_pylist() == [12, 13, 12]
    assert table.column("count").to_pylist() == [3, 4, 3]


def test_an_untyped_key_still_takes_text_or_integers(tmp_path):
    """A registry without key types (older manifests) keeps the key rule of online reads: text or integers."""
    view = make_view(tmp_path, push=True)
    assert push_item(view, {**GOOD, "user_id": "u-12"})[0] == "u-12"
