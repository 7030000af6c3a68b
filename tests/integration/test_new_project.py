"""A user's brand-new dbt project adopts Hindsight, end to end, through the installed distribution.

The project (a shop: customers and orders as Parquet files, entity `customer`) is not the demo.
Hindsight is installed from a wheel built from this checkout into a private folder (PYTHONPATH),
so `hindsight init` points packages.yml at the wheel's `hindsight/dbt_package/`, and dbt, the
plugin and every command run that copy. Then: `dbt deps`, `dbt build`, `hindsight apply`, a
training set (CLI and SDK), `hindsight online up` + `sync` against DynamoDB Local, and
`hindsight serve` answering a real HTTP request.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from tests.docs.examples import readme_model
from tests.fixtures.serving import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UTC = dt.timezone.utc


# Day 1 is ten days ago. The README's view is an aggregation view (1-day interval, 1d and 7d
# windows): served now, its 7-day window holds only the newest order (day 5, six days ago + 12h).
_DAY_ZERO = dt.datetime.combine(dt.date.today() - dt.timedelta(days=11), dt.time(), tzinfo=UTC)


def at(day: int, hour: int = 0) -> dt.datetime:
    return _DAY_ZERO + dt.timedelta(days=day, hours=hour)


DBT_PROJECT = """\
# The shop's analytics project. This comment is ours: hindsight init must keep it.
name: 'shop'
version: '1.0.0'
config-version: 2
profile: 'shop'

models:
  shop:
    staging:
      +materialized: view  # staging stays views
"""

PROFILES = """\
shop:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: data/shop.duckdb  # the shop's warehouse
      threads: 2
"""

SOURCES = """\
version: 2
sources:
  - name: shop
    meta:
      external_location: "read_parquet('data/raw/{name}.parquet')"
    tables:
      - name: customers
        meta:
          hindsight:
            entity: {name: customer, join_keys: [customer_id], description: A shop customer.}
      - name: orders
"""

# The README's five-minute example, as a reader copies it: this test is what runs it.
FEATURE_VIEW = readme_model("models/features/customer_orders.sql")

FEATURE_VIEW_YML = """\
version: 2
models:
  - name: customer_orders
    description: Each customer's orders over the last day and week, at the moment of use.
    columns:
      - name: order_count_1d
        description: Orders in the last day.
      - name: order_count_7d
        description: Orders in the last 7 days.
      - name: amount_sum_1d
        description: Spend in the last day.
      - name: amount_sum_7d
        description: Spend in the last 7 days.
      - name: amount_max_1d
        description: Largest order in the last day.
      - name: amount_max_7d
        description: Largest order in the last 7 days.

exposures:
  - name: churn_model
    type: ml
    owner: {name: Shop data, email: data@shop.example}
    depends_on: [ref('customer_orders')]
    meta:
      hindsight:
        features:
          - customer_orders:order_count_7d
          - customer_orders:amount_sum_7d
          - order_context:amount_vs_avg_7d
"""

ON_DEMAND = '''\
"""The shop's on-demand views."""

from hindsight.on_demand import on_demand_feature_view


@on_demand_feature_view(
    name="order_context",
    feature_inputs=["customer_orders:amount_sum_7d", "customer_orders:order_count_7d"],
    request_fields={"amount": "float64"},
    outputs={"amount_vs_avg_7d": "float64"},
)
def order_context(rows):
    return {"amount_vs_avg_7d": [
        None if amount is None or not count else amount / (total / count)
        for amount, total, count in zip(rows["amount"], rows["amount_sum_7d"], rows["order_count_7d"])
    ]}
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Hindsight built as a wheel from this checkout and installed (no deps) into its own folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    skip = shutil.ignore_patterns(".venv", ".tools", ".git", "data", "target", "logs", "build", "bench",
                                  "dbt_packages", "__pycache__", "*.egg-info", ".hypothesis")
    shutil.copytree(REPO, source, ignore=skip)
    subprocess.run([str(BIN / "pip"), "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(source)],
                   check=True, capture_output=True)
    wheel = next((root / "dist").glob("hindsight-*.whl"))
    site = root / "site"
    subprocess.run([str(BIN / "pip"), "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    return site


def write_project(root: Path) -> None:
    (root / "models" / "staging").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "profiles.yml").write_text(PROFILES)
    (root / "models" / "sources.yml").write_text(SOURCES)
    pq.write_table(pa.table({"customer_id": [1, 2], "country": ["FR", "DE"]}), root / "data/raw/customers.parquet")
    pq.write_table(pa.table({
        "order_id": [1, 2, 3, 4],
        "customer_id": [1, 1, 1, 2],
        "amount": [10.0, 20.0, 30.0, 5.0],
        "ordered_at": pa.array([at(1, 10), at(2, 9), at(5, 12), at(3, 8)], pa.timestamp("us", "UTC")),
    }), root / "data/raw/orders.parquet")


class Runner:
    """Runs the installed wheel's commands in a clean environment (no HINDSIGHT_* from outside)."""

    def __init__(self, site: Path, project: Path, elsewhere: Path) -> None:
        self.project, self.elsewhere = project, elsewhere
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HINDSIGHT_", "DBT_"))}
        self.env = {**env, "PYTHONPATH": str(site), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                    "HINDSIGHT_TOOLS": str(REPO / ".tools")}

    def __call__(self, *command: str, cwd: Path | None = None, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=cwd or self.project,
                                env={**self.env, **env}, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}")
        return result


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_new_dbt_project_builds_applies_trains_syncs_and_serves(installed, tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "shop", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_project(project)
    run = Runner(installed, project, elsewhere)

    # The command runs the wheel's code, and the wheel carries the dbt package.
    where = run("python", "-c", "import hindsight, hindsight.dbt_package_dir as d; print(hindsight.__file__); print(d.package_dir())")
    code_file, package = where.stdout.split()
    assert code_file.startswith(str(installed)) and package == str(installed / "hindsight" / "dbt_package")

    # hindsight init: every addition printed, nothing the user wrote rewritten.
    first = run("hindsight", "init")
    assert "packages.yml: added the hindsight dbt package (local: " + package in first.stdout
    assert "dispatch: macro_namespace dbt searches [shop, hindsight, dbt]" in first.stdout
    assert "models.shop.features: +materialized: feature_view" in first.stdout
    assert "shop.outputs.dev: plugin hindsight.offline_store.dbt_plugin" in first.stdout
    assert "hindsight.yml (the documented defaults)" in first.stdout
    project_yml = (project / "dbt_project.yml").read_text()
    assert project_yml.startswith(DBT_PROJECT.splitlines()[0])
    assert "+materialized: view  # staging stays views" in project_yml
    assert "path: data/shop.duckdb  # the shop's warehouse" in (project / "profiles.yml").read_text()
    before = snapshot(project)
    second = run("hindsight", "init")
    assert second.stdout.strip() == "Nothing to change: the project is already set up for Hindsight."
    assert snapshot(project) == before
    outside = run("hindsight", "init", cwd=elsewhere, check=False)
    assert outside.returncode == 2 and f"{elsewhere} has no dbt_project.yml" in outside.stderr

    # The user's feature view, feature service and on-demand view.
    (project / "models" / "features" / "customer_orders.sql").write_text(FEATURE_VIEW)
    (project / "models" / "features" / "customer_orders.yml").write_text(FEATURE_VIEW_YML)
    (project / "on_demand").mkdir()
    (project / "on_demand" / "orders.py").write_text(ON_DEMAND)

    run("dbt", "deps")
    listed = run("dbt", "ls", "--resource-type", "model", "--resource-type", "source", "--resource-type", "exposure").stdout
    nodes = [line for line in listed.splitlines() if line.startswith(("shop", "source:", "exposure:"))]
    assert sorted(nodes) == ["exposure:shop.churn_model", "shop.features.customer_orders",
                             "source:shop.shop.customers", "source:shop.shop.orders"]
    assert "hindsight" not in listed.replace("hindsight.yml", "")  # none of the demo's nodes
    run("dbt", "build")
    hooks = [r for r in json.loads((project / "target/run_results.json").read_text())["results"]
             if r["unique_id"].startswith("operation.hindsight")]
    assert all(not (r.get("compiled_code") or "").strip() for r in hooks)  # the demo's hook runs nothing
    # The default Delta root is offline_store of hindsight.yml.
    assert (project / "data" / "offline_store" / "customer_orders" / "_delta_log").is_dir()

    # apply from another folder: the registry holds the user's definitions and no demo code.
    applied = run("hindsight", "apply", "--no-online", "--project-dir", str(project), cwd=elsewhere)
    assert "version 1" in applied.stdout, applied.stdout
    registry = json.loads(run("hindsight", "registry", "list", "--json", "--project-dir", str(project), cwd=elsewhere).stdout)
    text = json.dumps(registry)
    assert "customer_orders" in text and "order_context" in text and "churn_model" in text
    assert "transaction_context" not in text and "fraud" not in text
    shown = run("hindsight", "registry", "show", "order_context", "--json", "--project-dir", str(project), cwd=elsewhere)
    assert "hindsight_on_demand.orders:order_context" in shown.stdout  # imported from the project's folder

    shown = json.loads(run("hindsight", "registry", "show", "customer_orders", "--json").stdout)
    assert shown["kind"] == "aggregation" and shown["aggregation_interval"] == "1d", shown
    assert [f["name"] for f in shown["features"]] == ["order_count_1d", "order_count_7d", "amount_sum_1d",
                                                      "amount_sum_7d", "amount_max_1d", "amount_max_7d"]

    # A training set through the CLI: values as of each spine row (windows end at the row's time;
    # a window without orders counts 0) and the user's on-demand view.
    spine = pa.table({
        "customer_id": [1, 1, 2, 2],
        "event_timestamp": pa.array([at(3), at(6), at(2), at(4)], pa.timestamp("us", "UTC")),
        "amount": [40.0, 40.0, 10.0, 10.0],
    })
    pq.write_table(spine, project / "spine.parquet")
    run("hindsight", "training-set", "--service", "churn_model", "--spine", "spine.parquet", "--out", "train.parquet")
    expected = {
        "order_count_7d": [2, 3, 0, 1],
        "amount_sum_7d": [30.0, 60.0, None, 5.0],
        "amount_vs_avg_7d": [40.0 / 15.0, 2.0, None, 2.0],
    }
    trained = pq.read_table(project / "train.parquet").sort_by([("customer_id", "ascending"), ("event_timestamp", "ascending")])
    for column, values in expected.items():
        assert trained.column(column).to_pylist() == pytest.approx(values), column

    # The same through the SDK, from a notebook-like process in another folder.
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("HINDSIGHT_PROJECT_DIR", raising=False)
    import hindsight

    sdk = hindsight.training_set(spine, service="churn_model", project_dir=project).sort_by(
        [("customer_id", "ascending"), ("event_timestamp", "ascending")])
    for column, values in expected.items():
        assert sdk.column(column).to_pylist() == pytest.approx(values), column

    # Online: DynamoDB Local started by the CLI (which records its endpoint for the next commands),
    # synced, served over HTTP.
    dynamodb_port = free_port()
    up = run("hindsight", "online", "up", "--port", str(dynamodb_port), "--in-memory")
    try:
        assert f"127.0.0.1:{dynamodb_port}" in up.stdout
        run("hindsight", "apply")
        # As the README does: validate (no view declares expectations), sync, status, the catalog.
        validated = run("hindsight", "validate", check=False)
        assert validated.returncode == 0, validated.stdout + validated.stderr
        synced = run("hindsight", "sync", "--no-progress", "--project-dir", str(project), cwd=elsewhere)
        assert "customer_orders" in synced.stdout + synced.stderr
        status = run("hindsight", "status", check=False)
        assert status.returncode == 0 and "customer_orders" in status.stdout, status.stdout + status.stderr
        run("hindsight", "docs", "generate")
        assert (project / "target" / "catalog" / "index.html").is_file()
        # As the README does: a key that reads the service (the key is the output's last word).
        key = run("hindsight", "keys", "create", "--name", "churn", "--read", "churn_model").stdout.split()[-1]
        assert key.startswith("hsk_"), key
        port = free_port()
        server = subprocess.Popen([str(BIN / "hindsight"), "serve", "--port", str(port), "--workers", "1"],
                                  cwd=project, env=run.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, server.stdout.read().decode()
                try:
                    if requests.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "hindsight serve did not answer"
                time.sleep(0.1)
            anonymous = requests.post(url + "/v1/features", timeout=10, json={"feature_service": "churn_model",
                                                                               "entities": {"customer_id": 1}})
            assert anonymous.status_code == 401, anonymous.text
            response = requests.post(url + "/v1/features", timeout=10, headers={"Authorization": f"Bearer {key}"}, json={
                "feature_service": "churn_model", "entities": {"customer_id": 1}, "request_context": {"amount": 50.0},
            })
            assert response.status_code == 200, response.text
            # Served at the request's time: the 7-day window now holds only the day-5 order.
            assert response.json()["features"] == pytest.approx({"order_count_7d": 1, "amount_sum_7d": 30.0,
                                                                 "amount_vs_avg_7d": 50.0 / 30.0})
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    finally:
        run("hindsight", "online", "down")
