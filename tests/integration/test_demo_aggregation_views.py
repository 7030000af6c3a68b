"""The demo's aggregation views (issue 9): `dbt build` builds and tests them, and a user's project never sees them.

The demo's window features ("in the last X") are aggregation views: user_transaction_aggregates
(5-minute tiles) and merchant_risk (daily tiles). Their tile values are checked against the oracle in
tests/integration/test_offline_store.py; here: the build as a whole (models, dbt unit tests, data
tests), the tile layout, and that a project installing Hindsight as a dbt package builds its own
aggregation view with none of the demo's nodes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import requests
from deltalake import DeltaTable

from hindsight.offline_store.derived_partition import GRAINS
from hindsight.project import project_registry
from tests.fixtures.serving import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UTC = dt.timezone.utc

#: The Delta columns of each demo aggregation view: keys, as-of time, interval start, the parts its
#: functions need (offline_store/tiles.py); the derived partition column follows, at its chosen grain.
TILE_COLUMNS = {
    "user_transaction_aggregates": [
        "user_id", "event_timestamp", "_tile_start", "_events",
        "amount__n", "amount__sum", "amount__m2", "amount__min", "amount__max",
        "country__last", "country__last_at",
    ],
    "merchant_risk": [
        "merchant_id", "event_timestamp", "_tile_start", "_events", "amount__n", "amount__sum",
        "fraud__n", "fraud__sum",
    ],
}
UNIT_TESTS = {
    "user_transaction_aggregates": "user_transaction_aggregates_selects_the_transactions",
    "merchant_risk": "merchant_risk_selects_transactions_with_a_0_1_fraud_flag",
}


def test_dbt_build_builds_and_tests_the_demos_aggregation_views(project_copy):
    project_copy.dbt("build", "--select", *TILE_COLUMNS, "--full-refresh")
    results = json.loads((project_copy.settings.dbt_target_dir / "run_results.json").read_text())["results"]
    status = {r["unique_id"]: r["status"] for r in results}
    for view, columns in TILE_COLUMNS.items():
        assert status[f"model.hindsight.{view}"] == "success"
        assert status[f"unit_test.hindsight.{view}.{UNIT_TESTS[view]}"] == "pass"
        data_tests = {k: v for k, v in status.items() if k.startswith("test.hindsight.") and f"_{view}_" in k}
        assert len(data_tests) >= 3 and set(data_tests.values()) == {"pass"}, data_tests
        table = project_copy.table(view)
        assert [field.name for field in table.schema().fields] == columns + table.metadata().partition_columns
        assert table.metadata().partition_columns[0] in GRAINS
        assert table.history(1)[0]["operation"] == "WRITE"
        tiles = table.to_pyarrow_table(columns=["event_timestamp", "_tile_start"]).to_pandas()
        interval = dt.timedelta(minutes=5) if view == "user_transaction_aggregates" else dt.timedelta(days=1)
        assert (tiles["_tile_start"] <= tiles["event_timestamp"]).all()
        assert (tiles["event_timestamp"] - tiles["_tile_start"] < interval).all()
    # The daily view's tiles start at midnight UTC, the 5-minute view's on a multiple of 5 minutes.
    assert (project_copy.table("merchant_risk").to_pandas()["_tile_start"].dt.hour == 0).all()
    assert (project_copy.table("user_transaction_aggregates").to_pandas()["_tile_start"].dt.minute % 5 == 0).all()


# --- a user's project -------------------------------------------------------------------------

DBT_PROJECT = """\
name: 'cards'
version: '1.0.0'
config-version: 2
profile: 'cards'
"""

PROFILES = """\
cards:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: data/cards.duckdb
      threads: 2
"""

SOURCES = """\
version: 2
sources:
  - name: bank
    meta:
      external_location: "read_parquet('data/raw/{name}.parquet')"
    tables:
      - name: payments
        meta:
          hindsight:
            entity: {name: card, join_keys: [card_id], description: A payment card.}
"""

#: The worked example of the docs (docs/aggregation-views.md): hourly tiles, windows 1h and 1d.
VIEW = """\
{{ config(
    entities=['card_id'],
    timestamp_field='paid_at',
    aggregation_interval='1h',
    windows=['1h', '1d'],
    aggregations=[
        {'column': '*', 'name': 'payment', 'functions': ['count']},
        {'column': 'amount', 'functions': ['sum']},
    ],
    online=true,
) }}
select card_id, paid_at, amount from {{ source('bank', 'payments') }}
"""

VIEW_YML = """\
version: 2
models:
  - name: card_payments
    description: Each card's payments over the last hour and day.
    columns:
      - name: payment_count_1h
        description: Payments in the last hour.
      - name: payment_count_1d
        description: Payments in the last day.
      - name: amount_sum_1h
        description: Amount paid in the last hour.
      - name: amount_sum_1d
        description: Amount paid in the last day.
"""

#: Card 1 pays at 09:58, 10:05 and 10:40 on 2026-10-20 (UTC), then nothing; card 2 ten minutes
#: before the build.
PAYMENTS = [dt.datetime(2026, 10, 20, 9, 58, tzinfo=UTC), dt.datetime(2026, 10, 20, 10, 5, tzinfo=UTC),
            dt.datetime(2026, 10, 20, 10, 40, tzinfo=UTC)]
RECENT = (dt.datetime.now(UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)


class UserProject:
    """A dbt project that is not the demo, run with the venv's dbt and hindsight, nothing from the caller's environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HINDSIGHT_", "DBT_"))}
        self.env = {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "HINDSIGHT_TOOLS": str(REPO / ".tools")}

    def __call__(self, *command: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=self.root, env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}")
        return result


@pytest.fixture(scope="module")
def user_project(tmp_path_factory) -> UserProject:
    """The cards project set up as a user does it (hindsight init, dbt deps) and built with `dbt build`."""
    root = tmp_path_factory.mktemp("cards") / "cards"
    (root / "models" / "features").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "profiles.yml").write_text(PROFILES)
    (root / "models" / "sources.yml").write_text(SOURCES)
    (root / "models" / "features" / "card_payments.sql").write_text(VIEW)
    (root / "models" / "features" / "card_payments.yml").write_text(VIEW_YML)
    pq.write_table(pa.table({
        "card_id": pa.array([1, 1, 1, 2], pa.int64()),
        "paid_at": pa.array([*PAYMENTS, RECENT], pa.timestamp("us", "UTC")),
        "amount": pa.array([10.0, 20.0, 30.0, 7.0]),
    }), root / "data" / "raw" / "payments.parquet")
    project = UserProject(root)
    project("hindsight", "init")
    project("dbt", "deps")
    project("dbt", "build")
    return project


def test_a_users_project_builds_its_aggregation_view_and_none_of_the_demos(user_project):
    listed = user_project("dbt", "ls", "--resource-type", "model", "--resource-type", "source",
                          "--resource-type", "exposure", "--resource-type", "unit_test").stdout
    nodes = sorted(line for line in listed.splitlines() if line.startswith(("cards", "source:", "exposure:", "unit_test:")))
    assert nodes == ["cards.features.card_payments", "source:cards.bank.payments"]
    for name in ("user_transaction_aggregates", "merchant_risk", "fraud_detection", "transactions"):
        assert name not in listed
    store = user_project.root / "data" / "offline_store"
    assert sorted(p.name for p in store.iterdir()) == ["card_payments"]
    tiles = DeltaTable(str(store / "card_payments")).to_pyarrow_table().filter(pc.field("card_id") == 1).sort_by("paid_at").to_pydict()
    assert tiles["_events"] == [1, 1, 2]  # 09:58 alone in its hour; 10:05, then 10:05 and 10:40
    assert tiles["amount__sum"] == [10.0, 20.0, 50.0]
    assert [t.hour for t in tiles["_tile_start"]] == [9, 10, 10]



#: The docs' worked example (docs/aggregation-views.md): spine times and card 1's values there.
WORKED_EXAMPLE = {
    "event_timestamp": [dt.datetime(2026, 10, 20, 10, 0, tzinfo=UTC), dt.datetime(2026, 10, 20, 10, 50, tzinfo=UTC),
                        dt.datetime(2026, 10, 20, 11, 10, tzinfo=UTC), dt.datetime(2026, 10, 23, 10, 50, tzinfo=UTC)],
    "payment_count_1h": [0, 2, 0, 0],
    "payment_count_1d": [1, 3, 3, 0],
    "amount_sum_1h": [None, 50.0, None, None],
    "amount_sum_1d": [10.0, 60.0, 60.0, None],
}


def test_the_docs_worked_example_offline_and_three_days_later_online(user_project, online_config):
    online = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
              "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    user_project("hindsight", "apply", env=online)

    # Offline: a spine row at each time of the example.
    spine = pa.table({"card_id": [1] * 4, "event_timestamp": pa.array(WORKED_EXAMPLE["event_timestamp"], pa.timestamp("us", "UTC"))})
    pq.write_table(spine, user_project.root / "spine.parquet")
    user_project("hindsight", "training-set", "--features", "card_payments:*", "--spine", "spine.parquet", "--out", "train.parquet")
    trained = pq.read_table(user_project.root / "train.parquet").sort_by("event_timestamp").to_pydict()
    for column, values in WORKED_EXAMPLE.items():
        assert trained[column] == values, column

    # Online, at the request's time (weeks after card 1's last payment): its counts are 0 and its
    # sums null; card 2, which paid ten minutes before the build, is served from its tiles.
    user_project("hindsight", "sync", "--no-progress", env=online)
    port = free_port()
    server = subprocess.Popen([str(BIN / "hindsight"), "serve", "--port", str(port), "--workers", "1"], cwd=user_project.root,
                              env={**user_project.env, **online, "HINDSIGHT_SERVING_AUTH": "none"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = dt.datetime.now(UTC) + dt.timedelta(seconds=60)
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert dt.datetime.now(UTC) < deadline, "hindsight serve did not answer"
        response = requests.post(url + "/v1/features", timeout=10, json={
            "features": ["card_payments:*"], "entities": [{"card_id": 1}, {"card_id": 2}], "include_metadata": True})
        assert response.status_code == 200, response.text
        old, recent = response.json()["results"]
        assert old["features"] == {"payment_count_1h": 0, "payment_count_1d": 0, "amount_sum_1h": None, "amount_sum_1d": None}
        assert old["metadata"]["payment_count_1h"]["status"] == "NOT_FOUND"
        assert (recent["features"]["payment_count_1d"], recent["features"]["amount_sum_1d"]) == (1, 7.0)
        assert recent["metadata"]["payment_count_1d"]["status"] == "PRESENT"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


#: The demo's aggregation features, in config order (aggregation, function, window), with dtypes.
FEATURES = {
    "user_transaction_aggregates": [
        *[(f"txn_count_{w}", "int64") for w in ("1h", "1d", "7d", "30d")],
        *[(f"amount_{f}_{w}", "float64") for f in ("sum", "mean", "max") for w in ("1h", "1d", "7d", "30d")],
        *[(f"amount_{f}_{w}", "float64") for f in ("min", "stddev") for w in ("7d", "30d")],
        ("country_last_30d", "string"),
    ],
    "merchant_risk": [
        ("txn_count_7d", "int64"), ("txn_count_30d", "int64"), ("amount_sum_7d", "float64"), ("amount_sum_30d", "float64"),
        ("fraud_mean_7d", "float64"), ("fraud_mean_30d", "float64"),
    ],
}


def test_the_registry_describes_every_demo_aggregation_feature(demo_project):
    # Built in memory, not applied: an applied registry in the shared demo project would show up in
    # every copy other tests take of it.
    demo_registry = project_registry(demo_project.settings)
    intervals = {"user_transaction_aggregates": 300, "merchant_risk": 86400}
    for name, expected in FEATURES.items():
        view = demo_registry.view(name)
        assert (view.kind, view.aggregation_interval_seconds, view.ttl_seconds) == ("aggregation", intervals[name], None)
        assert [(f.name, f.dtype) for f in view.features] == expected
        documented = {c["name"]: c["description"] for c in _model_columns(demo_project, name)}
        for feature in view.features:
            assert feature.description and feature.description == documented[feature.name], feature.name
    risk = demo_registry.view("merchant_risk")
    assert all(f.description.startswith("Fraud rate") for f in risk.features if f.name.startswith("fraud_mean_"))
    assert {(a.name, a.function, a.column, a.window_seconds) for a in risk.aggregations if a.function == "mean"} == {
        ("fraud_mean_7d", "mean", "fraud", 7 * 86400), ("fraud_mean_30d", "mean", "fraud", 30 * 86400)}
    service = next(s for s in demo_registry.feature_services if s.name == "fraud_detection")
    assert {(r.view, r.feature, r.alias) for r in service.features if r.view == "merchant_risk"} == {
        ("merchant_risk", "fraud_mean_7d", "merchant_fraud_rate_7d"),
        ("merchant_risk", "fraud_mean_30d", "merchant_fraud_rate_30d"),
        ("merchant_risk", "txn_count_30d", "merchant_txn_count_30d"),
    }


def _model_columns(project, view: str) -> list[dict]:
    import yaml

    document = yaml.safe_load((project.root / "models" / "features" / f"{view}.yml").read_text())
    return next(m for m in document["models"] if m["name"] == view)["columns"]
