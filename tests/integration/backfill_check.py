"""The backfill scenario both engines must pass: history changes, one day is backfilled, only that
day may reflect it."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.integration.delta_compare import assert_same_rows

START, END = "2026-09-10", "2026-09-11"


def backfill_one_day_after_doubling_amounts(project, view: str, keys: list[str]) -> None:
    """Double every raw amount, backfill [START, END), and check exactly that range changed."""
    before = project.table(view).to_pandas()
    transactions_dir = project.settings.raw_data_dir / "transactions"
    table = ds.dataset(transactions_dir, format="parquet").to_table()
    doubled = table.set_column(table.schema.get_field_index("amount"), "amount", pc.multiply(table["amount"], 2.0))
    for part in transactions_dir.glob("*.parquet"):
        part.unlink()
    pq.write_table(doubled, transactions_dir / "part-00000.parquet")

    project.dbt("run", "--select", view, "--vars", json.dumps({"backfill_start": START, "backfill_end": END}))

    after = project.table(view).to_pandas()
    start, end = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    inside = lambda f: f[(f["event_timestamp"] >= start) & (f["event_timestamp"] < end)]  # noqa: E731
    outside = lambda f: f[(f["event_timestamp"] < start) | (f["event_timestamp"] >= end)]  # noqa: E731
    assert_same_rows(outside(after), outside(before), keys)
    assert len(inside(after)) == len(inside(before)) > 0
    # `view` is an aggregation view: its tiles' amount sums double, and nothing outside the range moves.
    assert inside(after)["amount__sum"].sum() == pytest.approx(2 * inside(before)["amount__sum"].sum())
