"""An aggregation view through the registry: real dbt run, `hindsight apply`, `registry show`, the contract gate.

The clicks project of test_aggregation_tiles.py (a user's project, not the demo) with its entity
declared, a model .yml documenting two features and a feature service using two of them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from tests.aggregation_oracle import assert_tiles_match, reference_tiles
from tests.integration.test_aggregation_tiles import DBT_PROJECT, EVENTS, PROFILES, VIEW, Project, write_events

pytestmark = pytest.mark.integration

SOURCES = """\
version: 2
sources:
  - name: raw
    schema: raw
    meta:
      external_location: "read_parquet('{{ env_var('CLICKS_RAW') }}/{name}/*.parquet')"
    tables:
      - name: clicks
        meta:
          hindsight:
            entity: {name: user, join_keys: [user_id], description: A site visitor.}
"""
MODEL_YML = """\
version: 2
models:
  - name: user_clicks
    description: Clicks per user in sliding windows.
    columns:
      - name: click_count_1h
        description: Clicks in the last hour.
      - name: amount_sum_1d
        description: Amount clicked in the last day.
"""
SERVICES = """\
version: 2
exposures:
  - name: click_model
    type: ml
    owner: {name: growth}
    meta:
      hindsight:
        features: [user_clicks:click_count_1h, user_clicks:amount_sum_1d]
"""
MODEL = "models/features/user_clicks.sql"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Built and applied once; each test restores the model it edits."""
    root = tmp_path_factory.mktemp("clicks_registry") / "clicks"
    (root / "models" / "features").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "profiles.yml").write_text(PROFILES)
    (root / "models" / "sources.yml").write_text(SOURCES)
    (root / MODEL).write_text(VIEW)
    (root / "models" / "features" / "user_clicks.yml").write_text(MODEL_YML)
    (root / "models" / "features" / "services.yml").write_text(SERVICES)
    project = Project(root)
    project.run("hindsight", "init")
    project.dbt("deps")
    write_events(project.raw, EVENTS, "part-0")
    project.dbt("run", "--select", "user_clicks")
    project.run("hindsight", "apply", "--no-online")
    return project


@pytest.fixture
def model(project: Project):
    """The model file; put back after the test."""
    path: Path = project.root / MODEL
    yield path
    path.write_text(VIEW)


def test_the_tiles_dbt_wrote_match_the_oracle_s_reference_tiles(project: Project) -> None:
    """The oracle and the materialization agree on the layout, the types and every value."""
    events = pa.table({
        "user_id": pa.array(EVENTS["user_id"], pa.int64()),
        "ts": pa.array(list(EVENTS["ts"]), pa.timestamp("us", "UTC")),
        "amount": pa.array(EVENTS["amount"], pa.float64()),
        "country": pa.array(EVENTS["country"], pa.string()),
    })
    spec = [
        {"column": "*", "name": "click", "functions": ["count"]},
        {"column": "amount", "functions": ["count", "sum", "mean", "max"]},
        {"column": "amount", "functions": ["min", "stddev", "last"]},
        {"column": "country", "functions": ["last", "min"]},
    ]
    actual = DeltaTable(str(project.store / "user_clicks")).to_pyarrow_table()
    assert_tiles_match(actual, reference_tiles(events, ["user_id"], "ts", spec, "1h"))


def test_registry_show_describes_each_aggregation(project: Project) -> None:
    lines = project.run("hindsight", "registry", "show", "user_clicks").stdout.splitlines()
    assert "kind:                 aggregation" in lines and "aggregation_interval: 1h" in lines
    start = lines.index("features (15):") + 1
    assert lines[start:start + 2] == [
        "  click_count_1h    int64    count(*) over 1h        Clicks in the last hour.",
        "  click_count_1d    int64    count(*) over 1d",
    ]
    assert "  amount_sum_1d     float64  sum(amount) over 1d     Amount clicked in the last day." in lines
    assert lines[-2:] == ["  country_last_1d   string   last(country) over 1d", "  country_min_1d    string   min(country) over 1d"]
    document = json.loads(project.run("hindsight", "registry", "show", "user_clicks", "--json").stdout)
    assert document["aggregation_interval"] == "1h" and document["ttl"] is None
    features = {f["name"]: f for f in document["features"]}
    assert features["amount_stddev_1d"] == {"name": "amount_stddev_1d", "type": "float64", "description": "",
                                            "function": "stddev", "input_column": "amount", "window": "1d"}
    assert features["amount_last_1d"]["type"] == "float64" and features["amount_count_1h"]["type"] == "int64"


def test_apply_writes_the_tile_parts_the_service_needs(project: Project) -> None:
    lines = (project.root / "data" / "registry" / "contracts.jsonl").read_text().splitlines()
    records = {r["column"]: (r["role"], r["type"], r["used_by"]) for r in map(json.loads, lines)}
    assert records == {
        "user_id": ("key", "long", []),
        "_events": ("feature", "long", ["feature service click_model (click_count_1h)"]),
        "amount__n": ("feature", "long", ["feature service click_model (amount_sum_1d)"]),
        "amount__sum": ("feature", "double", ["feature service click_model (amount_sum_1d)"]),
    }


def test_dropping_a_used_aggregation_is_refused(project: Project, model: Path) -> None:
    model.write_text(VIEW.replace("['count', 'sum', 'mean', 'max']", "['count', 'max']").replace("'min', 'stddev', 'last'", "'min', 'last'"))
    result = project.dbt("run", "--select", "user_clicks", check=False)
    assert result.returncode == 1
    assert ("feature view user_clicks: refusing a breaking change: amount__sum (double) is removed (used by feature "
            "service click_model (amount_sum_1d)). The Delta table was not changed") in result.stdout


def test_retyping_a_used_input_is_refused(project: Project, model: Path) -> None:
    model.write_text(VIEW.replace("select user_id, ts, amount, country", "select user_id, ts, cast(amount as bigint) as amount, country"))
    result = project.dbt("run", "--select", "user_clicks", "--full-refresh", check=False)
    assert result.returncode == 1
    assert "amount__sum changes type double -> long (used by feature service click_model (amount_sum_1d))" in result.stdout


def test_dropping_what_no_service_uses_is_not_refused(project: Project, model: Path) -> None:
    model.write_text(VIEW.replace("{'column': 'country', 'functions': ['last', 'min'], 'windows': ['1d']},", ""))
    project.dbt("run", "--select", "user_clicks", "--full-refresh")
    plan = project.run("hindsight", "plan", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "- feature user_clicks:country_last_1d" in plan.stdout
    model.write_text(VIEW)  # the table the other tests read has every tile column again
    project.dbt("run", "--select", "user_clicks", "--full-refresh")


def test_a_new_interval_for_a_used_view_is_a_breaking_plan(project: Project, model: Path) -> None:
    model.write_text(VIEW.replace("aggregation_interval='1h'", "aggregation_interval='30m'"))
    plan = project.run("hindsight", "plan", check=False)
    assert plan.returncode == 1
    assert "~ feature_view user_clicks: aggregation_interval 1h -> 30m; used by feature service click_model  [BREAKING]" in plan.stdout


def test_sail_refuses_the_same_changes_with_the_same_message(project: Project, model: Path, sail_remote: str, tmp_path: Path) -> None:
    """The Spark gate reads the contracts `hindsight apply` wrote and checks Sail's staged tiles."""
    raw, store = tmp_path / "raw", tmp_path / "store"
    spark = {"CLICKS_TARGET": "spark", "CLICKS_RAW": str(raw), "HINDSIGHT_OFFLINE_STORE": str(store),
             "CLICKS_SPARK_REMOTE": f"{sail_remote}/;session_id={uuid.uuid4()}",
             # The test's Sail server runs in another folder than the project (`hindsight spark up` would not).
             "HINDSIGHT_REGISTRY": str(project.root / "data" / "registry")}
    write_events(raw, EVENTS, "part-0")
    project.run("dbt", "run", "--select", "user_clicks", **spark)  # the same tile types: no breach
    model.write_text(VIEW.replace("select user_id, ts, amount, country", "select user_id, ts, cast(amount as bigint) as amount, country"))
    refused = project.run("dbt", "run", "--select", "user_clicks", "--full-refresh", check=False, **spark)
    assert refused.returncode == 1
    assert ("feature view user_clicks: refusing a breaking change: amount__sum changes type double -> long (used by "
            "feature service click_model (amount_sum_1d)). The Delta table was not changed.") in refused.stdout, refused.stdout[-3000:]
