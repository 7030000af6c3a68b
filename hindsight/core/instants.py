"""One rule for reading a time value as an instant: naive means UTC, a date means its midnight UTC.

Event times come out of Delta tables as aware or naive datetimes, or as dates when a view's
timestamp_field is a DATE column; spines and CLI arguments may be either too. Everything that
compares them (freshness, parity, training-set bounds, drift periods) reads them through here.
"""

from __future__ import annotations

import datetime as dt


def utc_instant(value: dt.datetime | dt.date) -> dt.datetime:
    """`value` as an aware UTC datetime.

    >>> utc_instant(dt.date(2026, 3, 1))
    datetime.datetime(2026, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> utc_instant(dt.datetime(2026, 3, 1, 12))
    datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
    >>> utc_instant(dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    datetime.datetime(2026, 3, 1, 10, 0, tzinfo=datetime.timezone.utc)

    Raises:
        TypeError: `value` is neither a datetime nor a date.
    """
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.timezone.utc)
    raise TypeError(f"not a date or time: {value!r}")
