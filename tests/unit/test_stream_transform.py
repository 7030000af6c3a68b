"""The stream transform: a stream-fed view's compiled SQL run over one batch of events."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from hindsight.registry_sync.model import Aggregation, Feature, FeatureView
from hindsight.streams.transform import StreamTransform, StreamTransformError, run_transform
from hindsight.streams.validation import validate_rows
from tests.fixtures.stream_registry import RANGE, STREAM, stream_source

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

#: A view that filters (no refunds, only some countries) and renames (user_id -> customer_id,
#: ts -> paid_at, amount -> spend), with the processing range an incremental run renders.
FILTER_RENAME_SQL = f"""
with payments as (
    select user_id, ts, amount, country
    from "memory"."streams"."transactions"
    where {RANGE} and amount > 0
)
select user_id as customer_id, ts as paid_at, amount * 100 as spend_cents, upper(country) as country
from payments
where country in ('fr', 'FR', 'DE')
"""


def view(sql: str, dialect: str = "duckdb") -> FeatureView:
    aggregations = (Aggregation("payment_count_1h", "count", "*", 3600),
                    Aggregation("spend_cents_sum_1h", "sum", "spend_cents", 3600),
                    Aggregation("country_last_1h", "last", "country", 3600))
    return FeatureView(
        "customer_spend", "aggregation", ("customer",), ("customer_id",), "paid_at", None, None, True, "/x",
        (Feature("payment_count_1h", "int64"), Feature("spend_cents_sum_1h", "float64"),
         Feature("country_last_1h", "string")),
        aggregation_interval_seconds=3600, aggregations=aggregations, stream_source=STREAM, stream_sql=sql,
        stream_sql_dialect=dialect)


def events():
    rows = [
        ("t1", 1, T0, 10.0, "fr"),
        ("t2", 1, T0 + dt.timedelta(minutes=1), -10.0, "FR"),  # a refund: filtered out
        ("t3", 2, T0 + dt.timedelta(minutes=2), 2.5, "DE"),
        ("t4", 3, T0 + dt.timedelta(minutes=3), 7.0, "ES"),  # another country: filtered out
        # far outside the range the compiled SQL was rendered with: a batch takes every event
        ("t5", 2, T0 + dt.timedelta(days=30), 1.0, None),
    ]
    return validate_rows(stream_source(), [
        {"transaction_id": i, "user_id": u, "ts": t, "amount": a, "quantity": 1, "country": c} for i, u, t, a, c in rows
    ], bound=None)


def test_a_view_that_filters_and_renames():
    transform = StreamTransform(view(FILTER_RENAME_SQL), stream_source())
    assert transform.ranges_replaced == 1
    assert transform.columns == ("customer_id", "paid_at", "spend_cents", "country")
    out = run_transform(transform, events())
    assert out.column_names == ["customer_id", "paid_at", "spend_cents", "country"]
    assert out.to_pylist() == [
        {"customer_id": 1, "paid_at": T0, "spend_cents": 1000.0, "country": "FR"},
        {"customer_id": 2, "paid_at": T0 + dt.timedelta(minutes=2), "spend_cents": 250.0, "country": "DE"},
    ]
    assert "processing_range" not in transform.sql.replace("/* hindsight:processing_range */", "")
    assert '"hs_stream_batch" AS "transactions"' in transform.sql


def test_spark_sql_and_a_source_without_database():
    sql = ("select user_id as customer_id, ts as paid_at, amount * 100 as spend_cents, country "
           f"from `streams`.`transactions` where {RANGE.replace(chr(34), '`')} and amount > 0")
    out = run_transform(StreamTransform(view(sql, "spark"), stream_source()), events())
    assert out.column("customer_id").to_pylist() == [1, 2, 3, 2]
    assert out.column("spend_cents").to_pylist() == [1000.0, 250.0, 700.0, 100.0]


def test_the_full_refresh_range_and_a_qualified_column():
    sql = ('select t.user_id as customer_id, t.ts as paid_at, t.amount as spend_cents, t.country '
           'from "db"."streams"."transactions" as t '
           'where /* hindsight:processing_range */ (1 = 1) /* hindsight:processing_range_end */')
    transform = StreamTransform(view(sql), stream_source())
    assert transform.ranges_replaced == 1
    assert run_transform(transform, events()).num_rows == 5


def test_sql_reading_other_relations_is_refused():
    sql = ('select t.user_id as customer_id, t.ts as paid_at, t.amount as spend_cents, m.country '
           'from "db"."streams"."transactions" t join "db"."main"."merchants" m on t.country = m.country')
    with pytest.raises(StreamTransformError, match=r"reads \"db\".\"main\".\"merchants\" besides stream source "
                                                   r"'streams.transactions'"):
        StreamTransform(view(sql), stream_source())
    with pytest.raises(StreamTransformError, match="does not read stream source 'streams.transactions'"):
        StreamTransform(view('select 1 as customer_id from "db"."main"."other"'), stream_source())
    with pytest.raises(StreamTransformError, match="no compiled SQL"):
        StreamTransform(dataclasses.replace(view("select 1"), stream_sql=None), stream_source())


def test_events_are_grouped_per_entity_into_transactions_of_at_most_100_items():
    from hindsight.streams.ingest import _groups, _SourcePlan

    def plan(views: int) -> _SourcePlan:
        return _SourcePlan(stream_source(), "source:streams.transactions", tuple(range(views)))  # type: ignore[arg-type]

    rows = [{"transaction_id": f"t{i}", "user_id": u, "ts": T0, "amount": 1.0, "quantity": 1, "country": None}
            for i, u in enumerate([5] * 150 + list(range(100)))]
    table = validate_rows(stream_source(), rows, bound=None)
    groups = _groups(plan(1), table)
    users = [g.column("user_id").to_pylist() for g in groups]
    # 250 journal entries + 100 entities' items = 350 items: 4 transactions are the fewest possible
    assert all(len(g) + len({*u}) <= 100 for g, u in zip(groups, users))
    assert len(groups) == 4
    assert sum(1 for u in users if 5 in u) <= 3  # 151 events of one entity: in 2 or 3 groups, not 151
    assert sorted(v for u in users for v in u) == sorted(r["user_id"] for r in rows)
    assert [len(g) for g in _groups(plan(0), table)] == [100, 100, 50]
    assert all(len(g) + 2 * len(set(g.column("user_id").to_pylist())) <= 100 for g in _groups(plan(2), table))
