"""Hypothesis strategies for aggregation feature views: event streams, specs and query times.

`aggregation_cases()` draws one `AggregationCase`: an interval, windows that are multiples of it,
an aggregation spec using every function, a few entities with a handful of events each, and times
to ask at. Event times are drawn so that the cases tiles get wrong occur often: exactly on interval
boundaries, one second before one, several events at the same time, long gaps between events.
Values have NULLs. Query times include interval boundaries, event times exactly, the moment before
an entity's first event and long after its last (beyond the longest window).

Usage (compare an implementation with tests/aggregation_oracle.py):

    @given(case=aggregation_cases())
    def test_x(case):
        for entity in case.entities:
            for t in case.query_times:
                expected = expected_features(case.events, entity, t, **case.oracle_args)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from hindsight.core.durations import format_duration, parse_duration

#: Tiles align to the epoch: a base on a day boundary keeps hand-reading failures easy.
BASE = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
JOIN_KEYS = ("user_id",)
TIMESTAMP = "ts"
#: The events' Arrow schema (what a dbt model over them outputs).
SCHEMA = pa.schema([
    pa.field("user_id", pa.int64()),
    pa.field("ts", pa.timestamp("us", tz="UTC")),
    pa.field("amount", pa.float64()),
    pa.field("quantity", pa.int64()),
    pa.field("country", pa.string()),
])


def spec_for(windows: list[str]) -> list[dict[str, Any]]:
    """Every function at least once: float, integer and string inputs, `*`, a per-aggregation window list."""
    return [
        {"column": "*", "name": "txn", "functions": ["count"]},
        {"column": "amount", "functions": ["count", "sum", "mean", "min", "max", "stddev", "last"]},
        {"column": "quantity", "functions": ["sum", "mean", "stddev", "min", "max"], "windows": windows[-1:]},
        {"column": "country", "functions": ["count", "min", "max", "last"]},
    ]


@dataclass
class AggregationCase:
    """One drawn scenario: the model config, its events and the times to ask at."""

    interval: str
    windows: list[str]
    aggregations: list[dict[str, Any]]
    events: pa.Table
    entities: list[int]
    query_times: list[dt.datetime] = field(default_factory=list)

    @property
    def interval_seconds(self) -> int:
        return _seconds(self.interval)

    @property
    def oracle_args(self) -> dict[str, Any]:
        """Keyword arguments of aggregation_oracle.expected_features for this case."""
        return {
            "join_keys": JOIN_KEYS, "timestamp": TIMESTAMP, "aggregations": self.aggregations,
            "interval": self.interval, "windows": self.windows,
        }

    @property
    def config(self) -> dict[str, Any]:
        """The dbt config() keys of the model (besides entities and timestamp_field)."""
        return {"aggregation_interval": self.interval, "windows": self.windows, "aggregations": self.aggregations}


def _seconds(label: str) -> int:
    return int(parse_duration(label).total_seconds())


@st.composite
def event_times(draw: st.DrawFn, interval: int, count: int) -> list[int]:
    """Seconds after BASE: near boundaries, repeated, with long gaps (up to ~60 intervals)."""
    times: list[int] = []
    bucket = draw(st.integers(0, 3))
    for _ in range(count):
        if times and draw(st.integers(0, 4)) == 0:  # the same event time again
            times.append(draw(st.sampled_from(times)))
            continue
        bucket += draw(st.sampled_from([0, 0, 1, 1, 2]) | st.integers(3, 60))
        offset = draw(st.sampled_from([0, 1, interval - 1, interval // 2]) | st.integers(0, interval - 1))
        times.append(bucket * interval + offset)
    return times


@st.composite
def aggregation_cases(draw: st.DrawFn, max_entities: int = 3, max_events: int = 6) -> AggregationCase:
    """A whole scenario (see the module docstring)."""
    interval = draw(st.sampled_from([3600, 1800, 86400]))
    multiples = sorted(draw(st.sets(st.sampled_from([1, 2, 3, 5, 24]), min_size=1, max_size=3)))
    windows = [format_duration(dt.timedelta(seconds=m * interval)) for m in multiples]
    entities = list(range(1, draw(st.integers(1, max_entities)) + 1))
    rows = []
    for user in entities:
        for second in draw(event_times(interval, draw(st.integers(0 if user > 1 else 1, max_events)))):
            rows.append({
                "user_id": user,
                "ts": BASE + dt.timedelta(seconds=second),
                "amount": draw(st.none() | st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
                               .map(lambda x: round(x, 2))),
                "quantity": draw(st.none() | st.integers(-5, 50)),
                "country": draw(st.none() | st.sampled_from(["DE", "ES", "FR"])),
            })
    events = pa.Table.from_pylist(rows, schema=SCHEMA)
    return AggregationCase(
        interval=format_duration(dt.timedelta(seconds=interval)), windows=windows, aggregations=spec_for(windows),
        events=events, entities=entities,
        query_times=draw(query_times(rows, interval, multiples[-1] * interval)),
    )


@st.composite
def query_times(draw: st.DrawFn, rows: list[dict[str, Any]], interval: int, longest: int) -> list[dt.datetime]:
    """Times to ask at: boundaries, event times, just before, long after, and random ones."""
    times = sorted(r["ts"] for r in rows)
    first, last = times[0], times[-1]
    tick = dt.timedelta(microseconds=1)
    span = int((last - first).total_seconds()) + 2 * longest
    out = {last, last + dt.timedelta(seconds=longest + interval), last + dt.timedelta(days=400)}
    for user in {r["user_id"] for r in rows}:  # each entity's first event, and the moment before it
        mine = min(r["ts"] for r in rows if r["user_id"] == user)
        out |= {mine - tick, mine}
    for _ in range(draw(st.integers(2, 6))):
        kind = draw(st.sampled_from(["boundary", "before_boundary", "event", "random"]))
        if kind in ("boundary", "before_boundary"):
            start = int((first - BASE).total_seconds()) // interval
            t = BASE + dt.timedelta(seconds=draw(st.integers(start, start + span // interval + 1)) * interval)
            out.add(t if kind == "boundary" else t - tick)
        elif kind == "event":
            out.add(draw(st.sampled_from(times)))
        else:
            out.add(first + dt.timedelta(seconds=draw(st.integers(-interval, span))))
    return sorted(out)
