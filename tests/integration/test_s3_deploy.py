"""A team deployment on object storage: the offline store and the registry on S3 (moto's server).

One project whose hindsight.yml settings point at s3:// (through the environment variables that
override them): `dbt build` writes every feature view to S3, `hindsight apply` writes the registry
there, a training set and `hindsight sync` read the tables back, and a `hindsight serve` that only
knows the S3 registry serves the applied version and picks up the next apply. Two processes
applying at once each get their own versions.
On the spark target, `hindsight spark up` gives Sail the project's S3 settings: `dbt build` writes
the same tables to S3 and a Spark training set over them equals DuckDB's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from hindsight.core.object_store import S3Config, split_s3
from hindsight.core.ports import free_port
from hindsight.registry_sync.store import RegistryStore
from hindsight.training_sets.api import training_set
from tests.fixtures.dbt_project import DEMO_CUTOFF, FEATURE_VIEWS, new_project
from tests.fixtures.serving import start_server

pytestmark = pytest.mark.integration

RELOAD_WITHIN_S = 10.0


def s3_keys(uri: str) -> list[str]:
    bucket, prefix = split_s3(uri)
    pages = _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return [item["Key"][len(prefix) + 1:] for page in pages for item in page.get("Contents", ())]


def _client():
    return S3Config.from_settings().client()


def download(uri: str, destination: Path) -> Path:
    """Copy every object under `uri` into `destination` (a Delta table is position-independent)."""
    bucket, prefix = split_s3(uri)
    client = _client()
    for key in s3_keys(uri):
        target = destination / key
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, f"{prefix}/{key}", str(target))
    return destination


def assert_same_rows(got: pa.Table, expected: pa.Table) -> None:
    """Equal rows; floats to 1e-9: window sums add in whatever order DuckDB's threads meet them."""
    assert got.column_names == expected.column_names
    assert got.num_rows == expected.num_rows
    for row, want in zip(got.to_pylist(), expected.to_pylist()):
        assert row == {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in want.items()}


def served_version(url: str) -> float | None:
    text = requests.get(url + "/metrics", timeout=5).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("hindsight_serving_registry_version ")]
    return values[0] if values else None


def wait_for(predicate, timeout_s: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


def project_on_s3(tmp_path, s3_bucket, s3_env, monkeypatch):
    """A new project with generated raw data whose hindsight.yml puts the offline store and the
    registry in the bucket: the change a team makes (the endpoint only for an S3-compatible store).
    The endpoint is then only in hindsight.yml, which this process reads too (HINDSIGHT_PROJECT_DIR),
    as a notebook in the project would."""
    project = dataclasses.replace(
        new_project(tmp_path / "project"), offline_store=f"{s3_bucket}/offline_store", registry=f"{s3_bucket}/registry",
    )
    config = project.root / "hindsight.yml"
    text = config.read_text()
    for key, value in (("offline_store", project.offline_store), ("registry", project.registry)):
        text = re.sub(rf"^{key}: \S+", f"{key}: {value}", text, flags=re.M)
    config.write_text(text + f"s3:\n  endpoint_url: {s3_env['HINDSIGHT_S3_ENDPOINT_URL']}\n")
    monkeypatch.delenv("HINDSIGHT_S3_ENDPOINT_URL")
    monkeypatch.setenv("HINDSIGHT_PROJECT_DIR", str(project.root))
    project.generate(loaded_before=DEMO_CUTOFF)
    return project


def test_a_team_deployment_on_s3(tmp_path, s3_bucket, s3_env, dynamodb_endpoint, monkeypatch):
    project = project_on_s3(tmp_path, s3_bucket, s3_env, monkeypatch)
    online = {"HINDSIGHT_DYNAMODB_ENDPOINT": dynamodb_endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": f"s{uuid.uuid4().hex[:8]}_",
              "HINDSIGHT_DYNAMODB_REGION": "us-east-1"}
    for name, value in online.items():
        monkeypatch.setenv(name, value)

    # dbt writes every feature view to S3, and nothing to the project's data/offline_store.
    started = time.perf_counter()
    project.dbt("build")
    print(f"dbt build to S3: {time.perf_counter() - started:.1f} s")
    assert not (project.root / "data" / "offline_store").exists()
    for view in FEATURE_VIEWS:
        keys = s3_keys(f"{project.offline_store}/{view}")
        assert "_delta_log/00000000000000000000.json" in keys, keys[:5]
        assert any(k.endswith(".parquet") for k in keys)
        assert project.table(view).to_pyarrow_table().num_rows > 0

    # apply writes the registry version and the contracts to S3.
    applied = project.run("hindsight", "apply", "--no-parse")
    assert "Applied registry version 1" in applied.stdout, applied.stdout
    assert {"v000001.json", "contracts.jsonl"} <= set(s3_keys(project.registry))
    registry = RegistryStore(project.registry).latest()
    assert registry.version == 1
    assert all(v.delta_uri.startswith(f"{project.offline_store}/") for v in registry.feature_views)

    # A training set reads the S3 tables; the same one over a local copy of them is identical.
    profile = project.table("user_profile").to_pyarrow_table()
    users = profile.column("user_id").to_pylist()[:200]
    spine = pa.table({"user_id": users, "event_timestamp": pa.array([DEMO_CUTOFF] * len(users), pa.timestamp("us", tz="UTC"))})
    started = time.perf_counter()
    from_s3 = training_set(spine, service="user_spend_profile", project_dir=project.root)
    s3_seconds = time.perf_counter() - started
    local_views = tuple(
        dataclasses.replace(v, delta_uri=str(download(v.delta_uri, tmp_path / "copy" / v.name))) for v in registry.feature_views
    )
    local_registry = dataclasses.replace(registry, feature_views=local_views)
    started = time.perf_counter()
    from_local = training_set(spine, service="user_spend_profile", registry=local_registry, project_dir=project.root)
    local_seconds = time.perf_counter() - started
    print(f"training set of {len(users)} rows: {s3_seconds:.2f} s from S3, {local_seconds:.2f} s from local disk")
    assert from_s3.num_rows == len(users)
    # Window sums add floats in whatever order DuckDB's threads meet them: equal to the last bits.
    assert_same_rows(from_s3, from_local)
    assert from_s3.column("home_country").null_count < len(users)

    # The CLI writes its Parquet locally from the S3 tables, too.
    pq.write_table(spine, tmp_path / "spine.parquet")
    built = project.run("hindsight", "training-set", "--service", "user_spend_profile", "--spine", str(tmp_path / "spine.parquet"),
                        "--out", str(tmp_path / "out.parquet"))
    assert "wrote 200 rows" in built.stderr
    assert_same_rows(pq.read_table(tmp_path / "out.parquet").select(from_s3.column_names), from_s3)

    # validate, sync and status read the Delta tables on S3 (the validation log goes beside the registry).
    validated = project.run("hindsight", "validate")
    assert any(k.startswith("validations/") for k in s3_keys(project.registry)) or "no expectations" in validated.stdout.lower()
    synced = project.run("hindsight", "sync", "--no-progress")
    assert "user_profile" in synced.stdout
    status = project.run("hindsight", "status", check=False)
    assert status.returncode in (0, 1), status.stdout + status.stderr
    assert "user_profile" in status.stdout

    # serve knows only the S3 registry: it serves version 1, then the next apply without a restart.
    server = start_server(None, tmp_path / "server", {**online, "HINDSIGHT_REGISTRY": project.registry,
                                                     "HINDSIGHT_PROJECT_DIR": str(project.root)}, workers=2)
    try:
        user = users[0]
        newest = max((r for r in profile.to_pylist() if r["user_id"] == user), key=lambda r: (r["event_timestamp"], r.get("created_at") or 0))
        wait_for(lambda: served_version(server.url) == 1, 20)
        response = requests.post(server.url + "/v1/features", json={"feature_service": "user_spend_profile",
                                                                    "entities": {"user_id": user}}, timeout=5)
        assert response.status_code == 200, response.text
        assert response.json()["features"]["home_country"] == newest["home_country"]

        described = project.root / "models" / "features" / "user_profile.yml"
        described.write_text(described.read_text().replace('"Credit limit in EUR."', '"Credit limit in EUR, at the time."'))
        second = project.run("hindsight", "apply", "--no-online")
        assert "Applied registry version 2" in second.stdout, second.stdout
        took = wait_for(lambda: served_version(server.url) == 2, RELOAD_WITHIN_S)
        print(f"every worker served registry version 2 from S3 {took:.2f} s after it was applied")
        assert requests.get(server.url + "/readyz", timeout=5).json()["registry_version"] == 2
    finally:
        server.stop()


#: Each of two processes writes this many registry versions at once.
WRITES_PER_PROCESS = 15

_WRITER = """
import json, sys, time
from hindsight.registry_sync.model import Registry
from hindsight.registry_sync.store import RegistryStore
store = RegistryStore(sys.argv[1])
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
got = [store.write(Registry(project=sys.argv[3])).version for _ in range(int(sys.argv[4]))]
print(json.dumps(got))
"""


def test_two_processes_applying_at_once_never_lose_a_version(s3_bucket, s3_env):
    registry = f"{s3_bucket}/registry"
    start = time.time() + 3  # both processes have imported everything by then
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, registry, str(start), name, str(WRITES_PER_PROCESS)],
                         env={**os.environ, **s3_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("ci_a", "ci_b")
    ]
    results = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in results]
    got = [json.loads(out) for out, _ in results]
    assert set(got[0]).isdisjoint(got[1])
    assert sorted(got[0] + got[1]) == list(range(1, 2 * WRITES_PER_PROCESS + 1))
    store = RegistryStore(registry)
    assert store.versions() == list(range(1, 2 * WRITES_PER_PROCESS + 1))
    # Each version holds what the process that got its number wrote.
    for name, versions in zip(("ci_a", "ci_b"), got):
        assert {store.read(v).project for v in versions} == {name}


def test_spark_builds_and_reads_the_feature_views_on_s3(tmp_path, s3_bucket, s3_env, monkeypatch):
    """`hindsight spark up` hands Sail the project's S3 settings: the spark target then writes every
    feature view to S3, and a Spark training set over those tables equals DuckDB's."""
    # The endpoint only in hindsight.yml: Sail can only have it from `hindsight spark up`.
    project = project_on_s3(tmp_path, s3_bucket, s3_env, monkeypatch)

    port = free_port()
    up = project.run("hindsight", "spark", "up", "--port", str(port))
    try:
        spark = project.with_target("spark", up.stdout.strip().split("=", 1)[1])
        spark.dbt("build")
        assert not (project.root / "data" / "offline_store").exists()
        rows = {}
        for view in FEATURE_VIEWS:
            assert "_delta_log/00000000000000000000.json" in s3_keys(f"{project.offline_store}/{view}"), view
            rows[view] = project.table(view).to_pyarrow_table().num_rows
            assert rows[view] > 0, view
        spark.dbt("run")  # a rerun with nothing new adds nothing
        assert {view: project.table(view).to_pyarrow_table().num_rows for view in FEATURE_VIEWS} == rows

        project.run("hindsight", "apply", "--no-parse", "--no-online")
        users = project.table("user_profile").to_pyarrow_table().column("user_id").to_pylist()[:100]
        spine = pa.table({"user_id": users,
                          "event_timestamp": pa.array([DEMO_CUTOFF] * len(users), pa.timestamp("us", tz="UTC"))})
        on_spark = training_set(spine, service="user_spend_profile", engine="spark", spark_remote=spark.spark_remote,
                                project_dir=project.root)
        on_duckdb = training_set(spine, service="user_spend_profile", project_dir=project.root)
        assert on_spark.num_rows == len(users)
        assert_same_rows(on_spark.sort_by("user_id"), on_duckdb.select(on_spark.column_names).sort_by("user_id"))
    finally:
        project.run("hindsight", "spark", "down", check=False)
