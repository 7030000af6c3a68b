"""The partition column derived from the event time, for feature views that set no `partition_by`.

The materialization chooses its grain when it builds a table in full
(macros/materializations/feature_view/derived_partition.sql says how, and why); the column's name
says which it is, so every later writer and reader learns the grain from the table itself:
push and stream writes derive the same values here, and the registry leaves the column out of the
features. tests/cases/derived_partition.yml holds the cases the two sides share.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

#: Derived partition column -> its grain (the Jinja twin: derived_partition_grains()).
GRAINS = {"_partition_date": "day", "_partition_month": "month"}
#: The derived partition assumed where no table says otherwise (the registry without a schema).
DEFAULT = "_partition_date"


def derived_partition_in(columns: Iterable[str]) -> str | None:
    """The derived partition column among a table's columns, if it has one.

    >>> derived_partition_in(["user_id", "ts", "_partition_month"])
    '_partition_month'
    >>> derived_partition_in(["user_id", "ts"]) is None
    True
    """
    return next((c for c in columns if c in GRAINS), None)


def partition_values(column: str, timestamps: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The partition values (date32) of `column` for UTC timestamps (or dates), as the materialization's SQL derives them.

    >>> import datetime as dt
    >>> moment = dt.datetime(2026, 10, 17, 23, 59, tzinfo=dt.timezone.utc)
    >>> partition_values("_partition_month", pa.array([moment])).to_pylist()
    [datetime.date(2026, 10, 1)]
    """
    days = pc.cast(timestamps.cast(pa.timestamp("us", tz="UTC")), pa.date32())
    if GRAINS[column] == "day":
        return days
    return pc.floor_temporal(days, unit="month")
