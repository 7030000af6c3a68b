"""Expectations declared in a feature view's config.meta.hindsight.expectations: read into the
registry, checked against Great Expectations' catalogue, its argument model and the view's columns."""

from __future__ import annotations

import pytest

from hindsight.registry_sync.diff import plan
from hindsight.registry_sync.errors import DefinitionErrors
from hindsight.registry_sync.model import Expectation, Registry
from hindsight.registry_sync.store import RegistryStore
from tests.unit.test_registry import build, entity_source, view_node


def manifest_with(expectations):
    node = view_node("user_stats", ["user_id"], meta={"owner": "risk@example.com", "hindsight": {"expectations": expectations}})
    return {
        "metadata": {"project_name": "hindsight"},
        "sources": {"s1": entity_source("user", ["user_id"])},
        "nodes": {"n1": node},
        "exposures": {},
    }


def problems(expectations) -> list[str]:
    with pytest.raises(DefinitionErrors) as raised:
        build(manifest_with(expectations))
    return raised.value.problems


WHERE = "feature view user_stats (models/features/user_stats.sql): meta.hindsight.expectations"


def test_expectations_are_read_into_the_registry_and_round_trip(tmp_path):
    registry = build(manifest_with([
        {"expect_column_values_to_not_be_null": {"column": "user_id"}},
        {"expect_column_values_to_be_between": {"column": "amount_sum_7d", "min_value": 0, "max_value": 1e6, "severity": "warning"}},
        {"expect_table_row_count_to_be_between": {"min_value": 1}},
        {"expect_column_pair_values_a_to_be_greater_than_b": {"column_A": "amount_sum_7d", "column_B": "txn_count_7d", "or_equal": True}},
    ]))
    view = registry.view("user_stats")
    assert view.expectations == (
        Expectation("expect_column_values_to_not_be_null", {"column": "user_id"}),
        Expectation("expect_column_values_to_be_between", {"column": "amount_sum_7d", "min_value": 0, "max_value": 1e6, "severity": "warning"}),
        Expectation("expect_table_row_count_to_be_between", {"min_value": 1}),
        Expectation("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "amount_sum_7d", "column_B": "txn_count_7d", "or_equal": True}),
    )
    stored = RegistryStore(tmp_path).write(registry)
    assert RegistryStore(tmp_path).read(stored.version).view("user_stats").expectations == view.expectations


def test_a_view_without_expectations_has_none():
    manifest = manifest_with(None)
    del manifest["nodes"]["n1"]["config"]["meta"]["hindsight"]
    assert build(manifest).view("user_stats").expectations == ()


def test_an_unknown_expectation_name_suggests_the_nearest_and_lists_great_expectations():
    (problem,) = problems([{"expect_column_values_to_be_not_null": {"column": "user_id"}}])
    assert problem.startswith(
        f"{WHERE} entry 1: expect_column_values_to_be_not_null is not a Great Expectations expectation (did you mean "
        "expect_column_values_to_be_null, expect_column_values_to_not_be_null, expect_column_values_to_be_in_set?); "
        "Great Expectations has: expect_column_distinct_values_to_be_in_set, "
    )
    listed = problem.split("; Great Expectations has: ")[1].split(", ")
    assert len(listed) >= 50 and "expect_column_values_to_be_between" in listed and listed == sorted(listed)


def test_bad_arguments_and_columns_are_named():
    found = problems([
        {"expect_column_values_to_be_between": {"column": "amount_sum_7", "min_value": 0}},
        {"expect_column_values_to_be_between": {"column": "amount_sum_7d", "min_value": "zero", "maxx": 3}},
        {"expect_column_values_to_not_be_null": "user_id"},
        {"expect_column_values_to_not_be_null": {"column": "user_id"}, "expect_column_to_exist": {"column": "user_id"}},
    ])
    assert found == [
        f"{WHERE} entry 1 (expect_column_values_to_be_between): column amount_sum_7 is not a column of the view (did you mean amount_sum_7d?)",
        f"{WHERE} entry 2 (expect_column_values_to_be_between): argument min_value: value is not a valid float; argument maxx: is not an argument it takes; "
        "min_value and max_value cannot both be None",
        f"{WHERE} entry 3 (expect_column_values_to_not_be_null): the arguments must be a mapping like {{column: user_id}}; got 'user_id'",
        f"{WHERE} entry 4 must be one mapping {{expectation_name: {{arguments}}}}; got "
        "{'expect_column_values_to_not_be_null': {'column': 'user_id'}, 'expect_column_to_exist': {'column': 'user_id'}}",
    ]


def test_expectations_must_be_a_list():
    assert problems({"expect_column_values_to_not_be_null": {"column": "user_id"}}) == [
        f"{WHERE} must be a list of {{expectation_name: {{argument: value, ...}}}}; got "
        "{'expect_column_values_to_not_be_null': {'column': 'user_id'}}"
    ]


def test_plan_shows_changed_expectations():
    before = build(manifest_with([{"expect_column_values_to_not_be_null": {"column": "user_id"}}]))
    after = build(manifest_with([]))
    lines = [str(c) for c in plan(before, after).changes]
    assert lines == ["~ feature_view user_stats: expectations: 1 -> 0 (validate again before sync)"]
    assert plan(Registry(project="hindsight"), before).breaking == ()
