"""Stream sources in real dbt runs on DuckDB: the on-run-start hook creates the empty event log and
points source('streams', 'transactions') at it; events written to the log (as the flusher writes
them, with delta-rs) reach the stream-fed aggregation view's tiles; the registry keeps the view's
compiled SQL in every apply mode; and the hook runs in a user's project that installs Hindsight.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from hindsight.offline_store.duckdb_delta import load_delta_extension
from hindsight.offline_store.event_log import (
    EVENT_DATE,
    INGESTED_AT,
    PARTITION_BY,
    PROCESSING_RANGE_END,
    PROCESSING_RANGE_START,
    event_log_schema,
    event_log_uri,
)
from hindsight.registry_sync.store import RegistryStore
from tests.fixtures.dbt_project import DbtProject

pytestmark = pytest.mark.integration

VIEW = "user_stream_activity"


def log_uri(project: DbtProject) -> str:
    return event_log_uri(project.settings.offline_store, "streams", "transactions")


def test_the_first_build_creates_the_empty_event_log_and_the_view_builds_on_it(demo_project: DbtProject):
    log = DeltaTable(log_uri(demo_project))
    declared = [("transaction_id", "int64"), ("user_id", "int64"), ("merchant_id", "int64"), ("amount", "float64"),
                ("country", "string"), ("ts", "timestamp")]
    assert pa.schema(log.schema().to_arrow()) == event_log_schema(declared)
    assert log.metadata().partition_columns == list(PARTITION_BY)
    assert log.to_pyarrow_table().num_rows == 0
    assert demo_project.table(VIEW).to_pyarrow_table().num_rows == 0
    with duckdb.connect(str(demo_project.settings.duckdb_path), read_only=True) as conn:
        load_delta_extension(conn)
        kind = conn.sql("select table_type from information_schema.tables "
                        "where table_schema = 'streams' and table_name = 'transactions'").fetchall()
        assert kind == [("VIEW",)]
        assert conn.sql('select count(*) from "streams"."transactions"').fetchall() == [(0,)]


def events(now: dt.datetime) -> pa.Table:
    """Eight transactions of three users in the last hour, typed as the event log stores them."""
    rows = [
        # (id, user, merchant, amount, minutes ago)
        (1, 1, 10, 5.0, 50), (2, 1, 11, 7.5, 9), (3, 1, 10, 2.5, 3), (4, 1, 12, 10.0, 3),
        (5, 2, 10, 100.0, 30), (6, 2, 10, 1.0, 2), (7, 3, 13, 42.0, 1), (8, 3, 13, 8.0, 59),
    ]
    ts = [now - dt.timedelta(minutes=r[4]) for r in rows]
    schema = event_log_schema([("transaction_id", "int64"), ("user_id", "int64"), ("merchant_id", "int64"),
                               ("amount", "float64"), ("country", "string"), ("ts", "timestamp")])
    return pa.table({
        "transaction_id": [r[0] for r in rows], "user_id": [r[1] for r in rows], "merchant_id": [r[2] for r in rows],
        "amount": [r[3] for r in rows], "country": ["FR"] * len(rows), "ts": ts,
        INGESTED_AT: [now] * len(rows), EVENT_DATE: [t.date() for t in ts],
    }, schema=schema)


def test_events_in_the_log_reach_the_tiles_of_an_incremental_and_a_full_build(project_copy: DbtProject):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    batch = events(now)
    write_deltalake(log_uri(project_copy), batch, mode="append", partition_by=list(PARTITION_BY))
    expected = {}
    for user, amount in zip(batch["user_id"].to_pylist(), batch["amount"].to_pylist()):
        count, total = expected.get(user, (0, 0.0))
        expected[user] = (count + 1, total + amount)

    def per_user() -> dict[int, tuple[int, float]]:
        tiles = project_copy.table(VIEW).to_pyarrow_table()
        # The newest row of each (user, interval) is that interval's whole tile.
        newest = tiles.group_by(["user_id", "_tile_start"]).aggregate([("event_timestamp", "max")])
        whole = tiles.join(newest.rename_columns(["user_id", "_tile_start", "event_timestamp"]),
                           ["user_id", "_tile_start", "event_timestamp"], join_type="inner")
        totals = whole.group_by("user_id").aggregate([("_events", "sum"), ("amount__sum", "sum")])
        return {u: (n, s) for u, n, s in zip(*(totals[c].to_pylist() for c in ("user_id", "_events_sum", "amount__sum_sum")))}

    project_copy.dbt("build", "--select", VIEW)
    assert per_user() == expected
    # 1-minute tiles: every interval starts on a whole minute.
    assert pc.all(pc.equal(pc.second(project_copy.table(VIEW).to_pyarrow_table()["_tile_start"]), 0)).as_py()
    project_copy.dbt("build", "--select", VIEW, "--full-refresh")
    assert per_user() == expected
    # A second hook run leaves the existing log alone: still the events, still one data commit.
    project_copy.dbt("run", "--select", VIEW)
    assert DeltaTable(log_uri(project_copy)).to_pyarrow_table().num_rows == batch.num_rows


def registry_json(project: DbtProject) -> dict:
    store = RegistryStore(project.settings.registry_dir)
    return json.loads((project.settings.registry_dir / f"v{store.versions()[-1]:06d}.json").read_text())


def stream_view(document: dict) -> dict:
    return next(v for v in document["feature_views"] if v["name"] == VIEW)


def test_stream_sql_is_in_the_registry_after_apply_with_and_without_parse(project_copy: DbtProject):
    # `apply` parses: the manifest then has no compiled SQL, and the stream view is compiled.
    project_copy.run("hindsight", "apply", "--no-online")
    view = stream_view(registry_json(project_copy))
    assert view["stream_source"] == "streams.transactions" and view["stream_sql_dialect"] == "duckdb"
    sql = view["stream_sql"]
    assert '"streams"."transactions"' in sql
    start, end = sql.index(PROCESSING_RANGE_START), sql.index(PROCESSING_RANGE_END)
    assert start < end
    # The span is one predicate: replaced by 1 = 1, the SQL still runs (over the empty log).
    whole = sql[:start] + "1 = 1" + sql[end + len(PROCESSING_RANGE_END):]
    with duckdb.connect(str(project_copy.settings.duckdb_path), read_only=True) as conn:
        load_delta_extension(conn)
        assert conn.sql(whole).fetchall() == []
        assert [c[0] for c in conn.sql(whole).description] == ["user_id", "event_timestamp", "amount"]
    # After dbt build, --no-parse reads the compiled SQL from the manifest.
    project_copy.dbt("build", "--select", VIEW)
    result = project_copy.run("hindsight", "apply", "--no-parse", "--no-online")
    # The same SQL (the build's processing range is not part of it): no new version.
    assert result.stdout.strip() == "Registry unchanged (version 1)."
    document = registry_json(project_copy)
    assert document["stream_sources"][0]["delta_uri"] == log_uri(project_copy)


SHOP_SOURCES = """version: 2
sources:
  - name: app
    tables:
      - name: customers
        meta:
          hindsight:
            entity: {name: customer, join_keys: [customer_id]}
  - name: events
    tables:
      - name: clicks
        meta:
          hindsight:
            stream: {event_id: click_id, timestamp_field: clicked_at, entities: [customer]}
        columns:
          - {name: click_id, data_type: string, description: Unique id of the click.}
          - {name: customer_id, data_type: int64, description: Who clicked.}
          - {name: clicked_at, data_type: timestamp, description: When.}
"""
SHOP_VIEW = """{{ config(entities=['customer_id'], timestamp_field='clicked_at', aggregation_interval='1m',
    windows=['30m'], aggregations=[{'column': '*', 'name': 'click', 'functions': ['count']}], online=true) }}
select customer_id, clicked_at from {{ source('events', 'clicks') }} where {{ hindsight.source_time_filter('clicked_at') }}
"""


def test_the_hook_runs_in_a_project_that_installs_hindsight(tmp_path):
    """A user's project: `hindsight init` + `dbt deps`, no hook of its own; dbt runs the package's."""
    root = tmp_path / "shop"
    (root / "models" / "features").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "dbt_project.yml").write_text("name: shop\nversion: '1.0.0'\nconfig-version: 2\nprofile: shop\n")
    (root / "profiles.yml").write_text("shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: data/shop.duckdb\n")
    shop = DbtProject(root)
    env = {k: v for k, v in shop.env().items() if not k.startswith(("HINDSIGHT_", "DBT_TARGET", "DBT_LOG"))}
    import subprocess

    from tests.fixtures.dbt_project import BIN

    def run(*command: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}: {result.stdout[-4000:]}\n{result.stderr[-2000:]}"
        return result

    run("hindsight", "init", "--project-dir", str(root))
    run("dbt", "deps", "--quiet")
    (root / "models" / "sources.yml").write_text(SHOP_SOURCES)
    (root / "models" / "features" / "customer_clicks.sql").write_text(SHOP_VIEW)
    (root / "models" / "features" / "customer_clicks.yml").write_text(
        "version: 2\nmodels:\n  - name: customer_clicks\n    columns:\n      - {name: click_count_30m, description: Clicks in the last 30 minutes.}\n")
    run("dbt", "build")
    log = DeltaTable(str(root / "data/offline_store/_streams/events/clicks"))
    assert pa.schema(log.schema().to_arrow()).names == ["click_id", "customer_id", "clicked_at", INGESTED_AT, EVENT_DATE]
    assert DeltaTable(str(root / "data/offline_store/customer_clicks")).to_pyarrow_table().num_rows == 0
    run("hindsight", "apply", "--no-online")
    shown = json.loads(run("hindsight", "registry", "show", "clicks", "--json").stdout)
    assert shown["feeds"] == ["customer_clicks"] and shown["event_log"] == str(root / "data/offline_store/_streams/events/clicks")


def test_on_spark_the_hook_creates_the_log_and_registers_events_delta_rs_wrote(tmp_path, sail_remote):
    """Sail: the first build creates the empty log (0 rows); events appended with delta-rs reach the tiles."""
    from tests.fixtures.dbt_project import new_project

    project = new_project(tmp_path / "project")
    project.generate()
    project = project.with_target("spark", sail_remote)
    project.dbt("build", "--select", VIEW)
    log = DeltaTable(log_uri(project))
    assert log.metadata().partition_columns == list(PARTITION_BY)
    assert pa.schema(log.schema().to_arrow()).names == [
        "transaction_id", "user_id", "merchant_id", "amount", "country", "ts", INGESTED_AT, EVENT_DATE]
    assert project.table(VIEW).to_pyarrow_table().num_rows == 0

    batch = events(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    write_deltalake(log_uri(project), batch, mode="append", partition_by=list(PARTITION_BY))
    project.dbt("build", "--select", VIEW, "--full-refresh")
    tiles = project.table(VIEW).to_pyarrow_table()
    newest = tiles.group_by(["user_id", "_tile_start"]).aggregate([("event_timestamp", "max")])
    whole = tiles.join(newest.rename_columns(["user_id", "_tile_start", "event_timestamp"]),
                       ["user_id", "_tile_start", "event_timestamp"], join_type="inner")
    totals = whole.group_by("user_id").aggregate([("_events", "sum")])
    assert dict(zip(totals["user_id"].to_pylist(), totals["_events_sum"].to_pylist())) == {1: 4, 2: 2, 3: 2}
