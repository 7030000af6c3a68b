"""The ingest API end to end: a real `hindsight serve` over the demo project and DynamoDB Local.

An event acknowledged by `POST /v1/ingest` survives a `kill -9` of the whole server (master and
workers): after a restart it is in the online tiles (`POST /v1/features`), and after
`hindsight stream flush` in the source's Delta event log, once, however often the client retried.
A server left running moves acknowledged events to the event log by itself (its background
flusher).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
import requests
from deltalake import DeltaTable

from hindsight.registry_sync.store import RegistryStore
from tests.fixtures.dbt_project import BIN, DbtProject
from tests.fixtures.serving import ServerProcess, start_server

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
SOURCE = "streams.transactions"
USER = 987_654_321  # no demo transactions: its counts start at 0


@pytest.fixture
def project(demo_project: DbtProject, online_config, tmp_path: Path) -> tuple[DbtProject, dict[str, str]]:
    """A copy of the demo project applied to this test's tables in DynamoDB Local (journal included)."""
    copy = demo_project.copy(tmp_path / "project")
    online = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
              "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    env = {**copy.env(), **online}
    applied = subprocess.run([str(BIN / "hindsight"), "apply"], cwd=copy.root, env=env, capture_output=True,
                             text=True, timeout=600)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    served = {k: v for k, v in env.items() if k.startswith(("HINDSIGHT_", "DBT_"))}
    return copy, served


def serve(project: DbtProject, env: dict[str, str], workdir: Path, flush: bool) -> ServerProcess:
    return start_server(None, workdir, {**env, "HINDSIGHT_SERVING_FLUSH": "on" if flush else "off"}, workers=2,
                        timeout_s=60)


def kill_9(server: ServerProcess) -> None:
    """SIGKILL the server's whole process group: the gunicorn master and every worker, no shutdown hooks."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def event(transaction_id: int, amount: float) -> dict[str, Any]:
    return {"transaction_id": transaction_id, "user_id": USER, "merchant_id": 7, "amount": amount,
            "country": "FR", "ts": dt.datetime.now(UTC).isoformat()}


def features(server: ServerProcess) -> dict[str, Any]:
    response = requests.post(server.url + "/v1/features", timeout=10, json={
        "features": ["user_stream_activity:txn_count_10m", "user_stream_activity:amount_sum_10m"],
        "entities": {"user_id": USER}})
    assert response.status_code == 200, response.text
    return response.json()["features"]


def ingest(server: ServerProcess, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = requests.post(server.url + "/v1/ingest", json={"source": "transactions", "rows": rows}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def logged(project: DbtProject, transaction_id: int) -> list[dict[str, Any]]:
    """Rows of the event log with this event id."""
    uri = RegistryStore(project.settings.registry_dir).latest().stream_source(SOURCE).delta_uri
    table = DeltaTable(uri).to_pyarrow_table()
    return table.filter(pc.equal(table["transaction_id"], transaction_id)).to_pylist()


def flush(project: DbtProject, env: dict[str, str]) -> str:
    result = subprocess.run([str(BIN / "hindsight"), "stream", "flush", "--source", "transactions"], cwd=project.root,
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_an_acknowledged_event_survives_kill_9_and_a_retry_counts_once(project, tmp_path):
    project, env = project
    server = serve(project, env, tmp_path / "first", flush=False)
    try:
        assert features(server) == {"txn_count_10m": 0, "amount_sum_10m": None}
        first = event(9_100_000_001, 42.5)
        assert ingest(server, [first]) == {"source": SOURCE, "received": 1, "accepted": 1, "duplicates": 0}
    finally:
        kill_9(server)  # right after the 200: no graceful shutdown, no final flush

    server = serve(project, env, tmp_path / "second", flush=False)
    try:
        assert features(server) == {"txn_count_10m": 1, "amount_sum_10m": 42.5}
        # The client did not see the 200 (say) and retries: the event counts once.
        assert ingest(server, [first]) == {"source": SOURCE, "received": 1, "accepted": 0, "duplicates": 1}
        assert features(server) == {"txn_count_10m": 1, "amount_sum_10m": 42.5}
        assert logged(project, first["transaction_id"]) == []  # only journaled so far
    finally:
        kill_9(server)

    flush(project, env)
    rows = logged(project, first["transaction_id"])
    assert len(rows) == 1
    assert rows[0]["user_id"] == USER and rows[0]["amount"] == 42.5 and rows[0]["_ingested_at"] is not None
    flush(project, env)  # nothing pending: nothing written twice
    assert len(logged(project, first["transaction_id"])) == 1


def test_a_running_server_flushes_acknowledged_events_to_the_event_log(project, tmp_path):
    project, env = project
    server = serve(project, env, tmp_path / "server", flush=True)
    try:
        second = event(9_100_000_002, 10.0)
        # A batch repeating an event id: the first wins, the repeat is a duplicate.
        assert ingest(server, [second, second]) == {"source": SOURCE, "received": 2, "accepted": 1, "duplicates": 1}
        deadline = time.monotonic() + 30
        while not logged(project, second["transaction_id"]):
            assert time.monotonic() < deadline, "the server's background flusher did not write the event log:\n" + \
                server.log()
            time.sleep(0.5)
        assert len(logged(project, second["transaction_id"])) == 1
    finally:
        server.stop()


def test_the_sdk_and_the_cli_ingest_into_the_same_stores(project, monkeypatch):
    import json

    import pandas as pd

    import hindsight
    from hindsight.online_sync import OnlineStoreConfig
    from hindsight.online_sync.store import OnlineStore
    from hindsight.streams.validation import IngestValidationError

    project, env = project
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    frame = pd.DataFrame([event(9_100_000_010, 5.0), event(9_100_000_011, 7.0)])
    frame["ts"] = pd.to_datetime(frame["ts"])
    report = hindsight.ingest("transactions", frame, project_dir=project.root)
    assert (report.source, report.received, report.accepted, report.duplicates) == (SOURCE, 2, 2, 0)
    assert logged(project, 9_100_000_010) == []
    again = hindsight.ingest(SOURCE, [event(9_100_000_010, 5.0)], project_dir=project.root, flush=True)
    assert (again.accepted, again.duplicates) == (0, 1)
    # flush=True wrote everything pending of the source, once.
    assert len(logged(project, 9_100_000_010)) == 1 and len(logged(project, 9_100_000_011)) == 1
    with pytest.raises(IngestValidationError) as refused:
        hindsight.ingest(SOURCE, [{**event(9_100_000_012, 1.0), "user_id": None}], project_dir=project.root)
    assert refused.value.field == "user_id" and refused.value.index == 0

    lines = "\n".join(json.dumps(event(9_100_000_020 + i, 1.0)) for i in range(2))
    command = [str(BIN / "hindsight"), "ingest", "transactions", "-"]
    result = subprocess.run(command, input=lines, cwd=project.root, env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{SOURCE}: 2 events, 2 accepted, 0 duplicates")
    bad = subprocess.run(command, input=json.dumps({**event(9_100_000_030, 1.0), "amount": "lots"}), cwd=project.root,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert "field 'amount'" in bad.stderr and "Traceback" not in bad.stderr

    registry = RegistryStore(project.settings.registry_dir).latest()
    store = OnlineStore(registry, OnlineStoreConfig.from_env())
    (read,) = store.read([{"user_id": USER}], {"user_stream_activity": ["txn_count_10m", "amount_sum_10m"]})
    assert read["user_stream_activity"].values == {"txn_count_10m": 4, "amount_sum_10m": 14.0}


def test_push_through_the_api_is_online_at_once_and_in_delta_after_the_servers_flush(online_config, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from hindsight.offline_store.pushed_rows import PUSHED_AT
    from hindsight.online_sync import ensure_tables
    from tests.fixtures.dynamodb import delta_schema, make_registry, make_view

    view = make_view(tmp_path / "offline", "user_stats", push=True)
    registry = make_registry(view)
    earlier = dt.datetime.now(UTC) - dt.timedelta(days=1)
    # The table as the feature_view materialization writes a push view's: with the push-time column.
    schema = delta_schema(view).append(pa.field(PUSHED_AT, pa.timestamp("us", tz="UTC")))
    built = {"user_id": 1, "ts": earlier, "created": earlier, "_partition_date": earlier.date(), "amount": 1.0,
             "count": 1, "country": "DE", PUSHED_AT: None}
    write_deltalake(view.delta_uri, pa.Table.from_pylist([built], schema=schema), partition_by=["_partition_date"])
    ensure_tables(registry, online_config)  # the view's table and the journal
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix, "HINDSIGHT_SERVING_FLUSH": "on"}
    server = start_server(registry, tmp_path / "server", env, workers=2, timeout_s=60)
    try:
        now = dt.datetime.now(UTC).isoformat()
        row = {"user_id": 7, "ts": now, "created": now, "amount": 12.5, "count": 3, "country": "FR"}
        body = {"view": "user_stats", "rows": [row]}
        pushed = requests.post(server.url + "/v1/push", json=body, timeout=30)
        assert pushed.status_code == 200, pushed.text
        assert pushed.json() == {"view": "user_stats", "rows": 1, "written": 1, "stale": 0, "journaled": 1,
                                 "duplicates": 0}
        retried = requests.post(server.url + "/v1/push", json=body, timeout=30).json()
        # A retry rewrites the same online value (newest wins, a tie included) and journals nothing twice.
        assert (retried["journaled"], retried["duplicates"]) == (0, 1)
        read = requests.post(server.url + "/v1/features", timeout=10,
                             json={"features": ["user_stats:amount", "user_stats:country"], "entities": {"user_id": 7}})
        assert read.json()["features"] == {"amount": 12.5, "country": "FR"}
        refused = requests.post(server.url + "/v1/push", json={**body, "rows": [{**row, "amount": "much"}]}, timeout=30)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_row"
        deadline = time.monotonic() + 30
        while True:
            table = DeltaTable(view.delta_uri).to_pyarrow_table()
            mine = table.filter(pc.equal(table["user_id"], 7)).to_pylist()
            if mine:
                break
            assert time.monotonic() < deadline, "the server's flusher did not append the pushed row:\n" + server.log()
            time.sleep(0.5)
        assert len(mine) == 1 and mine[0]["amount"] == 12.5 and mine[0]["country"] == "FR"
        assert mine[0][PUSHED_AT] is not None
    finally:
        server.stop()
