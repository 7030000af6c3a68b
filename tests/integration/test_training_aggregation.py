"""Training sets over aggregation views equal the brute-force oracle, on DuckDB and on Spark (Sail).

Events -> `reference_tiles` (tests/aggregation_oracle.py, built from the definition) -> a real Delta
table written with deltalake -> `training_set` -> every feature compared with
`expected_features` at every spine time: interval boundaries, the microsecond before one, event
times, before an entity's first event, long after its last, and an entity with no events at all.

Tolerances: sums and means of floats within 1e-9 relative (engines add in another order than
math.fsum); stddev within 1e-6 relative or 1e-6 absolute, because combining tiles computes
M2 = m2 + Q - S^2/N, which loses a few digits to cancellation when the mean is large next to the
spread (values here are within +-1000 with two decimals).
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings

from hindsight import on_demand
from hindsight.offline_store import tiles
from hindsight.on_demand.fraud import transaction_context
from hindsight.registry_sync.model import Entity, Feature, FeatureView, Registry
from hindsight.training_sets import features_as_of, training_set
from hindsight.training_sets.api import run_plan
from hindsight.training_sets.engine import open_engine, pin_tables
from hindsight.training_sets.plan import plan_training_set
from hindsight.training_sets.selection import select_features
from tests import aggregation_oracle as oracle
from tests.aggregation_strategies import JOIN_KEYS, SCHEMA, TIMESTAMP, AggregationCase, aggregation_cases

pytestmark = pytest.mark.integration

STAMP = pa.timestamp("us", tz="UTC")
#: An entity with no events: count 0, everything else NULL.
STRANGER = 999
REL_TOL = 1e-9
STDDEV_REL_TOL, STDDEV_ABS_TOL = 1e-6, 1e-6


def aggregation_view(name: str, events: pa.Table, spec: list[dict[str, Any]], windows: list[str], interval: str,
                     root: Path) -> FeatureView:
    """Write the tiles of `events` to a Delta table under root/name; the registry's view of it."""
    aggregations = oracle.expand(spec, windows)
    table = oracle.reference_tiles(events, JOIN_KEYS, TIMESTAMP, aggregations, interval)
    write_deltalake(root / name, table.replace_schema_metadata(None), partition_by=["_partition_date"])
    dtypes = {"int64": "int64", "double": "float64", "string": "string"}

    def dtype(column: str) -> str | None:
        return None if column == tiles.STAR else dtypes[str(events.schema.field(column).type)]

    return FeatureView(
        name, "aggregation", ("user",), JOIN_KEYS, TIMESTAMP, None, None, False, str(root / name),
        tuple(Feature(a.name, tiles.feature_dtype(a.function, dtype(a.column))) for a in aggregations),
        aggregation_interval_seconds=int(oracle.duration_micros(interval) // 1_000_000),
        aggregations=tuple(aggregations),
    )


def case_registry(case: AggregationCase, root: Path) -> Registry:
    view = aggregation_view("txns", case.events, case.aggregations, case.windows, case.interval, root)
    return Registry("aggregation-test", entities=(Entity("user", JOIN_KEYS),), feature_views=(view,))


def case_spine(case: AggregationCase) -> pa.Table:
    rows = [(user, t) for user in [*case.entities, STRANGER] for t in case.query_times]
    return pa.table({"user_id": pa.array([r[0] for r in rows], pa.int64()),
                     "event_timestamp": pa.array([r[1] for r in rows], STAMP)})


def assert_equals_oracle(result: pa.Table, events: pa.Table, oracle_args: dict[str, Any]) -> None:
    names = [a.name for a in oracle.expand(oracle_args["aggregations"], oracle_args["windows"])]
    by_user: dict[Any, list[dict[str, Any]]] = {}
    for event in events.to_pylist():  # each entity's events once: the oracle scans what it is given
        by_user.setdefault(event["user_id"], []).append(event)
    for row in result.to_pylist():
        mine = by_user.get(row["user_id"], [])
        expected = oracle.expected_features(mine, row["user_id"], row["event_timestamp"], **oracle_args)
        for name in names:
            got, want = row[name], expected[name]
            where = f"{name} for user {row['user_id']} at {row['event_timestamp']}: got {got!r}, expected {want!r}"
            if isinstance(want, float) and got is not None:
                stddev = "_stddev_" in name
                assert math.isclose(got, want, rel_tol=STDDEV_REL_TOL if stddev else REL_TOL,
                                    abs_tol=STDDEV_ABS_TOL if stddev else 0.0), where
            else:
                assert want == got and (got is None or type(got) is type(want) or isinstance(want, oracle.AnyOf)), where


def both_forms_on_duckdb(registry: Registry, spine: pa.Table, features: list[str]) -> list[pa.Table]:
    """The ASOF form and the portable (Spark) form, both run by DuckDB."""
    plan = plan_training_set(registry, select_features(registry, features=features))
    out = []
    for dialect in ("duckdb", "spark"):
        runner = open_engine("duckdb")
        try:
            out.append(run_plan(runner, plan, spine, pin_tables(plan.views, {}), event_timestamp="event_timestamp",
                                honor_created=True, dialect=dialect))
        finally:
            runner.close()
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=aggregation_cases())
def test_duckdb_equals_the_oracle(case: AggregationCase) -> None:
    with tempfile.TemporaryDirectory(prefix="hs-agg-") as root:
        registry, spine = case_registry(case, Path(root)), case_spine(case)
        asof_form, window_form = both_forms_on_duckdb(registry, spine, ["txns:*"])
    assert_equals_oracle(asof_form, case.events, case.oracle_args)
    assert window_form.equals(asof_form) or _close_tables(window_form, asof_form)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=aggregation_cases(max_entities=2, max_events=5))
def test_sail_equals_the_oracle(sail_remote: str, case: AggregationCase) -> None:
    with tempfile.TemporaryDirectory(prefix="hs-agg-") as root:
        registry, spine = case_registry(case, Path(root)), case_spine(case)
        result = training_set(spine, features=["txns:*"], registry=registry, engine="spark", spark_remote=sail_remote)
        on_duckdb = training_set(spine, features=["txns:*"], registry=registry)
    assert_equals_oracle(result, case.events, case.oracle_args)
    assert result.schema == on_duckdb.schema


def _close_tables(left: pa.Table, right: pa.Table) -> bool:
    """Equal but for float rounding (the two forms may add in another order)."""
    if left.schema != right.schema:
        return False
    for a, b in zip(left.to_pylist(), right.to_pylist()):
        for name, x in a.items():
            y = b[name]
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


# -- the demo's shape: mixed with a batch view and an on-demand view, on both engines ----------

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
SPEC = [
    {"column": "*", "name": "txn", "functions": ["count"]},
    {"column": "amount", "functions": ["sum", "mean", "max"]},
    {"column": "amount", "functions": ["min", "stddev"], "windows": ["1d", "30d"]},
    {"column": "country", "functions": ["last"], "windows": ["30d"]},
]
WINDOWS = ["1h", "1d", "30d"]


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, pa.Table, pa.Table]:
    import random

    rng = random.Random(5)
    root = tmp_path_factory.mktemp("aggregation_store")
    rows = []
    for _ in range(800):
        rows.append({"user_id": rng.randrange(20), "ts": T0 + dt.timedelta(minutes=rng.randrange(40 * 24 * 60)),
                     "amount": rng.choice([None, round(rng.uniform(1, 300), 2)]), "quantity": rng.randrange(5),
                     "country": rng.choice([None, "FR", "DE", "IT"])})
    events = pa.Table.from_pylist(rows, schema=SCHEMA)
    view = aggregation_view("user_transaction_aggregates", events, SPEC, WINDOWS, "1h", root)
    profiles = pa.table({"user_id": pa.array(range(20), pa.int64()),
                         "event_timestamp": pa.array([T0] * 20, STAMP),
                         "home_country": pa.array([["FR", "DE", "IT"][u % 3] for u in range(20)])})
    write_deltalake(root / "user_profile", profiles)
    profile = FeatureView("user_profile", "batch", ("user",), JOIN_KEYS, "event_timestamp", None, None, False,
                          str(root / "user_profile"), (Feature("home_country", "string"),))
    registry = Registry("demo-like", entities=(Entity("user", JOIN_KEYS),), feature_views=(view, profile),
                        on_demand_views=(on_demand.to_registry(transaction_context),))
    times = [T0 + dt.timedelta(minutes=rng.randrange(-600, 80 * 24 * 60)) for _ in range(400)]
    times += [T0 + dt.timedelta(hours=h) for h in range(0, 60 * 24, 97)]  # on interval boundaries
    spine = pa.table({
        "user_id": pa.array([rng.choice([None, *range(22)]) for _ in times], pa.int64()),
        "event_timestamp": pa.array([t.replace(tzinfo=None) for t in times], pa.timestamp("us")),  # naive = UTC
        "amount": [rng.uniform(1, 300) for _ in times],
        "country": [rng.choice(["FR", "DE", "IT"]) for _ in times],
        "label": [i % 2 for i in range(len(times))],
    })
    return registry, spine, events


FEATURES = ["user_transaction_aggregates:*", "user_profile:home_country", "transaction_context:*"]


def test_mixed_request_equals_the_oracle_on_duckdb(demo_like) -> None:
    registry, spine, events = demo_like
    result = training_set(spine, features=FEATURES, registry=registry)
    assert result.column_names[:5] == spine.column_names
    keyed = result.filter(pc.is_valid(result.column("user_id")))
    keyed = keyed.set_column(1, "event_timestamp", keyed.column(1).cast(STAMP))
    args = {"join_keys": JOIN_KEYS, "timestamp": TIMESTAMP, "aggregations": SPEC, "interval": "1h",
            "windows": WINDOWS}
    assert_equals_oracle(keyed, events, args)
    # A spine row without an entity matches nothing: every feature NULL, counts included.
    no_key = result.filter(pc.is_null(result.column("user_id"))).to_pylist()
    assert no_key and all(r["txn_count_1d"] is None and r["amount_sum_30d"] is None for r in no_key)
    # The on-demand view reads the aggregation feature like any other.
    for row in keyed.to_pylist():
        mean = row["amount_mean_30d"]
        expected = None if not mean else row["amount"] / mean
        assert row["amount_vs_user_mean_30d"] == pytest.approx(expected)
    # The windows mean what their names say: counts drop to 0 long after the last event.
    late = [r for r in keyed.to_pylist() if r["event_timestamp"] > T0 + dt.timedelta(days=71)]
    assert late and all(r["txn_count_30d"] == 0 and r["amount_max_30d"] is None for r in late)
    assert result.schema.field("txn_count_1h").type == pa.int64()
    assert result.schema.field("country_last_30d").type == pa.string()


def test_mixed_request_on_sail_equals_duckdb(demo_like, sail_remote: str) -> None:
    registry, spine, _ = demo_like
    on_duckdb = training_set(spine, features=FEATURES, registry=registry)
    on_sail = training_set(spine, features=FEATURES, registry=registry, engine="spark", spark_remote=sail_remote)
    assert on_sail.schema == on_duckdb.schema
    assert on_sail.equals(on_duckdb) or _close_tables(on_sail, on_duckdb)


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_features_as_of_combines_tiles_at_the_instant(demo_like, engine: str, request) -> None:
    registry, _, events = demo_like
    remote = request.getfixturevalue("sail_remote") if engine == "spark" else None
    when = T0 + dt.timedelta(days=20, hours=5)  # exactly on an interval boundary
    result = features_as_of(when, features=["user_transaction_aggregates:*"], registry=registry, engine=engine,
                            spark_remote=remote)
    assert result.column("user_id").to_pylist() == sorted(set(events.column("user_id").to_pylist()))
    args = {"join_keys": JOIN_KEYS, "timestamp": TIMESTAMP, "aggregations": SPEC, "interval": "1h",
            "windows": WINDOWS}
    stamped = result.append_column("event_timestamp", pa.array([when] * result.num_rows, STAMP))
    assert_equals_oracle(stamped, events, args)


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_null_handling_of_the_sql_constructs(engine: str, request) -> None:
    """LEAST / GREATEST skip NULLs and LAST_VALUE IGNORE NULLS works over RANGE frames, on both engines."""
    from sqlglot import exp

    from hindsight.training_sets.sql_parts import column

    least = exp.Least(this=exp.Literal.number(2), expressions=[exp.cast(exp.Null(), "double")], ignore_nulls=True)
    greatest = exp.Greatest(this=exp.cast(exp.Null(), "double"), expressions=[exp.Literal.number(3)], ignore_nulls=True)
    frame = exp.WindowSpec(kind="RANGE", start=exp.Literal.number(3), start_side="PRECEDING",
                           end=exp.Literal.number(1), end_side="PRECEDING")
    last = exp.Window(this=exp.IgnoreNulls(this=exp.LastValue(this=column("v"))), partition_by=[column("k")],
                      order=exp.Order(expressions=[exp.Ordered(this=column("b"), nulls_first=False)]), spec=frame)
    data = pa.table({"k": [1, 1, 1, 1, 1], "b": [1, 2, 3, 5, 6], "v": ["x", "y", None, None, None]})
    runner = open_engine(engine, request.getfixturevalue("sail_remote") if engine == "spark" else None)
    try:
        runner.register_arrow("t", data)
        query = exp.select(column("b"), exp.alias_(least, "l"), exp.alias_(greatest, "g"), exp.alias_(last, "v")).from_(
            exp.Table(this=exp.to_identifier("t"))).order_by(column("b"))
        rows = runner.run(query).to_pylist()
    finally:
        runner.close()
    assert [(r["l"], r["g"]) for r in rows] == [(2, 3)] * 5
    # b=5 looks at buckets 2..4: y (3 is NULL); b=6 at 3..5: only NULLs.
    assert [r["v"] for r in rows] == [None, "x", "y", "y", None]
