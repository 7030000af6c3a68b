"""window_aggregates, every formulation, against a brute-force oracle on random events.

Three check models are compiled once by real dbt: evaluated at events, on an hourly grid that
tiles, and on an hourly grid that cannot tile (count_distinct, stddev). Each is compiled for a full
refresh and for a backfill (the incremental/backfill join formulation); hypothesis then runs the
compiled SQL on DuckDB over random events and compares every feature with the oracle.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
BACKFILL = {"backfill_start": "2026-01-02", "backfill_end": "2026-01-03"}
RANGE = (BASE + dt.timedelta(days=1), BASE + dt.timedelta(days=2))
WINDOWS = {"1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}
ALL = ["count", "sum", "mean", "min", "max", "stddev"]
CHECKS = {
    "agg_check_event": ("event", ALL, True),
    "agg_check_tiles": ("1h", ["count", "sum", "mean", "min", "max"], False),
    "agg_check_grid": ("1h", ALL, True),
}

MODEL = """
{{{{ config(entities=['user_id'], timestamp_field='event_timestamp') }}}}
{{{{ hindsight.window_aggregates(
    relation=source('raw', 'transactions'), entities=['user_id'], timestamp='ts',
    timestamp_alias='event_timestamp', windows=['1h', '1d'], evaluate='{evaluate}',
    aggregations=[
        {{'column': '*', 'name': 'txn', 'functions': ['count']}},
        {{'column': 'amount', 'functions': {functions}}},
        {extra}
    ],
) }}}}
"""
EXTRA = """{'column': 'merchant_id', 'name': 'merchant', 'functions': ['count_distinct']},
        {'column': 'country', 'functions': ['last']},"""


@pytest.fixture(scope="module")
def compiled(demo_project, tmp_path_factory) -> dict[tuple[str, str], str]:
    """(model, 'full' | 'backfill') -> compiled SQL reading the table `events`."""
    project = demo_project.copy(tmp_path_factory.mktemp("window_checks") / "project")
    for name, (evaluate, functions, extra) in CHECKS.items():
        features = [f"{column}_{function}_{w}" for w in ("1h", "1d") for column, function in (
            ("txn", "count"), *(("amount", f) for f in functions),
            *((("merchant", "count_distinct"), ("country", "last")) if extra else ()))]
        project.add_model(name, MODEL.format(evaluate=evaluate, functions=functions, extra=EXTRA if extra else ""),
                          features=features)
    select = ["--select", *CHECKS]
    project.dbt("run", *select)
    sql = {}
    for mode, args in (("full", ["--full-refresh"]), ("backfill", ["--vars", json.dumps(BACKFILL)])):
        project.dbt("compile", *select, *args)
        for name in CHECKS:
            text = (project.settings.dbt_target_dir / "compiled" / "hindsight" / "models" / "features" / f"{name}.sql").read_text()
            sql[(name, mode)] = re.sub(r"read_parquet\('[^']*'\)", "events", text)
    assert "hs_pairs" in sql[("agg_check_event", "backfill")] and "hs_tiles" in sql[("agg_check_tiles", "full")]
    assert "hs_points" in sql[("agg_check_grid", "full")] and "hs_tiles" not in sql[("agg_check_grid", "full")]
    return sql


events_strategy = st.lists(
    st.tuples(
        st.integers(1, 3),  # user
        st.integers(0, 72 * 60).map(lambda m: m * 60) | st.sampled_from([86400, 86400 + 3600, 2 * 86400, 3600]),  # seconds
        st.one_of(st.none(), st.floats(-50, 500, allow_nan=False).map(lambda x: round(x, 2))),  # amount
        st.integers(1, 4),  # merchant
        st.sampled_from(["FR", "DE", "ES"]),  # country
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda e: (e[0], e[1]),
)


def oracle(events: pd.DataFrame, evaluate: str, functions: list[str], extra: bool, window: tuple | None) -> pd.DataFrame:
    rows = []
    newest = events["ts"].max()
    for user, group in events.groupby("user_id"):
        if evaluate == "event":
            targets = sorted(group["ts"].unique())
        else:
            step = pd.Timedelta(hours=1)
            cap = newest.ceil("1h")
            candidates = {t for ts in group["ts"] for k in range(25) if (t := ts.ceil("1h") + k * step) <= cap}
            targets = sorted(t for t in candidates if ((group["ts"] > t - WINDOWS["1d"]) & (group["ts"] <= t)).any())
        for t in targets:
            if window and not (window[0] <= t < window[1]):
                continue
            row = {"user_id": user, "event_timestamp": t}
            for label, width in WINDOWS.items():
                inside = group[(group["ts"] > t - width) & (group["ts"] <= t)]
                amounts = inside["amount"].dropna()
                row[f"txn_count_{label}"] = len(inside)
                values = {
                    "count": len(amounts),
                    "sum": amounts.sum() if len(amounts) else None,
                    "mean": amounts.mean() if len(amounts) else None,
                    "min": amounts.min() if len(amounts) else None,
                    "max": amounts.max() if len(amounts) else None,
                    "stddev": amounts.std(ddof=1) if len(amounts) > 1 else None,
                }
                for f in functions:
                    row[f"amount_{f}_{label}"] = values[f]
                if extra:
                    row[f"merchant_count_distinct_{label}"] = inside["merchant_id"].nunique()
                    row[f"country_last_{label}"] = inside.sort_values("ts")["country"].iloc[-1] if len(inside) else None
            rows.append(row)
    return pd.DataFrame(rows)


def run(sql: str, events: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events", events)
    return con.execute(sql).df()


def assert_matches(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    if expected.empty:
        return
    keys = ["user_id", "event_timestamp"]
    actual = actual.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    assert (actual["user_id"].to_numpy() == expected["user_id"].to_numpy()).all()
    assert (pd.to_datetime(actual["event_timestamp"], utc=True) == pd.to_datetime(expected["event_timestamp"], utc=True)).all()
    for column in expected.columns.drop(keys):
        for a, e in zip(actual[column], expected[column]):
            if e is None or (isinstance(e, float) and math.isnan(e)):
                assert a is None or (isinstance(a, float) and math.isnan(a)) or pd.isna(a), f"{column}: {a} != NULL"
            elif isinstance(e, str):
                assert a == e, f"{column}: {a} != {e}"
            else:
                assert a == pytest.approx(e, rel=1e-9, abs=1e-9), f"{column}: {a} != {e}"


@pytest.mark.parametrize("model", list(CHECKS))
@pytest.mark.parametrize("mode", ["full", "backfill"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=events_strategy)
def test_every_formulation_equals_the_oracle(compiled, model, mode, raw):
    events = pd.DataFrame(raw, columns=["user_id", "seconds", "amount", "merchant_id", "country"])
    events["ts"] = [BASE + dt.timedelta(seconds=s) for s in events.pop("seconds")]
    events["user_id"] = events["user_id"].astype("int64")
    events["amount"] = events["amount"].astype("float64")
    evaluate, functions, extra = CHECKS[model]
    expected = oracle(events, evaluate, functions, extra, RANGE if mode == "backfill" else None)
    actual = run(compiled[(model, mode)], events)
    assert_matches(actual[expected.columns] if not expected.empty else actual, expected)
