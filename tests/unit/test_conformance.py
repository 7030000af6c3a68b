"""The Python side of rules that also exist in Jinja, fed the shared tables in tests/cases/.

tests/integration/test_conformance_jinja.py feeds the same tables to the dbt macros, so a rule
changed in one language and not the other fails one of the two.
"""

from __future__ import annotations

import datetime as dt

import pytest

from hindsight.core.durations import format_duration, parse_duration
from hindsight.registry_sync.manifest import delta_location, partition_columns_of
from tests.cases import load

DURATIONS = load("durations")
STORAGE = load("feature_view_storage")


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
