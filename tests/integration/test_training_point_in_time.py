"""The point-in-time join against a brute-force oracle, on random small Delta tables.

Both SQL forms run on DuckDB: the ASOF form (dialect duckdb) and the window form built for Spark.
Times are whole seconds plus or minus a microsecond, so ties on ts, rows exactly at the ttl and
one microsecond past it, and created times equal to event times all come up often.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.registry_sync.model import Entity, Feature, FeatureView, Registry
from hindsight.training_sets.api import run_plan
from hindsight.training_sets.engine import DuckDBEngine, pin_tables
from hindsight.training_sets.plan import plan_training_set
from hindsight.training_sets.selection import select_features

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
USER_TTL = 5
ZONES = [None, "UTC", "America/New_York", "Asia/Kolkata"]
FEATURES = ["user_stats:score", "user_stats:tier", "merchant_stats:score", "merchant_stats:risk"]


def at(seconds: int, micros: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds, microseconds=micros)


moments = st.builds(at, st.integers(0, 14), st.sampled_from([0, 0, 0, 1, -1]))
user_rows = st.lists(
    st.tuples(
        st.integers(1, 3),  # user_id
        moments,  # ts
        st.one_of(st.none(), st.integers(0, 8)),  # created - ts in seconds; None = NULL created
        st.floats(-10, 10, allow_nan=False),
    ),
    max_size=14,
)
# Late corrections: (row to correct, seconds later it was recorded): same keys and ts, new values.
corrections = st.lists(st.tuples(st.integers(0, 13), st.integers(1, 6)), max_size=5)
merchant_rows = st.lists(st.tuples(st.integers(1, 2), moments, st.floats(-10, 10, allow_nan=False)), max_size=10)
MICRO = dt.timedelta(microseconds=1)


@st.composite
def spine_rows(draw: st.DrawFn, users: pa.Table, merchants: pa.Table, merchant_ttl: int | None) -> list:
    """Spine rows aimed at the edges: exactly at a row's ts or created time, at its ttl, a microsecond off."""
    user_rows, merchant_rows = users.to_pylist(), merchants.to_pylist()
    user_ttl, merchant_ttl_delta = dt.timedelta(seconds=USER_TTL), dt.timedelta(seconds=merchant_ttl or 0)
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        user, merchant = draw(st.one_of(st.none(), st.integers(1, 4))), draw(st.integers(1, 3))
        choice = draw(st.sampled_from(["random", "user", "merchant", "null"]))
        if choice == "user" and user_rows:
            row = draw(st.sampled_from(user_rows))
            user = draw(st.sampled_from([row["user_id"], row["user_id"], user]))
            base = draw(st.sampled_from([row["event_ts"], row["created_ts"] or row["event_ts"], row["event_ts"] + user_ttl]))
            event = base + draw(st.sampled_from([0, 0, 1, -1])) * MICRO
        elif choice == "merchant" and merchant_rows:
            row = draw(st.sampled_from(merchant_rows))
            merchant = row["merchant_id"]
            event = draw(st.sampled_from([row["ts"], row["ts"] + merchant_ttl_delta])) + draw(st.sampled_from([0, 1, -1])) * MICRO
        elif choice == "null":
            event = None
        else:
            event = at(draw(st.integers(0, 24)), draw(st.sampled_from([0, 1, -1])))
        rows.append((user, merchant, event))
    # Duplicate spine rows must all stay, each in its place.
    for index in draw(st.lists(st.integers(0, len(rows) - 1), max_size=3)):
        rows.insert(draw(st.integers(0, len(rows))), rows[index])
    return rows


def user_table(rows: list, fixes: list) -> pa.Table:
    for index, later in fixes:
        if index < len(rows):
            user, ts, created_after, score = rows[index]
            rows = [*rows, (user, ts, (created_after or 0) + later, score + later)]
    unique: dict[tuple, tuple] = {}
    for user, ts, created_after, score in rows:
        created = None if created_after is None else ts + dt.timedelta(seconds=created_after)
        unique.setdefault((user, ts, created or ts), (user, ts, created, score))  # (keys, ts, created) unique
    data = list(unique.values())
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in data], pa.int64()),
            "event_ts": pa.array([r[1] for r in data], pa.timestamp("us", tz="UTC")),
            "created_ts": pa.array([r[2] for r in data], pa.timestamp("us", tz="UTC")),
            "_partition_date": pa.array([r[1].date() for r in data], pa.date32()),
            "score": pa.array([r[3] for r in data], pa.float64()),
            # Names every row apart, so picking the wrong one of two tied rows shows.
            "tier": pa.array([f"u{r[0]}@{r[1].isoformat()}/{r[2] and r[2].isoformat()}" for r in data], pa.string()),
        }
    )


def merchant_table(rows: list) -> pa.Table:
    unique = {(m, ts): (m, ts, score) for m, ts, score in rows}
    data = list(unique.values())
    return pa.table(
        {
            "merchant_id": pa.array([r[0] for r in data], pa.int32()),
            "ts": pa.array([r[1] for r in data], pa.timestamp("us", tz="UTC")),
            "_partition_date": pa.array([r[1].date() for r in data], pa.date32()),
            "score": pa.array([r[2] for r in data], pa.float64()),
            "risk": pa.array([len(data) - i for i in range(len(data))], pa.int64()),
        }
    )


def registry(root: str, merchant_ttl: int | None) -> Registry:
    return Registry(
        "test",
        entities=(Entity("user", ("user_id",)), Entity("merchant", ("merchant_id",))),
        feature_views=(
            FeatureView(
                "user_stats", "batch", ("user",), ("user_id",), "event_ts", "created_ts", USER_TTL, False,
                f"{root}/user_stats", (Feature("score", "float64"), Feature("tier", "string")),
            ),
            FeatureView(
                "merchant_stats", "batch", ("merchant",), ("merchant_id",), "ts", None, merchant_ttl, False,
                f"{root}/merchant_stats", (Feature("score", "float64"), Feature("risk", "int64")),
            ),
        ),
    )


def spine_table(rows: list, zone: str | None) -> pa.Table:
    if zone is None:  # naive values are UTC wall times
        times = pa.array([t and t.replace(tzinfo=None) for _, _, t in rows], pa.timestamp("us"))
    else:
        times = pa.array([t and t.astimezone(ZoneInfo(zone)) for _, _, t in rows], pa.timestamp("us", tz=zone))
    return pa.table(
        {
            "user_id": pa.array([u for u, _, _ in rows], pa.int64()),
            "merchant_id": pa.array([m for _, m, _ in rows], pa.int64()),
            "event_timestamp": times,
            "label": pa.array(list(range(len(rows))), pa.int64()),
        }
    )


def oracle(spine: list, users: pa.Table, merchants: pa.Table, merchant_ttl: int | None, honor_created: bool) -> list:
    """Per spine row: (user score, user tier, merchant score, merchant risk), by the documented rule."""
    user_rows = users.to_pylist()
    merchant_rows = merchants.to_pylist()
    expected = []
    for user, merchant, event in spine:
        best_user = None
        if event is not None and user is not None:
            candidates = [
                r for r in user_rows
                if r["user_id"] == user and r["event_ts"] <= event
                and (not honor_created or (r["created_ts"] or r["event_ts"]) <= event)
            ]
            best_user = max(candidates, key=lambda r: (r["event_ts"], r["created_ts"] or r["event_ts"]), default=None)
            if best_user and event - best_user["event_ts"] > dt.timedelta(seconds=USER_TTL):
                best_user = None
        best_merchant = None
        if event is not None:
            candidates = [r for r in merchant_rows if r["merchant_id"] == merchant and r["ts"] <= event]
            best_merchant = max(candidates, key=lambda r: r["ts"], default=None)
            if best_merchant and merchant_ttl is not None and event - best_merchant["ts"] > dt.timedelta(seconds=merchant_ttl):
                best_merchant = None
        expected.append(
            (
                best_user and best_user["score"],
                best_user and best_user["tier"],
                best_merchant and best_merchant["score"],
                best_merchant and best_merchant["risk"],
            )
        )
    return expected


@pytest.fixture(scope="module")
def engine() -> Iterator[DuckDBEngine]:
    runner = DuckDBEngine()
    yield runner
    runner.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    users=user_rows,
    fixes=corrections,
    merchants=merchant_rows,
    zone=st.sampled_from(ZONES),
    merchant_ttl=st.sampled_from([None, 0, 3, 7]),
    honor_created=st.booleans(),
    data=st.data(),
)
def test_both_sql_forms_match_the_oracle(
    engine, users, fixes, merchants, zone, merchant_ttl, honor_created, data
) -> None:
    user_data, merchant_data = user_table(users, fixes), merchant_table(merchants)
    spine = data.draw(spine_rows(user_data, merchant_data, merchant_ttl), label="spine")
    expected = oracle(spine, user_data, merchant_data, merchant_ttl, honor_created)
    spine_arrow = spine_table(spine, zone)
    with tempfile.TemporaryDirectory() as root:
        write_deltalake(f"{root}/user_stats", user_data, partition_by=["_partition_date"])
        write_deltalake(f"{root}/merchant_stats", merchant_data, partition_by=["_partition_date"])
        reg = registry(root, merchant_ttl)
        plan = plan_training_set(reg, select_features(reg, features=FEATURES))
        pinned = pin_tables(plan.views, None)
        for dialect in ("duckdb", "spark"):
            result = run_plan(
                engine, plan, spine_arrow, pinned,
                event_timestamp="event_timestamp", honor_created=honor_created, dialect=dialect,
            )
            assert result.column_names == [*spine_arrow.column_names, "user_stats__score", "tier",
                                           "merchant_stats__score", "risk"]
            assert result.select(spine_arrow.column_names).equals(spine_arrow), dialect
            got = list(zip(*(result.column(c).to_pylist() for c in result.column_names[4:])))
            assert got == expected, dialect
