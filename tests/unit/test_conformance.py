"""The Python side of rules that also exist in Jinja, fed the shared tables in tests/cases/.

tests/integration/test_conformance_jinja.py feeds the same tables to the dbt macros, so a rule
changed in one language and not the other fails one of the two.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from hindsight.core.durations import format_duration, parse_duration
from hindsight.offline_store.derived_partition import partition_values
from hindsight.registry_sync.manifest import delta_location, partition_columns_of
from hindsight.offline_store import tiles
from hindsight.offline_store.delta_writer import _compatible
from hindsight.offline_store.event_log import event_log_location
from tests.cases import load, type_pairs

DURATIONS = load("durations")
STORAGE = load("feature_view_storage")
TILE_COLUMNS = load("tile_columns")
EVENT_LOGS = load("event_log_locations")


@pytest.mark.parametrize("case", DURATIONS["valid"], ids=lambda c: repr(c["text"]))
def test_valid_durations(case) -> None:
    assert parse_duration(case["text"]) == dt.timedelta(seconds=case["seconds"])


@pytest.mark.parametrize("text", DURATIONS["invalid"], ids=repr)
def test_invalid_durations_name_the_text_and_the_form(text) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert f"cannot parse duration {text!r}" in str(raised.value)
    assert "like '30d', '12h' or '1d12h'" in str(raised.value)


@pytest.mark.parametrize("case", DURATIONS["valid"], ids=lambda c: repr(c["text"]))
def test_formatted_durations_parse_back(case) -> None:
    delta = dt.timedelta(seconds=case["seconds"])
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize("case", STORAGE["location"], ids=lambda c: f"{c['location']!r}-{c['location_root']!r}")
def test_delta_location(case) -> None:
    if case["expected"] is None:
        with pytest.raises(ValueError, match="no Delta location: set location_root"):
            delta_location(case["location"], case["location_root"], case["identifier"])
    else:
        assert delta_location(case["location"], case["location_root"], case["identifier"]) == case["expected"]


@pytest.mark.parametrize("case", STORAGE["partition_by"], ids=lambda c: repr(c["partition_by"]))
def test_partition_columns(case) -> None:
    assert partition_columns_of(case["partition_by"]) == case["expected"]


DERIVED = load("derived_partition")


@pytest.mark.parametrize("case", DERIVED["values"], ids=lambda c: f"{c['column']}-{c['moment']}")
def test_derived_partition_values(case) -> None:
    moment = dt.datetime.fromisoformat(case["moment"]).replace(tzinfo=dt.timezone.utc)
    expected = dt.date.fromisoformat(case["expected"])
    column = partition_values(case["column"], pa.array([moment], pa.timestamp("us", tz="UTC")))
    assert column.to_pylist() == [expected]


def _arrow(name: str) -> pa.DataType:
    """An Arrow type from schema_changes.yml's spelling (pyarrow's own string forms)."""
    if name.startswith("decimal128("):
        precision, scale = name.removeprefix("decimal128(").removesuffix(")").split(",")
        return pa.decimal128(int(precision), int(scale))
    if name.startswith("timestamp["):
        return pa.timestamp("us", tz="UTC" if "tz=" in name else None)
    return pa.type_for_alias(name)


SCHEMA_TYPES = load("schema_changes")["types"]


@pytest.mark.parametrize(("incoming", "existing", "allowed"), type_pairs(), ids=lambda v: str(v))
def test_type_changes(incoming: str, existing: str, allowed: bool) -> None:
    arrow_in, arrow_ex = _arrow(SCHEMA_TYPES[incoming]["arrow"]), _arrow(SCHEMA_TYPES[existing]["arrow"])
    assert _compatible(arrow_in, arrow_ex) is allowed


@pytest.mark.parametrize("case", TILE_COLUMNS["features"], ids=lambda c: c["expected"])
def test_tile_feature_names(case) -> None:
    assert tiles.feature_name(case["name"], case["function"], case["window"]) == case["expected"]


@pytest.mark.parametrize("case", TILE_COLUMNS["default_names"], ids=lambda c: c["column"])
def test_tile_default_names(case) -> None:
    assert tiles.default_name(case["column"]) == case["expected"]


@pytest.mark.parametrize("case", TILE_COLUMNS["parts"], ids=lambda c: f"{c['column']}-{'-'.join(c['functions'])}")
def test_tile_parts_needed(case) -> None:
    assert tiles.parts_needed(case["column"], case["functions"]) == case["expected"]


@pytest.mark.parametrize("case", EVENT_LOGS["location"], ids=lambda c: c["expected"])
def test_event_log_locations(case) -> None:
    assert event_log_location(case["offline_store"], case["source"], case["table"], case["location"]) == case["expected"]
