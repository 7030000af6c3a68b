"""Values, keys and event order as DynamoDB attributes: round trips and ordering."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hindsight.online_sync.codec import (
    ItemTooLarge,
    check_item_size,
    decoder,
    encoder,
    entity_key,
    event_micros,
    micros_to_datetime,
    order_key,
    to_micros,
)

UTC = dt.timezone.utc
micros = st.integers(min_value=to_micros(dt.datetime(1, 1, 1, tzinfo=UTC)),
                     max_value=to_micros(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)))


def round_trip(dtype: str, value):
    return decoder(dtype)(encoder(dtype)(value))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_every_float64_round_trips_exactly(value):
    back = round_trip("float64", value)
    assert (math.isnan(back) and math.isnan(value)) or (back == value and math.copysign(1, back) == math.copysign(1, value))


def test_floats_outside_dynamodb_number_range_go_in_a_string():
    assert encoder("float64")(1e-300) == {"S": "1e-300"}
    assert encoder("float64")(float("inf")) == {"S": "Infinity"}
    assert encoder("float64")(float("-inf")) == {"S": "-Infinity"}
    assert encoder("float64")(float("nan")) == {"S": "nan"}
    assert encoder("float64")(2.5) == {"N": "2.5"}
    assert encoder("float64")(-0.0) == {"S": "-0.0"}


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int64_round_trips(value):
    assert round_trip("int64", value) == value
    assert type(round_trip("int64", value)) is int


@given(st.text())
def test_strings_round_trip_including_empty(value):
    assert round_trip("string", value) == value


@given(st.booleans())
def test_bools_stay_bools(value):
    assert round_trip("bool", value) is value


@given(micros)
def test_timestamps_round_trip_as_utc_datetimes(value):
    moment = micros_to_datetime(value)
    assert round_trip("timestamp", moment) == moment
    assert round_trip("timestamp", value) == moment
    assert round_trip("timestamp", moment).tzinfo == UTC


def test_naive_timestamps_and_iso_strings_are_utc():
    aware = dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert round_trip("timestamp", dt.datetime(2024, 5, 1, 12, 30)) == aware
    assert round_trip("timestamp", "2024-05-01T14:30:00+02:00") == aware


@given(st.dates())
def test_dates_round_trip(value):
    assert round_trip("date", value) == value


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20))
def test_decimals_round_trip_exactly(value):
    back = round_trip("decimal", value)
    assert isinstance(back, Decimal) and back == value


@given(micros, st.none() | micros, micros, st.none() | micros)
def test_order_key_sorts_like_event_then_created(e1, c1, e2, c2):
    def pair(e, c):
        return (e, -math.inf if c is None else c)

    assert (order_key(e1, c1) < order_key(e2, c2)) == (pair(e1, c1) < pair(e2, c2))
    assert event_micros(order_key(e1, c1)) == e1
    assert len(str(order_key(e1, c1))) <= 38  # DynamoDB numbers: 38 significant digits


def test_entity_keys_are_text_and_ints_match_their_digits():
    assert entity_key([12]) == entity_key(["12"]) == entity_key([12.0]) == "12"
    assert entity_key([12, "FR"]) == '["12","FR"]'
    assert entity_key(["a,b", "c"]) != entity_key(["a", "b,c"])
    with pytest.raises(ValueError, match="null"):
        entity_key([None])


def test_items_over_400_kb_are_refused_with_the_entity_named():
    check_item_size({"f": {"S": "x" * 100_000}}, "view v, entity 1")
    with pytest.raises(ItemTooLarge, match="view v, entity 1.*400"):
        check_item_size({"f": {"S": "é" * 210_000}}, "view v, entity 1")
