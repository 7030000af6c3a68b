"""`hindsight stream up|status|create|run --detach|replay|run --stop|down` on a project of its own.

kinesalite started by the CLI (on 127.0.0.1 only), the detached consumer a real background process,
DynamoDB Local the session's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.core.ports import free_port
from hindsight.online_sync import OnlineStore
from tests.fixtures.kinesis import build

pytestmark = pytest.mark.integration
_REPO = Path(__file__).resolve().parents[2]


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port` (IPv4), from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def write_raw_transactions(raw: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{"transaction_id": i, "user_id": 1 + i % 2, "ts": now - dt.timedelta(days=3, minutes=i),
             "amount": float(i), "quantity": 1, "country": "FR"} for i in range(40)]
    (raw / "transactions").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([
        ("transaction_id", pa.int64()), ("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()), ("quantity", pa.int64()), ("country", pa.string())])),
        raw / "transactions" / "part-0.parquet")


def test_the_stream_commands_from_kinesalite_to_online_features(tmp_path, online_config):
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: streamed\n")
    write_raw_transactions(tmp_path / "raw")
    registry, source, view = build(tmp_path, online_config, "cli-transactions")
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    env = {"HINDSIGHT_TOOLS": str(_REPO / ".tools"), "HINDSIGHT_RAW_DATA": str(tmp_path / "raw"),
           "HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix, "HINDSIGHT_STREAM_LEASE_SECONDS": "6"}
    runner = CliRunner()

    def hindsight(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--project-dir", str(project), "stream", *args], env=env)
        assert result.exit_code == code, result.output
        return result.output

    store = OnlineStore(registry, online_config)

    def count(user: int) -> int:
        return int(store.read([{"user_id": user}], {view.name: ["txn_count_10m"]})[0][view.name].values["txn_count_10m"])

    def wait_for(user: int, expected: int) -> None:
        deadline = time.monotonic() + 60
        while count(user) != expected:
            assert time.monotonic() < deadline, f"user {user}: {count(user)} events, expected {expected}"
            time.sleep(0.1)

    assert "kinesalite is not running" in hindsight("status", code=1)
    port = free_port()
    assert f"kinesalite answers at http://127.0.0.1:{port}" in hindsight("up", "--port", str(port))
    try:
        assert listening_addresses(port) == {"127.0.0.1"}
        assert "answers" in hindsight("status")
        registry_args = ("--registry", str(registry_file))
        assert hindsight("create", "--shards", "2", *registry_args) == "cli-transactions: created\n"
        assert hindsight("create", *registry_args) == "cli-transactions: exists (2 open shards)\n"
        assert "consumer runs in the background" in hindsight("run", "--detach", *registry_args)
        assert "already runs" in hindsight("run", "--detach", *registry_args)

        out = hindsight("replay", "--source", "transactions", "--user", "1", "--limit", "15", "--rate", "200",
                        "--keep-ids", *registry_args)
        assert out.startswith("put 15 events into cli-transactions")
        wait_for(1, 15)
        assert count(2) == 0
        # The same events again: duplicates, not counted twice.
        hindsight("replay", "--source", "transactions", "--user", "1", "--limit", "15", "--keep-ids", *registry_args)
        # A replay with fresh ids: new events.
        assert "fresh event ids (replay " in hindsight("replay", "--source", "transactions", "--user", "1", "--limit", "5",
                                              *registry_args)
        wait_for(1, 20)
        time.sleep(1.0)
        assert count(1) == 20

        assert hindsight("run", "--stop") == "stopped the detached consumer\n"
        status = hindsight("status")
        assert "no detached consumer runs" in status
        shards = [line for line in status.splitlines() if "cli-transactions#shardId" in line]
        assert len(shards) == 2 and all(line.endswith("free") for line in shards)
        assert sum(int(line.split(": ")[1].split(" records")[0]) for line in shards) == 35
        assert "no demo transaction matches" in hindsight("replay", "--source", "transactions", "--user", "99",
                                                          *registry_args, code=1)
    finally:
        assert hindsight("down") == "stopped kinesalite\n"
    assert "kinesalite is not running" in hindsight("status", code=1)
