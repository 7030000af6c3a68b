"""Aggregation tiles on Sail (aggregation_tiles_by_join): the join path and the window path give DuckDB's tiles.

The demo's small data has few event times per interval, so a default build takes the join for
nearly every interval (test_spark_offline_store compares it with DuckDB). Here the project variable
hindsight_tile_join_limit moves intervals to the window path: 0 sends all of them, 1 splits them
(one-time intervals joined, the others windowed), and every tile must still equal DuckDB's.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.delta_compare import assert_same_rows
from tests.integration.test_offline_store import KEYS

pytestmark = pytest.mark.integration

AGGREGATION_VIEWS = ("user_transaction_aggregates", "merchant_risk")


@pytest.mark.parametrize("limit", [0, 1])
def test_tiles_equal_duckdb_whichever_path_an_interval_takes(spark_project_copy, demo_project, limit):
    spark = spark_project_copy
    before = {view: spark.version(view) for view in AGGREGATION_VIEWS}
    spark.dbt("run", "--select", *AGGREGATION_VIEWS, "--full-refresh",
              "--vars", json.dumps({"hindsight_tile_join_limit": limit}))
    for view in AGGREGATION_VIEWS:
        assert spark.version(view) == before[view] + 1, view
        rows = spark.table(view).to_pandas()
        assert len(rows) > 1000, view
        assert_same_rows(rows, demo_project.table(view).to_pandas(), KEYS[view])
