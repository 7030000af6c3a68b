"""The dbt (Jinja) side of rules that also exist in Python, fed the shared tables in tests/cases/.

One `dbt run-operation` on a copy of the demo project answers every case; tests/unit/
test_conformance.py feeds the same tables to the Python side.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cases import CASES, load, type_pairs
from tests.fixtures.dbt_project import DbtProject, new_project

pytestmark = pytest.mark.integration

DURATIONS = load("durations")
STORAGE = load("feature_view_storage")
SCHEMA_TYPES = load("schema_changes")["types"]
TILE_COLUMNS = load("tile_columns")
EVENT_LOGS = load("event_log_locations")
DERIVED = load("derived_partition")
MARKER = "HINDSIGHT_CONFORMANCE "


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    project: DbtProject = new_project(tmp_path_factory.mktemp("conformance") / "project")
    shutil.copy(CASES / "conformance.sql", project.root / "macros" / "hs_conformance.sql")
    args = {
        "durations": [c["text"] for c in DURATIONS["valid"]] + DURATIONS["invalid"],
        "locations": STORAGE["location"],
        "partitions": [c["partition_by"] for c in STORAGE["partition_by"]],
        "type_pairs": [[SCHEMA_TYPES[a]["spark"], SCHEMA_TYPES[b]["spark"]] for a, b, _ in type_pairs()],
        "tile_columns": TILE_COLUMNS,
        "event_logs": EVENT_LOGS["location"],
        "derived": DERIVED,
    }
    result = project.dbt("run-operation", "hindsight_conformance", "--args", json.dumps(args))
    line = next(line for line in result.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line.removeprefix(MARKER))


def test_durations_agree_with_the_python_grammar(answers: dict) -> None:
    expected = [c["seconds"] for c in DURATIONS["valid"]] + [None] * len(DURATIONS["invalid"])
    texts = [c["text"] for c in DURATIONS["valid"]] + DURATIONS["invalid"]
    assert dict(zip(map(repr, texts), answers["durations"])) == dict(zip(map(repr, texts), expected))


def test_locations_agree_with_the_registry(answers: dict) -> None:
    assert answers["locations"] == [c["expected"] for c in STORAGE["location"]]


def test_partition_columns_agree_with_the_registry(answers: dict) -> None:
    assert answers["partitions"] == [c["expected"] for c in STORAGE["partition_by"]]



def test_type_changes_agree_with_the_duckdb_path(answers: dict) -> None:
    pairs = type_pairs()
    assert dict(zip([(a, b) for a, b, _ in pairs], answers["type_pairs"])) == {(a, b): allowed for a, b, allowed in pairs}


def test_tile_column_names_agree_with_tiles_py(answers: dict) -> None:
    assert answers["tile_features"] == [c["expected"] for c in TILE_COLUMNS["features"]]
    assert answers["tile_default_names"] == [c["expected"] for c in TILE_COLUMNS["default_names"]]
    assert answers["tile_parts"] == [c["expected"] for c in TILE_COLUMNS["parts"]]


def test_event_log_locations_agree_with_event_log_py(answers: dict) -> None:
    assert answers["event_logs"] == [c["expected"] for c in EVENT_LOGS["location"]]


def test_derived_partitions_agree_with_derived_partition_py(answers: dict) -> None:
    expected = [c["expected"] for c in DERIVED["values"]]
    assert answers["derived_of"] == expected
    assert answers["derived_sql"] == expected
    assert answers["derived_choice"] == [c["expected"] for c in DERIVED["choice"]]
