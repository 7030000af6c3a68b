"""Aggregation feature views on the dbt side: the tile table a real dbt run writes, on DuckDB and Sail.

A small project that is not the demo (a `clicks` Parquet source, entity `user_id`) is set up the
way a user does it (`hindsight init`, `dbt deps`) and holds one aggregation view plus a folder of
broken ones. The tiles are compared with a reference computed here in pandas straight from the
definition (offline_store/tiles.py): one row per entity and distinct event time e, aggregating
the entity's events in [floor(e, i), e].
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from deltalake import DeltaTable

from hindsight.offline_store.derived_partition import GRAINS
from tests.aggregation_oracle import assert_tiles_match, reference_tiles
from tests.aggregation_strategies import AggregationCase, aggregation_cases

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)

#: The run's clock is "now"; events span the ten days before it (the default lateness is 3 days).
NOW = dt.datetime.now(UTC)
DAY0 = dt.datetime.combine(NOW.date() - dt.timedelta(days=10), dt.time(), tzinfo=UTC)

DBT_PROJECT = """\
name: 'clicks'
version: '1.0.0'
config-version: 2
profile: 'clicks'
on-run-start:
  - "{{ hindsight.register_file_sources('raw', env_var('CLICKS_RAW')) }}"
# These views test tiles, not the catalog: their features go undocumented.
vars:
  hindsight_require_descriptions: false
"""

PROFILES = """\
clicks:
  target: "{{ env_var('CLICKS_TARGET', 'dev') }}"
  outputs:
    dev:
      type: duckdb
      path: data/clicks.duckdb
      threads: 2
    spark:
      type: spark
      method: session
      host: spark-connect
      schema: clicks
      threads: 2
      server_side_parameters:
        spark.remote: "{{ env_var('CLICKS_SPARK_REMOTE', 'sc://127.0.0.1:1') }}"
        spark.sql.session.timeZone: UTC
"""

SOURCES = """\
version: 2
sources:
  - name: raw
    schema: raw
    meta:
      external_location: "read_parquet('{{ env_var('CLICKS_RAW') }}/{name}/*.parquet')"
    tables:
      - name: clicks
      - name: case_0
      - name: case_1
      - name: case_2
      - name: case_3
"""

#: The view under test: every function, two default windows, one aggregation with its own.
VIEW = """\
{{ config(
    entities=['user_id'],
    timestamp_field='ts',
    aggregation_interval='1h',
    windows=['1h', '1d'],
    aggregations=[
        {'column': '*', 'name': 'click', 'functions': ['count']},
        {'column': 'amount', 'functions': ['count', 'sum', 'mean', 'max']},
        {'column': 'amount', 'functions': ['min', 'stddev', 'last'], 'windows': ['1d']},
        {'column': 'country', 'functions': ['last', 'min'], 'windows': ['1d']},
    ],
) }}
select user_id, ts, amount, country
from {{ source('raw', 'clicks') }}
where {{ hindsight.source_time_filter('ts') }}
"""

TILE_COLUMNS = [
    "user_id", "ts", "_tile_start", "_events",
    "amount__n", "amount__sum", "amount__m2", "amount__min", "amount__max", "amount__last", "amount__last_at",
    "country__min", "country__last", "country__last_at",
]

#: Broken views, one rule each, and a piece of the error each must print.
_BROKEN_BASE = {"entities": "['user_id']", "timestamp_field": "'ts'", "aggregation_interval": "'1h'", "windows": "['1h']"}
BROKEN = {
    "window_not_multiple": ({"windows": "['90m']", "aggregations": "[{'column': '*', 'functions': ['count']}]"},
                            "window '90m' is not a positive multiple of aggregation_interval '1h'; the nearest valid window is '2h'"),
    "count_distinct": ({"aggregations": "[{'column': 'country', 'functions': ['count_distinct']}]"},
                       "function 'count_distinct' is not supported in aggregation views"),
    "unknown_function": ({"aggregations": "[{'column': 'amount', 'functions': ['maxx']}]"},
                         "unknown function 'maxx' (did you mean max?); supported: count, sum, mean, min, max, stddev, last"),
    "star_sum": ({"aggregations": "[{'column': '*', 'functions': ['sum']}]"},
                 "column '*' (every event) only supports function 'count', got 'sum'"),
    "missing_column": ({"aggregations": "[{'column': 'amout', 'functions': ['sum']}]"},
                       "config 'aggregations' names column amout (did you mean amount?), which is not in the model's output"),
    "sum_of_text": ({"aggregations": "[{'column': 'country', 'functions': ['sum']}]"},
                    "rule 'numeric inputs' failed: column country has type varchar, but sum need numbers"),
    "with_ttl": ({"ttl": "'30d'", "aggregations": "[{'column': '*', 'functions': ['count']}]"},
                 "config 'ttl' is not supported on aggregation views: each window bounds the events"),
    "with_created": ({"created_field": "'ts2'", "aggregations": "[{'column': '*', 'functions': ['count']}]"},
                     "config 'created_field' is not supported on aggregation views yet: an event counts from its event time"),
    "duplicate_feature": ({"aggregations": "[{'column': 'amount', 'functions': ['sum']}, {'column': 'amount', 'functions': ['sum', 'max']}]"},
                          "feature amount_sum_1h is declared twice (also by aggregation 1)"),
    "no_interval": ({"aggregation_interval": None, "aggregations": "[{'column': '*', 'functions': ['count']}]"},
                    "config 'aggregations' needs 'aggregation_interval'"),
    "entry_typo": ({"aggregations": "[{'column': 'amount', 'functoins': ['sum']}]"},
                   "unknown key 'functoins' (did you mean functions?)"),
}


def _broken_model(settings: dict) -> str:
    merged = {**_BROKEN_BASE, **settings}
    args = ",\n    ".join(f"{k}={v}" for k, v in merged.items() if v is not None)
    return f"{{{{ config(\n    {args},\n) }}}}\nselect user_id, ts, ts as ts2, amount, country from {{{{ source('raw', 'clicks') }}}}\n"


# --- the events ---------------------------------------------------------------------------------

def generate_events(seed: int, start: dt.datetime, hours: int, users: int = 4, per_user: int = 60) -> pd.DataFrame:
    """Random clicks: ties at one event time, events on interval bounds, NULL values, large amounts."""
    rng = random.Random(seed)
    rows = []
    for user in range(1, users + 1):
        for _ in range(per_user):
            ts = start + dt.timedelta(minutes=rng.randrange(hours * 60) if rng.random() > 0.15 else 60 * rng.randrange(hours))
            # Values near 1e6 with small spread: a sum-of-squares variance would lose them.
            amount = None if rng.random() < 0.15 else round(1e6 + rng.random(), 6) if user % 2 else float(rng.randint(-5, 50))
            country = None if rng.random() < 0.2 else rng.choice(["DE", "FR", "NL", "PL"])
            rows.append((user, ts, amount, country))
            if rng.random() < 0.1:  # another event at the same instant
                rows.append((user, ts, None if amount is None else amount + 1, rng.choice(["AT", "ZA", None])))
    return pd.DataFrame(rows, columns=["user_id", "ts", "amount", "country"])


def write_events(raw: Path, frame: pd.DataFrame, part: str) -> None:
    folder = raw / "clicks"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(events_table(frame), folder / f"{part}.parquet")


# --- the reference: tests/aggregation_oracle.py, from the definition ------------------------------

AGGREGATIONS = [
    {"column": "*", "name": "click", "functions": ["count"]},
    {"column": "amount", "functions": ["count", "sum", "mean", "max"]},
    {"column": "amount", "functions": ["min", "stddev", "last"], "windows": ["1d"]},
    {"column": "country", "functions": ["last", "min"], "windows": ["1d"]},
]


def events_table(frame: pd.DataFrame) -> pa.Table:
    return pa.table({
        "user_id": pa.array(frame["user_id"], pa.int64()),
        "ts": pa.array([None if pd.isna(t) else t for t in frame["ts"]], pa.timestamp("us", "UTC")),
        "amount": pa.array(frame["amount"], pa.float64()),
        "country": pa.array(frame["country"], pa.string()),
    })


def reference(frame: pd.DataFrame, now: dt.datetime = NOW) -> pa.Table:
    """VIEW's tile rows from the oracle; rows from the future are deferred by the run."""
    table = events_table(frame)
    kept = table.filter(pc.or_kleene(pc.is_null(table["ts"]), pc.less(table["ts"], pa.scalar(now, pa.timestamp("us", "UTC")))))
    return reference_tiles(kept, ["user_id"], "ts", AGGREGATIONS, HOUR)


def read_tiles(location: Path) -> pd.DataFrame:
    frame = DeltaTable(str(location)).to_pyarrow_table().to_pandas()
    return frame.sort_values(["user_id", "ts"]).reset_index(drop=True)


def assert_same_tiles(actual: pd.DataFrame, expected: pa.Table) -> None:
    # Then the partition column derived from ts, at the grain the full build chose.
    assert list(actual.columns[:-1]) == TILE_COLUMNS and actual.columns[-1] in GRAINS
    assert_tiles_match(pa.Table.from_pandas(actual, preserve_index=False), expected, check_types=False)


# --- the project --------------------------------------------------------------------------------

class Project:
    """The clicks project: runs the venv's dbt and hindsight there with its own paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.raw = root / "data" / "raw"
        self.store = root / "data" / "offline_store"
        self.extra: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HINDSIGHT_", "DBT_", "CLICKS_"))}
        return {**env, "CLICKS_RAW": str(self.raw), "HINDSIGHT_OFFLINE_STORE": str(self.store),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "HINDSIGHT_TOOLS": str(REPO / ".tools"), **self.extra, **extra}

    def run(self, *command: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=self.root, env=self.env(**extra),
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
        return result

    def dbt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("dbt", *args, check=check)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("clicks") / "clicks"
    (root / "models" / "features").mkdir(parents=True)
    (root / "models" / "broken").mkdir(parents=True)
    (root / "models" / "features" / "cases").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "profiles.yml").write_text(PROFILES)
    (root / "models" / "sources.yml").write_text(SOURCES)
    (root / "models" / "features" / "user_clicks.sql").write_text(VIEW)
    for name, (config, _) in BROKEN.items():
        (root / "models" / "broken" / f"{name}.sql").write_text(_broken_model(config))
    project = Project(root)
    project.run("hindsight", "init")
    # The broken views are feature views too (init sets models/features only).
    with (root / "dbt_project.yml").open("a") as f:
        f.write("    broken:\n      +materialized: feature_view\n      +on_schema_change: fail\n")
    project.dbt("deps")
    return project


EVENTS = generate_events(seed=11, start=DAY0, hours=96)
#: Events with no time, and one from the future: warned about and deferred, never written.
ODD = pd.DataFrame([(1, None, 5.0, "DE"), (2, None, None, None), (3, NOW + dt.timedelta(days=2), 7.0, "FR")],
                   columns=["user_id", "ts", "amount", "country"])
#: Appended later: new events after the first run's newest, and late ones in its last interval.
LATE_START = DAY0 + dt.timedelta(hours=95)
APPENDED = generate_events(seed=12, start=LATE_START, hours=30, per_user=15)


@pytest.fixture(scope="module")
def built(project: Project) -> dict[str, object]:
    """The view built once from EVENTS + ODD, then incrementally after APPENDED arrived."""
    write_events(project.raw, EVENTS, "part-0")
    write_events(project.raw, ODD, "part-odd")
    first = project.dbt("run", "--select", "user_clicks")
    first_tiles = read_tiles(project.store / "user_clicks")
    first_arrow = DeltaTable(str(project.store / "user_clicks")).to_pyarrow_table()
    write_events(project.raw, APPENDED, "part-1")
    second = project.dbt("run", "--select", "user_clicks")
    return {"first": first, "first_tiles": first_tiles, "first_arrow": first_arrow, "second": second,
            "second_tiles": read_tiles(project.store / "user_clicks"),
            "incremental_mode": DeltaTable(str(project.store / "user_clicks")).history(1)[0]["hindsight_mode"]}


def test_full_build_writes_the_reference_tiles(built) -> None:
    everything = pd.concat([EVENTS, ODD], ignore_index=True)
    assert_same_tiles(built["first_tiles"], reference(everything))
    # Arrow types too: counts int64, sums and m2 float64, min/max/last the input's type.
    assert_tiles_match(built["first_arrow"], reference(everything))


def test_null_event_times_and_future_events_are_reported(built) -> None:
    out = built["first"].stdout
    assert "2 event(s) with a NULL ts are not tiled" in out
    assert "deferred 1 row(s) with ts at or after this run's clock" in out


def test_incremental_run_after_appending_equals_a_full_refresh(project: Project, built) -> None:
    everything = pd.concat([EVENTS, ODD, APPENDED], ignore_index=True)
    assert built["incremental_mode"] == "incremental"
    assert_same_tiles(built["second_tiles"], reference(everything))
    project.dbt("run", "--select", "user_clicks", "--full-refresh")
    pd.testing.assert_frame_equal(read_tiles(project.store / "user_clicks"), built["second_tiles"], check_exact=False, rtol=1e-9)


def test_backfill_widens_to_whole_intervals(project: Project, built) -> None:
    # Every amount changes at the source; a backfill of [10:30, 12:15) on day 1 rewrites 10:00-13:00.
    changed = pd.concat([EVENTS, ODD, APPENDED], ignore_index=True)
    changed["amount"] = changed["amount"] * 2
    for part in ("part-0", "part-odd", "part-1"):
        (project.raw / "clicks" / f"{part}.parquet").unlink()
    write_events(project.raw, changed, "part-changed")
    start, end = DAY0 + dt.timedelta(days=1, hours=10, minutes=30), DAY0 + dt.timedelta(days=1, hours=12, minutes=15)
    fmt = "%Y-%m-%d %H:%M:%S"
    result = project.dbt("run", "--select", "user_clicks", "--vars",
                         f'{{"backfill_start": "{start:{fmt}}", "backfill_end": "{end:{fmt}}"}}')
    lo, hi = DAY0 + dt.timedelta(days=1, hours=10), DAY0 + dt.timedelta(days=1, hours=13)
    assert f"backfill [{start:{fmt}}, {end:{fmt}}) widened to whole aggregation intervals (1h): [{lo:{fmt}}, {hi:{fmt}})." in result.stdout
    tiles = read_tiles(project.store / "user_clicks")
    inside = (tiles["ts"] >= lo) & (tiles["ts"] < hi)
    assert inside.any() and (~inside).any()
    before = built["second_tiles"]
    expected = reference(changed)
    in_range = pc.and_(pc.greater_equal(expected["ts"], pa.scalar(lo, expected.schema.field("ts").type)),
                       pc.less(expected["ts"], pa.scalar(hi, expected.schema.field("ts").type)))
    assert_same_tiles(tiles[inside].reset_index(drop=True), expected.filter(in_range))
    pd.testing.assert_frame_equal(tiles[~inside].reset_index(drop=True),
                                  before[~((before["ts"] >= lo) & (before["ts"] < hi))].reset_index(drop=True))


def test_each_config_error_names_the_model_and_the_rule(project: Project, built) -> None:
    result = project.dbt("run", "--select", "path:models/broken", check=False)
    assert result.returncode == 1
    out = " ".join(result.stdout.split())
    for name, (_, message) in BROKEN.items():
        assert f"feature view {name} (models/broken/{name}.sql)" in out, name
        assert message in out, (name, out[-3000:])
    assert f"ERROR={len(BROKEN)}" in out.replace(" ", "")


def test_sail_writes_the_same_tiles_as_duckdb(project: Project, built, sail_remote: str, tmp_path: Path) -> None:
    raw, store = tmp_path / "raw", tmp_path / "store"
    spark = {"CLICKS_TARGET": "spark", "CLICKS_RAW": str(raw), "HINDSIGHT_OFFLINE_STORE": str(store),
             # Sail keeps its catalog per Spark Connect session: pin one for both runs.
             "CLICKS_SPARK_REMOTE": f"{sail_remote}/;session_id={uuid.uuid4()}"}
    write_events(raw, EVENTS, "part-0")
    write_events(raw, ODD, "part-odd")
    first = project.run("dbt", "run", "--select", "user_clicks", **spark)
    assert "2 event(s) with a NULL ts are not tiled" in first.stdout
    pd.testing.assert_frame_equal(read_tiles(store / "user_clicks"), built["first_tiles"], check_exact=False, rtol=1e-9)
    write_events(raw, APPENDED, "part-1")
    project.run("dbt", "run", "--select", "user_clicks", **spark)
    pd.testing.assert_frame_equal(read_tiles(store / "user_clicks"), built["second_tiles"], check_exact=False, rtol=1e-9)


CASES = 4


@settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(cases=st.lists(aggregation_cases(max_entities=3, max_events=8), min_size=CASES, max_size=CASES))
def test_random_event_streams_tile_as_the_oracle_says(project: Project, cases: list[AggregationCase]) -> None:
    """Drawn intervals, windows, specs (every function; float, integer and text inputs) and events
    (on interval bounds, tied, far apart, NULL values): one view per case, built in one dbt run."""
    folder = project.root / "models" / "features" / "cases"
    for index, case in enumerate(cases):
        settings_ = ", ".join(f"{key}={value!r}" for key, value in case.config.items())
        (folder / f"case_{index}.sql").write_text(
            f"{{{{ config(entities=['user_id'], timestamp_field='ts', {settings_}) }}}}\n"
            f"select user_id, ts, amount, quantity, country from {{{{ source('raw', 'case_{index}') }}}}\n")
        (project.raw / f"case_{index}").mkdir(parents=True, exist_ok=True)
        pq.write_table(case.events, project.raw / f"case_{index}" / "events.parquet")
    project.dbt("run", "--select", "path:models/features/cases", "--full-refresh")
    for index, case in enumerate(cases):
        actual = DeltaTable(str(project.store / f"case_{index}")).to_pyarrow_table()
        assert_tiles_match(actual, reference_tiles(case.events, ["user_id"], "ts", case.aggregations, case.interval))
