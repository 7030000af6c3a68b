"""Drift for real: `hindsight serve` (gunicorn, 2 workers, DynamoDB Local) samples what it serves to a
Delta table, flushed at shutdown; `hindsight drift` compares it with training-set-shaped baselines."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from deltalake import DeltaTable

from hindsight.online_sync import OnlineStoreConfig, ensure_tables, push
from tests.fixtures.serving import build_serving_registry, start_server

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
REPO = Path(__file__).resolve().parents[2]
USERS = 300
COUNTRIES = ("FR", "DE", "IT")
MIX = (0.6, 0.3, 0.1)


def profiles(rng: np.random.Generator, n: int, limit_mean: float = 2000.0) -> dict:
    return {"home_country": rng.choice(COUNTRIES, n, p=MIX), "credit_limit": rng.normal(limit_mean, 400, n).round(2)}


@pytest.fixture(scope="module")
def served_log(dynamodb_endpoint, tmp_path_factory):
    """user_basics served for every user once, sampled at rate 1 by two workers; the log path."""
    root = tmp_path_factory.mktemp("drift-serving")
    registry = build_serving_registry(str(root / "offline"))
    config = OnlineStoreConfig(endpoint_url=dynamodb_endpoint, table_prefix=f"d{uuid.uuid4().hex[:8]}_", region="us-east-1")
    ensure_tables(registry, config)
    values = profiles(np.random.default_rng(5), USERS)
    stamp = dt.datetime.now(UTC) - dt.timedelta(days=1)
    push(registry, config, "user_profile", [
        {"user_id": i, "event_timestamp": stamp, "home_country": str(values["home_country"][i]),
         "credit_limit": float(values["credit_limit"][i]), "account_tier": "basic"}
        for i in range(USERS)
    ])
    log = root / "served_features"
    # A flush interval longer than the test: the rows reach Delta only through the flush at shutdown.
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": config.endpoint_url, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
           "HINDSIGHT_SERVING_SAMPLE_RATE": "1", "HINDSIGHT_SERVING_SAMPLE_LOG": str(log),
           "HINDSIGHT_SERVING_SAMPLE_FLUSH_MS": "600000",
           # Correctness, not latency: a busy test machine must not turn reads into 503s.
           "HINDSIGHT_SERVING_STORE_DEADLINE_MS": "10000"}
    server = start_server(registry, root / "server", env, workers=2)
    try:
        batches = [[{"user_id": i} for i in range(start, start + 25)] for start in range(0, USERS, 25)]

        def ask(entities):
            response = requests.post(server.url + "/v1/features", json={"feature_service": "user_basics",
                                                                       "entities": entities}, timeout=30)
            assert response.status_code == 200, response.text
            return len(response.json()["results"])

        with ThreadPoolExecutor(4) as pool:  # concurrent requests: both workers serve
            assert sum(pool.map(ask, batches)) == USERS
        single = requests.post(server.url + "/v1/features", json={"features": ["user_profile:credit_limit"],
                                                                  "entities": {"user_id": 0}}, timeout=10)
        assert single.status_code == 200
        assert not (log / "_delta_log").exists() or DeltaTable(str(log)).to_pyarrow_table().num_rows == 0
    finally:
        # SIGTERM: gunicorn's graceful shutdown; each worker commits its samples to Delta first, which
        # on a loaded 2-core machine can take longer than the fixture's usual 10 s (gunicorn's own
        # graceful timeout is 30 s).
        server.stop(grace_s=45)
    assert server.process.returncode == 0, server.log()
    return log, values


def test_every_sampled_row_lands_in_delta_at_shutdown(served_log):
    log, values = served_log
    rows = DeltaTable(str(log)).to_pyarrow_table().to_pylist()
    assert len(rows) == USERS + 1
    by_service: dict[str, list[dict]] = {}
    for row in rows:
        by_service.setdefault(row["service"], []).append(row)
    assert {k: len(v) for k, v in by_service.items()} == {"user_basics": USERS, "_features": 1}
    served = {json.loads(r["entities"])["user_id"]: json.loads(r["features"]) for r in by_service["user_basics"]}
    assert sorted(served) == list(range(USERS))
    assert served[17] == {"home_country": str(values["home_country"][17]), "credit_limit": float(values["credit_limit"][17])}
    assert json.loads(by_service["_features"][0]["features"]) == {"credit_limit": float(values["credit_limit"][0])}
    assert {r["registry_version"] for r in rows} == {3}


def baseline(path: Path, columns: dict) -> str:
    n = len(columns["credit_limit"])
    table = pa.table({"user_id": np.arange(n), "event_timestamp": pa.array([dt.datetime(2026, 1, 1, tzinfo=UTC)] * n),
                      **columns, "label": np.zeros(n, dtype=bool)})
    pq.write_table(table, path)
    return str(path)


def run_drift(log: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HINDSIGHT_SERVING_SAMPLE_LOG": str(log)}  # the log found through hindsight.yml's key
    return subprocess.run([str(Path(sys.executable).parent / "hindsight"), "drift", "--service", "user_basics", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_drift_against_the_real_log(served_log, tmp_path):
    log, _ = served_log
    rng = np.random.default_rng(6)
    same = run_drift(log, "--baseline", baseline(tmp_path / "same.parquet", profiles(rng, 3000)))
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[0] == f"service user_basics: {USERS} served rows vs 3000 baseline rows (same.parquet)"

    report = tmp_path / "report.html"
    shifted = run_drift(log, "--baseline", baseline(tmp_path / "shifted.parquet", profiles(rng, 3000, limit_mean=2600)),
                        "--report", str(report))
    assert shifted.returncode == 1, shifted.stdout + shifted.stderr
    first = shifted.stdout.splitlines()[3].split()
    assert first[:3] == ["1", "credit_limit", "numeric"] and first[-1] == "drifted"
    assert "drift above PSI 0.2 in 1 feature(s): credit_limit" in shifted.stderr
    assert report.read_text().count("<svg") == 2
