"""The no-silent-loss rules on Spark (Sail): the same scenarios as on DuckDB (test_no_silent_loss.py),
run by dbt-spark against the Spark-built demo project."""

from __future__ import annotations

import pytest

from tests.integration import test_no_silent_loss as scenarios

pytestmark = pytest.mark.integration


def test_a_future_row_no_longer_hides_later_rows_from_incremental_runs(spark_project_copy):
    scenarios.test_a_future_row_no_longer_hides_later_rows_from_incremental_runs(spark_project_copy)


def test_a_null_key_fails_an_incremental_window_run_as_it_fails_a_full_refresh(spark_project_copy):
    scenarios.test_a_null_key_fails_an_incremental_window_run_as_it_fails_a_full_refresh(spark_project_copy)


def test_a_full_refresh_that_would_empty_the_table_is_refused_unless_allowed(spark_project_copy):
    scenarios.test_a_full_refresh_that_would_empty_the_table_is_refused_unless_allowed(spark_project_copy)
