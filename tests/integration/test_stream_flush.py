"""The flusher against DynamoDB Local and real Delta event logs: exactly once, micro-batched, leased."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from hindsight.cli import main
from hindsight.offline_store.event_log import event_log_schema
from hindsight.online_sync.journal import Journal, source_target
from hindsight.online_sync.state import Lease
from hindsight.registry_sync.model import Feature, Registry, StreamSource
from hindsight.streams.flush import Flusher, lease_key

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 30, 12, tzinfo=UTC)
COLUMNS = {"transaction_id": "string", "user_id": "int64", "amount": "float64", "ts": "timestamp"}


def make_stream(tmp_path) -> StreamSource:
    return StreamSource(
        name="streams.transactions", event_id_field="transaction_id", timestamp_field="ts", entities=("user",),
        join_keys=("user_id",), columns=tuple(Feature(c, t) for c, t in COLUMNS.items()),
        delta_uri=str(tmp_path / "_streams" / "streams" / "transactions"),
    )


@pytest.fixture
def stream(tmp_path) -> StreamSource:
    return make_stream(tmp_path)


@pytest.fixture
def registry(stream) -> Registry:
    return Registry(project="test", stream_sources=(stream,))


@pytest.fixture
def journal(online_config, dynamodb_client) -> Journal:
    journal = Journal(online_config, client=dynamodb_client)
    journal.ensure_table()
    return journal


def event(i: int) -> dict:
    return {"transaction_id": f"t{i:06d}", "user_id": i % 10, "amount": i / 4,
            "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}


def ack(client, journal: Journal, stream: StreamSource, ids: range) -> None:
    """Put journal entries as an ingest does (one transaction of up to 100 puts)."""
    target = source_target(stream.name)
    items = [journal.put_request(target, event(i)["transaction_id"], event(i), 1_796_000_000_000_000 + i) for i in ids]
    for start in range(0, len(items), 100):
        client.transact_write_items(TransactItems=items[start:start + 100])


def logged_ids(stream: StreamSource) -> list[str]:
    return DeltaTable(stream.delta_uri).to_pyarrow_table(columns=["transaction_id"]).column(0).to_pylist()


def test_micro_batches_many_events_into_one_commit(registry, stream, journal, online_config, dynamodb_client):
    ack(dynamodb_client, journal, stream, range(1000))
    report = Flusher(registry, online_config, client=dynamodb_client).flush_once()
    (flushed,) = report.targets
    assert (flushed.target, flushed.entries, flushed.inserted, flushed.commits) == ("source:streams.transactions", 1000, 1000, 1)
    table = DeltaTable(stream.delta_uri)
    assert [h["operation"] for h in table.history()] == ["MERGE", "WRITE"]  # create, then one commit
    assert sorted(logged_ids(stream)) == [f"t{i:06d}" for i in range(1000)]
    assert journal.pending(source_target(stream.name), 10) == []
    assert pa_schema(table).equals(event_log_schema(stream))


def pa_schema(table: DeltaTable):
    import pyarrow as pa

    return pa.schema(table.schema().to_arrow())


def test_flushing_twice_writes_nothing_the_second_time(registry, stream, journal, online_config, dynamodb_client):
    ack(dynamodb_client, journal, stream, range(50))
    flusher = Flusher(registry, online_config, client=dynamodb_client)
    assert flusher.flush_once().inserted == 50
    again = flusher.flush_once()
    assert (again.entries, again.inserted, again.commits) == (0, 0, 0)
    assert DeltaTable(stream.delta_uri).version() == 1
    ack(dynamodb_client, journal, stream, range(50, 60))
    third = flusher.flush_once()
    assert third.inserted == 10
    assert sorted(logged_ids(stream)) == [f"t{i:06d}" for i in range(60)]


def test_a_crash_between_commit_and_mark_flushed_never_duplicates(registry, stream, journal, online_config,
                                                                  dynamodb_client, monkeypatch):
    ack(dynamodb_client, journal, stream, range(300))
    crashing = Flusher(registry, online_config, client=dynamodb_client)

    def crash(entries):
        raise RuntimeError("killed after the Delta commit")

    monkeypatch.setattr(crashing.journal, "mark_flushed", crash)
    with pytest.raises(RuntimeError, match="killed after the Delta commit"):
        crashing.flush_once()
    assert len(logged_ids(stream)) == 300
    assert len(journal.pending(source_target(stream.name), 1000)) == 300  # still pending: nothing marked
    # The crashed flusher's lease was released on the way out; a new flusher takes over.
    report = Flusher(registry, online_config, client=dynamodb_client).flush_once()
    assert (report.entries, report.inserted, report.commits) == (300, 0, 0)
    ids = logged_ids(stream)
    assert len(ids) == len(set(ids)) == 300
    assert journal.pending(source_target(stream.name), 10) == []


def test_batch_size_bounds_each_commit(registry, stream, journal, online_config, dynamodb_client):
    ack(dynamodb_client, journal, stream, range(250))
    report = Flusher(registry, online_config, client=dynamodb_client, batch_size=100).flush_once()
    assert (report.entries, report.inserted) == (250, 250)
    merges = [h for h in DeltaTable(stream.delta_uri).history() if h["operation"] == "MERGE"]
    sizes = [h["operationMetrics"]["num_target_rows_inserted"] for h in merges]
    # Each of the journal's 8 pending shards gives its share (13) of a batch of at most 100.
    assert len(sizes) == report.commits >= 3 and max(sizes) <= 100 and sum(sizes) == 250


def test_a_held_lease_makes_the_target_busy(registry, stream, journal, online_config, dynamodb_client, tmp_path):
    ack(dynamodb_client, journal, stream, range(5))
    target = source_target(stream.name)
    with Lease(dynamodb_client, journal.table, 30, key=lease_key(target), what="flush"):
        report = Flusher(registry, online_config, client=dynamodb_client).flush_once()
        assert [(t.target, t.busy, t.entries) for t in report.targets] == [(target, True, 0)]
        assert "busy: another flusher holds its lease" in str(report)
        registry_file = tmp_path / "registry.json"
        registry_file.write_text(json.dumps(registry.to_dict()))
        env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
               "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
        busy = CliRunner().invoke(main, ["stream", "flush", "--registry", str(registry_file)], env=env)
        assert busy.exit_code == 1
        assert "another flusher holds the lease of source:streams.transactions" in busy.output
    done = CliRunner().invoke(main, ["stream", "flush", "--source", "transactions", "--registry", str(registry_file)],
                              env=env)
    assert done.exit_code == 0, done.output
    assert "source:streams.transactions" in done.output and "        5" in done.output
    assert len(logged_ids(stream)) == 5
    unknown = CliRunner().invoke(main, ["stream", "flush", "--source", "transaction", "--registry",
                                        str(registry_file)], env=env)
    assert unknown.exit_code == 1
    assert "no stream source 'transaction'" in unknown.output and "transactions" in unknown.output


def test_concurrent_flushers_on_one_target_never_duplicate(registry, stream, journal, online_config, dynamodb_client):
    """Two flushers loop while events keep arriving: every event lands once, whoever wrote it."""
    flushers = [Flusher(registry, online_config, client=dynamodb_client, batch_size=64) for _ in range(2)]
    stop = threading.Event()
    reports = [[], []]
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        while not stop.is_set():
            try:
                reports[i].append(flushers[i].flush_once())
            except Exception as err:  # noqa: BLE001 - collected and asserted below
                errors.append(err)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for start in range(0, 600, 50):
        ack(dynamodb_client, journal, stream, range(start, start + 50))
        time.sleep(0.05)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    final = flushers[0].flush_once()
    assert not errors, errors
    ids = logged_ids(stream)
    assert len(ids) == len(set(ids)) == 600
    written = sum(r.inserted for rs in reports for r in rs) + final.inserted
    assert written == 600
    # Both took turns (or one was busy while the other held the lease).
    assert any(t.busy for rs in reports for r in rs for t in r.targets) or all(
        sum(r.entries for r in rs) for rs in reports)


def test_background_flusher_flushes_on_its_interval_and_on_stop(registry, stream, journal, online_config,
                                                                dynamodb_client):
    flusher = Flusher(registry, online_config, client=dynamodb_client)
    flusher.start(interval_s=0.1)
    ack(dynamodb_client, journal, stream, range(20))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (DeltaTable.is_deltatable(stream.delta_uri) and len(logged_ids(stream)) == 20):
        time.sleep(0.05)
    assert len(logged_ids(stream)) == 20
    ack(dynamodb_client, journal, stream, range(20, 30))
    last = flusher.stop()
    assert not flusher.running
    assert len(logged_ids(stream)) == 30
    assert flusher.last_error is None
    assert last.entries in (0, 10)  # the thread may have flushed them before stop


REPO = Path(__file__).resolve().parents[2]


def test_kill_9_right_after_acks_then_restart_and_flush_loses_and_duplicates_nothing(registry, stream, journal,
                                                                                      online_config, tmp_path):
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    acks = tmp_path / "acks.txt"
    acks.touch()
    child = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "integration" / "flush_crash_child.py"), online_config.endpoint_url,
         online_config.table_prefix, str(registry_file), str(acks)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        # Kill once the background flusher has committed at least once and more events were acked since.
        while time.monotonic() < deadline and child.poll() is None:
            flushed = len(logged_ids(stream)) if DeltaTable.is_deltatable(stream.delta_uri) else 0
            if flushed and len(acks.read_text().split()) >= flushed + 30:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    acked = acks.read_text().split()
    before = logged_ids(stream)
    assert len(before) == len(set(before)) < len(acked), "the kill came before the flush caught up"
    # Restart: `hindsight stream flush` in a new process (it takes over the dead child's lease).
    env = {**os.environ, "HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    restarted = subprocess.run([str(Path(sys.executable).parent / "hindsight"), "stream", "flush", "--registry",
                                str(registry_file)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert restarted.returncode == 0, restarted.stderr
    after = logged_ids(stream)
    assert len(after) == len(set(after)), "an event is in the event log twice"
    assert set(acked) <= set(after), f"{len(set(acked) - set(after))} acknowledged events are missing"
    assert journal.pending(source_target(stream.name), 10) == []


def test_pushed_rows_flush_into_the_push_view_table_once(tmp_path, online_config, dynamodb_client, monkeypatch):
    import dataclasses

    import pyarrow as pa
    from deltalake import write_deltalake

    from hindsight.offline_store.pushed_rows import PUSHED_AT
    from hindsight.online_sync import ensure_tables, push
    from hindsight.online_sync.journal import view_target
    from tests.fixtures.dynamodb import make_view

    view = dataclasses.replace(make_view(tmp_path, "profile", {"score": "float64"}, created=False), push=True)
    schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("_partition_date", pa.date32()),
                        ("score", pa.float64()), (PUSHED_AT, pa.timestamp("us", tz="UTC"))])
    computed = [{"user_id": 1, "ts": T0, "_partition_date": T0.date(), "score": 1.0, PUSHED_AT: None}]
    write_deltalake(view.delta_uri, pa.Table.from_pylist(computed, schema=schema), partition_by=["_partition_date"])
    registry = Registry(project="test", feature_views=(view,))
    ensure_tables(registry, online_config, client=dynamodb_client)
    rows = [{"user_id": 1, "ts": T0 + dt.timedelta(hours=1), "score": 2.0},
            {"user_id": 2, "ts": T0 + dt.timedelta(hours=2), "score": 3.0}]
    push(registry, online_config, "profile", rows)
    crashing = Flusher(registry, online_config, client=dynamodb_client)
    monkeypatch.setattr(crashing.journal, "mark_flushed", lambda entries: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        crashing.flush_once()
    report = Flusher(registry, online_config, client=dynamodb_client).flush_once()
    (flushed,) = report.targets
    assert (flushed.target, flushed.entries, flushed.inserted) == (view_target("profile"), 2, 0)
    table = DeltaTable(view.delta_uri).to_pyarrow_table().sort_by([("user_id", "ascending"), ("ts", "ascending")])
    assert [(r["user_id"], r["score"], r[PUSHED_AT] is not None) for r in table.to_pylist()] == [
        (1, 1.0, False), (1, 2.0, True), (2, 3.0, True)]
    assert Flusher(registry, online_config, client=dynamodb_client).flush_once().entries == 0
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    named = CliRunner().invoke(main, ["stream", "flush", "--view", "profile", "--registry", str(registry_file)], env=env)
    assert named.exit_code == 0 and "view:profile" in named.output, named.output
    typo = CliRunner().invoke(main, ["stream", "flush", "--view", "profil", "--registry", str(registry_file)], env=env)
    assert typo.exit_code == 1
    assert "no feature view 'profil' (did you mean profile?); push views: profile" in typo.output


def test_partial_pushes_with_different_features_keep_every_column(tmp_path, online_config, dynamodb_client):
    import dataclasses

    import pyarrow as pa
    from deltalake import write_deltalake

    from hindsight.offline_store.pushed_rows import PUSHED_AT
    from hindsight.online_sync import ensure_tables, push
    from tests.fixtures.dynamodb import make_view

    view = dataclasses.replace(make_view(tmp_path, "partial", {"score": "float64", "country": "string"}, created=False),
                               push=True, push_partial=True)
    schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("_partition_date", pa.date32()),
                        ("score", pa.float64()), ("country", pa.string()), (PUSHED_AT, pa.timestamp("us", tz="UTC"))])
    computed = [{"user_id": 1, "ts": T0, "_partition_date": T0.date(), "score": 1.0, "country": "FR", PUSHED_AT: None}]
    write_deltalake(view.delta_uri, pa.Table.from_pylist(computed, schema=schema), partition_by=["_partition_date"])
    registry = Registry(project="test", feature_views=(view,))
    ensure_tables(registry, online_config, client=dynamodb_client)
    push(registry, online_config, "partial", [{"user_id": 1, "ts": T0 + dt.timedelta(hours=1), "score": 2.0},
                                             {"user_id": 2, "ts": T0 + dt.timedelta(hours=2), "country": "DE"}])
    assert Flusher(registry, online_config, client=dynamodb_client).flush_once().inserted == 2
    rows = DeltaTable(view.delta_uri).to_pyarrow_table().sort_by([("user_id", "ascending"), ("ts", "ascending")])
    assert [(r["user_id"], r["score"], r["country"]) for r in rows.to_pylist()] == [
        (1, 1.0, "FR"), (1, 2.0, "FR"), (2, None, "DE")]
