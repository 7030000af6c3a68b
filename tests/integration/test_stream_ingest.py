"""Ingest into DynamoDB Local: exactly once per event id, the journal, and online values equal to
the brute-force oracle whatever batches and order the events come in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.online_sync import OnlineStore, ensure_tables
from hindsight.online_sync.codec import KEY_ATTR, VERSION_ATTR, WRITER_ATTR
from hindsight.online_sync.journal import Journal, entry_key, pending_shard, source_target
from hindsight.streams.ingest import IngestReport, Ingestor
from hindsight.streams.validation import IngestValidationError
from tests.aggregation_oracle import expected_features
from tests.aggregation_strategies import SCHEMA, AggregationCase, aggregation_cases, spec_for
from tests.fixtures.aggregation_online import assert_values, case_view, shifted
from tests.fixtures.stream_registry import stream_registry, stream_view
from tests.unit.test_stream_transform import FILTER_RENAME_SQL, view as filter_rename_view

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
TARGET = source_target("streams.transactions")


def txn_view(name: str = "txn", interval: str = "1h", windows: tuple[str, ...] = ("1h", "1d")):
    case = AggregationCase(interval=interval, windows=list(windows), aggregations=spec_for(list(windows)),
                           events=SCHEMA.empty_table(), entities=[])
    return stream_view(case_view(case, "/unused", name=name))


def events(n: int, start: dt.datetime, users: int = 3, prefix: str = "t") -> list[dict]:
    return [{"transaction_id": f"{prefix}{i}", "user_id": i % users, "ts": start + dt.timedelta(seconds=7 * i),
             "amount": float(i), "quantity": i % 4, "country": ["FR", "DE", None][i % 3]} for i in range(n)]


@pytest.fixture
def setup(online_config):
    view = txn_view()
    registry = stream_registry(view)
    tables = ensure_tables(registry, online_config)
    assert tables == {online_config.table_name("txn"): "created", online_config.table_name("_hs_journal"): "created"}
    return registry, view, Ingestor(registry, online_config)


def counts(store: OnlineStore, users: list[int], t: dt.datetime) -> dict[int, int]:
    reads = store.read([{"user_id": u} for u in users], {"txn": ["txn_count_1d"]}, now=t)
    return {u: r["txn"].values["txn_count_1d"] for u, r in zip(users, reads)}


def test_same_events_twice_count_once(setup, online_config):
    registry, _, ingestor = setup
    now = dt.datetime.now(UTC).replace(microsecond=0)
    rows = events(10, now - dt.timedelta(minutes=30))
    first = ingestor.ingest("transactions", rows)
    assert (first.source, first.received, first.accepted, first.duplicates) == ("streams.transactions", 10, 10, 0)
    again = ingestor.ingest("streams.transactions", rows)
    assert (again.received, again.accepted, again.duplicates) == (10, 0, 10)
    # a fresh Ingestor (a restarted server) sees the same journal
    third = Ingestor(registry, online_config).ingest("transactions", rows[:4] + rows[:2])
    assert (third.received, third.accepted, third.duplicates) == (6, 0, 6)
    assert counts(OnlineStore(registry, online_config), [0, 1, 2], now) == {0: 4, 1: 3, 2: 3}


def test_partial_overlap_accepts_only_the_new_events(setup, online_config):
    registry, _, ingestor = setup
    now = dt.datetime.now(UTC).replace(microsecond=0)
    rows = events(120, now - dt.timedelta(minutes=20))  # more than one transaction's worth
    assert ingestor.ingest("transactions", rows[:70]).accepted == 70
    report = ingestor.ingest("transactions", rows[50:])
    assert (report.received, report.accepted, report.duplicates) == (70, 50, 20)
    store = OnlineStore(registry, online_config)
    assert counts(store, [0, 1, 2], now) == {0: 40, 1: 40, 2: 40}
    values = store.read([{"user_id": 1}], {"txn": ["amount_sum_1d", "quantity_sum_1d"]}, now=now)[0]["txn"].values
    assert values == {"amount_sum_1d": float(sum(range(1, 120, 3))), "quantity_sum_1d": sum(i % 4 for i in range(1, 120, 3))}


def test_concurrent_redelivery_from_threads_counts_each_event_once(setup, online_config):
    registry, _, ingestor = setup
    now = dt.datetime.now(UTC).replace(microsecond=0)
    rows = events(60, now - dt.timedelta(minutes=10), users=2)
    reports: list[IngestReport] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def deliver(offset: int) -> None:
        try:
            barrier.wait()
            # every thread sends all events, starting at a different one: maximal contention on two entities
            reports.append(ingestor.ingest("transactions", rows[offset:] + rows[:offset]))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=deliver, args=(k * 15,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sum(r.accepted for r in reports) == 60
    assert sum(r.duplicates for r in reports) == 3 * 60
    store = OnlineStore(registry, online_config)
    assert counts(store, [0, 1], now) == {0: 30, 1: 30}
    values = store.read([{"user_id": 0}], {"txn": ["amount_sum_1d"]}, now=now)[0]["txn"].values
    assert values == {"amount_sum_1d": float(sum(range(0, 60, 2)))}


def test_journal_entries_and_the_pending_index(setup, online_config, dynamodb_client):
    _, _, ingestor = setup
    now = dt.datetime.now(UTC).replace(microsecond=0)
    rows = events(5, now - dt.timedelta(minutes=5))
    before = dt.datetime.now(UTC)
    ingestor.ingest("transactions", rows)
    journal = Journal(online_config, dynamodb_client)
    table = journal.table
    item = dynamodb_client.get_item(TableName=table, Key={KEY_ATTR: {"S": entry_key(TARGET, "t3")}},
                                    ConsistentRead=True)["Item"]
    assert item["_hs_target"] == {"S": TARGET}
    assert item["_hs_pending"] == {"S": pending_shard(TARGET, "t3")}
    seq = int(item["_hs_seq"]["N"])
    assert before.timestamp() * 1e6 <= seq <= dt.datetime.now(UTC).timestamp() * 1e6
    assert int(item["_hs_expires"]["N"]) == seq // 1_000_000 + 7 * 86_400
    assert item["_hs_row"]["S"] == ('{"transaction_id":"t3","user_id":0,"ts":"'
                                    + (now - dt.timedelta(minutes=5, seconds=-21)).isoformat()
                                    + '","amount":3.0,"quantity":3,"country":"FR"}')
    ttl = dynamodb_client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "_hs_expires")
    assert journal.targets_pending() == {TARGET}
    pending = journal.pending(TARGET, limit=3)
    assert len(pending) == 3 and [e.seq_us for e in pending] == sorted(e.seq_us for e in pending)
    everything = journal.pending(TARGET)
    assert sorted(e.entry_id for e in everything) == ["t0", "t1", "t2", "t3", "t4"]
    by_id = {e.entry_id: e for e in everything}
    assert by_id["t3"].row["amount"] == 3.0 and by_id["t3"].ingested_at == dt.datetime(1970, 1, 1, tzinfo=UTC) + \
        dt.timedelta(microseconds=seq)
    assert journal.mark_flushed(everything[:4]) == 4
    assert [e.entry_id for e in journal.pending(TARGET)] == [everything[4].entry_id]
    journal.mark_flushed(everything)
    assert journal.pending(TARGET) == [] and journal.targets_pending() == set()
    # flushed entries still dedupe
    assert ingestor.ingest("transactions", rows).duplicates == 5
    assert journal.ensure_table() == "exists"
    assert ensure_tables(stream_registry(txn_view()), online_config) == {
        online_config.table_name("txn"): "exists", table: "exists"}


def test_a_validation_error_writes_nothing(setup, online_config, dynamodb_client):
    _, _, ingestor = setup
    now = dt.datetime.now(UTC)
    rows = events(3, now - dt.timedelta(minutes=1))
    rows[2]["amount"] = "3.5"
    with pytest.raises(IngestValidationError) as caught:
        ingestor.ingest("transactions", rows)
    assert (caught.value.field, caught.value.index, caught.value.rule, caught.value.nearest) == ("amount", 2, "type", "3.5")
    assert dynamodb_client.scan(TableName=online_config.table_name("_hs_journal"))["Count"] == 0
    with pytest.raises(KeyError, match="no stream source 'transactons' \\(did you mean transactions"):
        ingestor.ingest("transactons", rows)


def test_a_view_that_filters_and_renames_is_updated_through_its_sql(online_config):
    view = dataclasses.replace(filter_rename_view(FILTER_RENAME_SQL), name="customer_spend")
    registry = stream_registry(view, txn_view())
    ensure_tables(registry, online_config)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    rows = [{"transaction_id": i, "user_id": u, "ts": now - dt.timedelta(minutes=m), "amount": a, "quantity": 1,
             "country": c} for i, u, m, a, c in [("a", 1, 3, 10.0, "fr"), ("b", 1, 2, -4.0, "FR"), ("c", 1, 1, 2.0, "ES"),
                                                 ("d", 2, 1, 1.5, "DE")]]
    report = Ingestor(registry, online_config).ingest("transactions", rows)
    assert report.accepted == 4  # every event is journaled, whichever views it feeds
    store = OnlineStore(registry, online_config)
    reads = store.read([{"customer_id": 1, "user_id": 1}, {"customer_id": 2, "user_id": 2}],
                       {"customer_spend": ["payment_count_1h", "spend_cents_sum_1h", "country_last_1h"],
                        "txn": ["txn_count_1h"]}, now=now)
    hour_start = now.replace(minute=0, second=0)
    in_hour = lambda minutes: now - dt.timedelta(minutes=minutes) >= hour_start  # noqa: E731
    assert reads[0]["customer_spend"].values == {"payment_count_1h": int(in_hour(3)),
                                                 "spend_cents_sum_1h": 1000.0 if in_hour(3) else None,
                                                 "country_last_1h": "FR" if in_hour(3) else None}
    assert reads[1]["customer_spend"].values == {"payment_count_1h": 1, "spend_cents_sum_1h": 150.0,
                                                 "country_last_1h": "DE"}
    assert reads[0]["txn"].values == {"txn_count_1h": sum(in_hour(m) for m in (3, 2, 1))}


# ---------------------------------------------------------------------------------------------
# The property: any batches, any order, redeliveries -> serving equals the oracle
# ---------------------------------------------------------------------------------------------


@st.composite
def deliveries(draw):
    """A case, and its events as a sequence of ingest calls: shuffled, split, some sent twice."""
    case = draw(aggregation_cases())
    rows = case.events.to_pylist()
    for i, row in enumerate(rows):
        row["transaction_id"] = f"e{i}"
    order = draw(st.permutations(range(len(rows))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=4)))
    bounds = [0, *cuts, len(rows)]
    calls = [[rows[i] for i in order[a:b]] for a, b in itertools.pairwise(bounds) if b > a]
    for _ in range(draw(st.integers(0, 2))):  # redeliveries: a random earlier slice again
        source = draw(st.sampled_from(calls))
        calls.insert(draw(st.integers(0, len(calls))), source[: draw(st.integers(1, len(source)))])
    return case, calls


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(drawn=deliveries())
def test_ingested_in_any_batches_and_order_serving_equals_the_oracle(drawn, online_config, monkeypatch):
    case, calls = drawn
    # The case is moved to end a day or two from now (DynamoDB Local's TTL sweeper must not take the
    # items mid-test), so the skew bound has to allow those future event times.
    monkeypatch.setenv("HINDSIGHT_PUSH_MAX_FUTURE_SKEW", "4d")
    case = shifted(case)
    delta = case.events["ts"][0].as_py() - drawn[0].events["ts"][0].as_py()
    name = f"agg_{uuid.uuid4().hex[:8]}"
    view = stream_view(case_view(case, "/unused", name=name))
    registry = stream_registry(view)
    config = dataclasses.replace(online_config, table_prefix=f"t{uuid.uuid4().hex[:10]}_")
    ensure_tables(registry, config)
    ingestor = Ingestor(registry, config)
    accepted = 0
    for call in calls:
        moved = [{**row, "ts": row["ts"] + delta} for row in call]
        report = ingestor.ingest("transactions", moved)
        assert report.accepted + report.duplicates == report.received
        accepted += report.accepted
    assert accepted == case.events.num_rows
    last = max(case.events["ts"].to_pylist())
    seconds = case.interval_seconds
    boundary = dt.datetime.fromtimestamp((int(last.timestamp()) // seconds + 1) * seconds, UTC)
    longest = dt.timedelta(seconds=max(a.window_seconds for a in view.aggregations))
    times = sorted({t for t in case.query_times if t >= last}
                   | {boundary, boundary - dt.timedelta(microseconds=1), last + longest})
    users = [*case.entities, 999]
    store = OnlineStore(registry, config)
    names = [f.name for f in view.features]
    for t in times:
        reads = store.read([{"user_id": u} for u in users], {name: names}, now=t)
        for user, read in zip(users, reads):
            expected = expected_features(case.events, user, t, **case.oracle_args)
            assert_values(read[name].values, expected, f"user {user} at {t}")
    client = ingestor.client
    for user in case.entities:
        item = client.get_item(TableName=config.table_name(name), ConsistentRead=True,
                               Key={KEY_ATTR: {"S": str(user)}, WRITER_ATTR: {"S": "sync"}}).get("Item")
        if item is not None:
            assert 1 <= int(item[VERSION_ATTR]["N"]) <= len(calls)


class _InterleavingClient:
    """A client whose first TransactWriteItems is preceded by another writer's ingest (a race lost)."""

    def __init__(self, client, before) -> None:
        self._client, self._before = client, before

    def transact_write_items(self, **kwargs):
        before, self._before = self._before, None
        if before is not None:
            before()
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_version_conflict_rereads_the_item_and_keeps_both_writers_events(setup, online_config, dynamodb_client):
    registry, _, _ = setup
    now = dt.datetime.now(UTC).replace(microsecond=0)
    mine, theirs = events(3, now - dt.timedelta(minutes=5), users=1), events(2, now - dt.timedelta(minutes=4), users=1,
                                                                              prefix="u")
    other = Ingestor(registry, online_config, dynamodb_client)
    other.ingest("transactions", theirs[:1])  # the item exists (version 1) before both read it
    racing = Ingestor(registry, online_config,
                      _InterleavingClient(dynamodb_client, lambda: other.ingest("transactions", theirs[1:])))
    report = racing.ingest("transactions", mine)
    assert (report.accepted, report.duplicates) == (3, 0)
    assert counts(OnlineStore(registry, online_config), [0], now) == {0: 5}
    item = dynamodb_client.get_item(TableName=online_config.table_name("txn"), ConsistentRead=True,
                                    Key={KEY_ATTR: {"S": "0"}, WRITER_ATTR: {"S": "sync"}})["Item"]
    assert item[VERSION_ATTR] == {"N": "3"}  # theirs twice, then mine once (after the retry)
