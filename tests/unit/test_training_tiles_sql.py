"""The SQL that combines an aggregation view's tiles at spine time, per dialect.

Golden fragments like sqlglot's tests/dialects: the constructs whose rendering differs between
DuckDB and Spark (ARG_MAX / MAX_BY, epoch microseconds, LEAST / GREATEST without NULL guards)
are pinned here, so a sqlglot upgrade that changes them fails loudly. The values are checked
against the brute-force oracle in tests/integration/test_training_aggregation.py.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlglot

from hindsight.registry_sync.model import Aggregation, Entity, Feature, FeatureView, Registry
from hindsight.training_sets import TrainingSetError, training_set_sql
from hindsight.training_sets.plan import plan_training_set, stored_type
from hindsight.training_sets.selection import select_features
from hindsight.training_sets.sql import SpineSpec, ViewRequest, point_in_time_query
from hindsight.training_sets.sql_tiles import bucket_of, columns_needed
from hindsight.training_sets.sql_parts import column

HOUR, DAY = 3600, 86400
AGGREGATIONS = (
    Aggregation("txn count_1h", "count", "*", HOUR),  # a name that needs quoting
    Aggregation("txn count_1d", "count", "*", DAY),
    Aggregation("amount_sum_1d", "sum", "amount", DAY),
    Aggregation("amount_mean_7d", "mean", "amount", 7 * DAY),
    Aggregation("amount_min_1d", "min", "amount", DAY),
    Aggregation("amount_max_1h", "max", "amount", HOUR),
    Aggregation("amount_stddev_7d", "stddev", "amount", 7 * DAY),
    Aggregation("country_last_1d", "last", "country", DAY),
)
DTYPES = {"count": "int64", "sum": "int64", "mean": "float64", "min": "int32", "max": "int32", "stddev": "float64",
          "last": "string"}
TXNS = FeatureView(
    "txns", "aggregation", ("user",), ("user id",), "ts", None, None, False, "/d/txns",
    tuple(Feature(a.name, DTYPES[a.function]) for a in AGGREGATIONS),
    aggregation_interval_seconds=HOUR, aggregations=AGGREGATIONS,
)
CLICKS = FeatureView("clicks", "batch", ("user",), ("user id",), "ts", None, None, False, "/d/clicks",
                     (Feature("n_clicks", "int64"),))
REGISTRY = Registry("unit", entities=(Entity("user", ("user id",)),), feature_views=(TXNS, CLICKS))
ALL = tuple((a.name, a.name) for a in AGGREGATIONS)


def render(dialect: str, features=ALL) -> str:
    query = point_in_time_query(SpineSpec(), [ViewRequest(TXNS, "txns", features)], dialect)
    return query.sql(dialect, pretty=True)


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_renders_and_parses_back(dialect: str) -> None:
    sql = render(dialect)
    # The rendered SQL is valid in its dialect and every name is quoted (spaces survive).
    assert sqlglot.parse_one(sql, read=dialect).sql(dialect, pretty=True) == sql
    quote = '"' if dialect == "duckdb" else "`"
    assert f"{quote}user id{quote}" in sql and f"{quote}txn count_1h{quote}" in sql
    assert "user id" not in sql.replace(f"{quote}user id{quote}", "")


def test_duckdb_fragments() -> None:
    sql = render("duckdb")
    assert "ASOF LEFT JOIN \"txns\"" in sql  # part B: the as-of tile of t's own interval
    assert 'AND "txns__spine"."_tile_start" = "txns"."_tile_start"' in sql
    assert 'CAST(FLOOR(EPOCH_US("__hs_event_time") / 3600000000) AS BIGINT) AS "__hs_bucket"' in sql
    assert 'TO_TIMESTAMP(CAST(FLOOR(EPOCH_US("__hs_event_time") / 3600000000) AS BIGINT) * 3600)' in sql
    # part A: final tiles of the 167 intervals before (the longest frame, 7d), through an equi-join on
    # (entity, block); the 1d frame keeps its 23 intervals with a CASE; nothing for 1h.
    assert 'CAST(FLOOR("__hs_bucket" / 168) AS BIGINT) AS "__hs_block"' in sql
    assert '"__hs_block" - 1 AS "__hs_block"' in sql
    assert (
        'JOIN "txns__final" AS "tile"\n'
        '    ON "probe"."user id" = "tile"."user id"\n'
        '    AND "probe"."__hs_block" = "tile"."__hs_block"\n'
        '    AND "tile"."__hs_bucket" >= "probe"."__hs_bucket" - 167\n'
        '    AND "tile"."__hs_bucket" < "probe"."__hs_bucket"\n'
    ) in sql
    assert 'WHEN "tile"."__hs_bucket" >= "probe"."__hs_bucket" - 23' in sql
    assert "- 0" not in sql
    assert 'ARG_MAX(' in sql and 'AND NOT "tile"."__hs_tile__country__last" IS NULL' in sql
    assert 'LEAST("txns__windows"."__hs_a24__amount__min", "txns"."amount__min")' in sql
    assert 'COALESCE("txns"."country__last", "txns__windows"."__hs_a24__country__last")' in sql
    # max over one interval is part B alone.
    assert '"txns"."amount__max" AS "amount_max_1h"' in sql


def test_spark_fragments() -> None:
    sql = render("spark")
    assert "ASOF" not in sql  # Spark has none: the window timeline finds part B
    assert "CAST(FLOOR(UNIX_MICROS(`__hs_event_time`) / 3600000000) AS BIGINT) AS `__hs_bucket`" in sql
    assert "TIMESTAMP_SECONDS(CAST(FLOOR(UNIX_MICROS(`__hs_event_time`) / 3600000000) AS BIGINT) * 3600)" in sql
    assert "MAX_BY(" in sql and "AND NOT `tile`.`__hs_tile__country__last` IS NULL" in sql
    assert "WHEN `tile`.`__hs_bucket` >= `probe`.`__hs_bucket` - 23" in sql
    assert "LEAST(`txns__windows`.`__hs_a24__amount__min`, `txns`.`amount__min`)" in sql
    assert "GREATEST(" in sql


def test_one_interval_windows_skip_part_a() -> None:
    sql = render("duckdb", (("txn count_1h", "n"), ("amount_max_1h", "m")))
    assert "txns__windows" not in sql and "txns__final" not in sql and "__hs_block" not in sql
    assert 'CAST(COALESCE("txns"."_events", 0) AS BIGINT) AS "n"' in sql


def test_combination_expressions() -> None:
    query = point_in_time_query(SpineSpec(), [ViewRequest(TXNS, "txns", (("amount_sum_1d", "s"), ("amount_stddev_7d", "sd")))])
    sql = query.sql("duckdb")
    count = 'CAST(COALESCE("txns__windows"."__hs_a24__amount__n", 0) + COALESCE("txns"."amount__n", 0) AS BIGINT)'
    assert f"CASE WHEN {count} > 0 THEN CAST(" in sql
    # stddev: clamped at 0, NULL below two values.
    assert "THEN SQRT(GREATEST(" in sql and ">= 2 THEN" in sql


def test_columns_needed_are_the_parts() -> None:
    assert columns_needed(TXNS, ["txn count_1d", "country_last_1d"]) == [
        "user id", "ts", "_tile_start", "_events", "country__last", "country__last_at"]
    plan = plan_training_set(REGISTRY, select_features(REGISTRY, features=["txns:amount_stddev_7d", "clicks:n_clicks"]))
    assert plan.columns_needed("txns") == ["user id", "ts", "_tile_start", "amount__n", "amount__sum", "amount__m2"]
    assert plan.columns_needed("clicks") == ["user id", "ts", "n_clicks"]


def test_stored_types_follow_the_parts() -> None:
    schema = pa.schema([("amount__sum", pa.int64()), ("amount__min", pa.int32()), ("country__last", pa.string())])
    assert stored_type(TXNS, "txn count_1h", schema) == pa.int64()
    assert stored_type(TXNS, "amount_sum_1d", schema) == pa.int64()
    assert stored_type(TXNS, "amount_min_1d", schema) == pa.int32()
    assert stored_type(TXNS, "amount_mean_7d", schema) == pa.float64()
    assert stored_type(TXNS, "country_last_1d", schema) == pa.string()


def test_mixed_with_batch_views_and_wildcards() -> None:
    sql = training_set_sql(features=["txns:*", "clicks:n_clicks"], registry=REGISTRY, dialect="duckdb")
    assert sql.count("ASOF LEFT JOIN") == 2
    assert 'LEFT JOIN "txns__values"' in sql and '"clicks"."n_clicks" AS "n_clicks"' in sql
    for aggregation in AGGREGATIONS:
        assert f'"txns__values"."{aggregation.name}" AS "{aggregation.name}"' in sql


def test_bucket_is_floor_of_microseconds() -> None:
    assert bucket_of(column("t"), 60).sql("duckdb") == 'CAST(FLOOR(EPOCH_US("t") / 60000000) AS BIGINT)'


def test_window_not_a_multiple_of_the_interval_is_refused() -> None:
    odd = FeatureView("odd", "aggregation", ("user",), ("user id",), "ts", None, None, False, "/d/odd",
                      (Feature("x_count_90m", "int64"),), aggregation_interval_seconds=HOUR,
                      aggregations=(Aggregation("x_count_90m", "count", "x", 5400),))
    with pytest.raises(TrainingSetError, match=r"window of 5400 s is not a positive multiple .* \(3600 s\)"):
        point_in_time_query(SpineSpec(), [ViewRequest(odd, "odd", (("x_count_90m", "x_count_90m"),))])
