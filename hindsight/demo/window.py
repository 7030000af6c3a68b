"""The simulated time window, in integer microseconds since the epoch (UTC), and time helpers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hindsight.demo.domain import LATE_SHARE

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR
WINDOW_DAYS = 180
NEVER = np.iinfo(np.int64).max

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_us(moment: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime.

    >>> to_us(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
    1000000
    """
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """The days covered: every event time is in [start_us, end_us)."""

    end: dt.date

    @property
    def end_us(self) -> int:
        return to_us(dt.datetime.combine(self.end, dt.time(), tzinfo=dt.UTC))

    @property
    def start_us(self) -> int:
        return self.end_us - WINDOW_DAYS * US_PER_DAY

    def day_start_us(self, day: int) -> int:
        """Start of the window's day number `day` (0 = the first)."""
        return self.start_us + day * US_PER_DAY

    def weekday(self, day: int) -> int:
        """Monday = 0 .. Sunday = 6 of the window's day number `day`."""
        return (self.end - dt.timedelta(days=WINDOW_DAYS - day)).weekday()


def uniform_times(
    rng: np.random.Generator, after_us: np.ndarray, before_us: int | np.ndarray
) -> np.ndarray:
    """Random microseconds strictly after `after_us` and strictly before `before_us`."""
    span = np.asarray(before_us) - after_us - 1
    return after_us + 1 + (rng.random(len(after_us)) * span).astype(np.int64)


def separate_equal_times(entity: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order rows by (ts, entity) and nudge an entity's equal timestamps apart by 1 us.

    Downstream window features order one entity's events by ts, so ties would make them
    ambiguous. Ties are rare at microsecond resolution, so the loop almost never repeats.

    Returns:
        (order, ts): the permutation to apply to the other columns, and the adjusted ts in
        that order.

    >>> order, ts = separate_equal_times(np.array([1, 1, 2]), np.array([5, 5, 5]))
    >>> order.tolist(), ts.tolist()
    ([0, 2, 1], [5, 5, 6])
    """
    order = np.arange(len(ts))
    ts = ts.copy()
    while True:
        step = np.lexsort((entity[order], ts))
        order, ts = order[step], ts[step]
        tie = (ts[1:] == ts[:-1]) & (entity[order][1:] == entity[order][:-1])
        if not tie.any():
            return order, ts
        ts[1:][tie] += 1


def arrival_delays(rng: np.random.Generator, n: int) -> np.ndarray:
    """How long after the event each row reaches the warehouse, in microseconds.

    Usually seconds to about 15 minutes; LATE_SHARE of rows are 1 to 48 hours late.
    """
    prompt = 1 + np.minimum(rng.exponential(90.0, size=n), 900.0)
    late = rng.random(n) < LATE_SHARE
    late_by = rng.uniform(1.0, 48.0, size=n) * 3_600
    return (np.where(late, late_by, prompt) * US_PER_SECOND).astype(np.int64)
