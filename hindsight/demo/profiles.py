"""The slowly changing user profile (raw `user_updates`) and where each user lives when.

Each row is a full snapshot of the profile as of `updated_at`: one at signup (or at the window
start for users who signed up earlier), then random changes: credit limit changes, tier upgrades
(which also raise the limit) and, for a few users, one move of home country.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hindsight.demo.domain import (
    CORRECTION_SHARE,
    COUNTRIES,
    TIER_BASE_LIMIT,
    TIER_P,
    TIERS,
    stream,
)
from hindsight.demo.entities import Users
from hindsight.demo.raw_files import SCHEMAS, labels, timestamps
from hindsight.demo.window import (
    NEVER,
    US_PER_DAY,
    Window,
    arrival_delays,
    separate_equal_times,
    uniform_times,
)

#: Mean number of limit changes and upgrades per user over the window.
CHANGES_PER_USER = 0.9
UPGRADE_SHARE = 0.35
MOVER_SHARE = 0.03
#: How a credit limit change scales the limit, and how often each happens.
LIMIT_FACTORS = np.array([0.75, 1.25, 1.5, 2.0])
LIMIT_FACTOR_P = np.array([0.15, 0.45, 0.25, 0.15])

_INITIAL, _LIMIT, _UPGRADE, _MOVE = 0, 1, 2, 3


@dataclass(frozen=True)
class Residence:
    """Each user's home country over time: at most one move, at `moved_us`."""

    home: np.ndarray
    moved_us: np.ndarray
    new_home: np.ndarray

    def home_at(self, user_index: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
        """The home country index of each (user index, time) pair."""
        moved = ts_us >= self.moved_us[user_index]
        return np.where(moved, self.new_home[user_index], self.home[user_index])


@dataclass(frozen=True)
class _Rows:
    """Profile events before their state is accumulated."""

    user: np.ndarray
    ts: np.ndarray
    kind: np.ndarray


def make_profiles(users: Users, window: Window, seed: int) -> tuple[pa.Table, Residence]:
    """Simulate the user_updates table and the residence history transactions must agree with."""
    rng = stream(seed, "user_updates")
    n = len(users.user_id)
    first_tier = rng.choice(len(TIERS), size=n, p=TIER_P)
    first_limit = np.round(TIER_BASE_LIMIT[first_tier] * rng.lognormal(0.0, 0.35, size=n), -2)
    rows, residence = _profile_events(rng, users, window)
    order, ts = separate_equal_times(rows.user, rows.ts)
    user, kind = rows.user[order], rows.kind[order]
    # Moves may have been nudged apart from a same-microsecond change: take their final times.
    moved_us = residence.moved_us.copy()
    moved_us[user[kind == _MOVE]] = ts[kind == _MOVE]
    residence = Residence(residence.home, moved_us, residence.new_home)

    by_user = np.lexsort((ts, user))  # each user's rows in time order, the initial one first
    limit = np.empty(len(ts))
    tier = np.empty(len(ts), dtype=np.int64)
    limit[by_user], tier[by_user] = _accumulate_state(
        rng, user[by_user], kind[by_user], first_tier, first_limit
    )
    loaded = ts + _update_delays(rng, kind)
    table = pa.Table.from_arrays(
        [
            pa.array(users.user_id[user]),
            labels(COUNTRIES, residence.home_at(user, ts)),
            pa.array(limit),
            labels(TIERS, tier),
            timestamps(ts),
            timestamps(loaded),
        ],
        schema=SCHEMAS["user_updates"],
    )
    return table, residence


def _profile_events(
    rng: np.random.Generator, users: Users, window: Window
) -> tuple[_Rows, Residence]:
    n = len(users.user_id)
    start = users.first_seen_us
    changes = np.repeat(np.arange(n), rng.poisson(CHANGES_PER_USER, size=n))
    change_ts = uniform_times(rng, start[changes], window.end_us)
    change_kind = np.where(rng.random(len(changes)) < UPGRADE_SHARE, _UPGRADE, _LIMIT)
    movers = np.flatnonzero(rng.random(n) < MOVER_SHARE)
    move_ts = uniform_times(rng, start[movers], window.end_us)
    new_home = users.home.copy()
    shift = rng.integers(1, len(COUNTRIES), size=len(movers))
    new_home[movers] = (users.home[movers] + shift) % len(COUNTRIES)
    moved_us = np.full(n, NEVER, dtype=np.int64)
    moved_us[movers] = move_ts
    rows = _Rows(
        user=np.concatenate([np.arange(n), changes, movers]),
        ts=np.concatenate([start, change_ts, move_ts]),
        kind=np.concatenate([np.full(n, _INITIAL), change_kind, np.full(len(movers), _MOVE)]),
    )
    return rows, Residence(users.home, moved_us, new_home)


def _accumulate_state(
    rng: np.random.Generator,
    user: np.ndarray,
    kind: np.ndarray,
    first_tier: np.ndarray,
    first_limit: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Credit limit and tier after each event; rows grouped by user, in time order."""
    factor = LIMIT_FACTORS[rng.choice(len(LIMIT_FACTORS), size=len(kind), p=LIMIT_FACTOR_P)]
    log_step = np.select(
        [kind == _INITIAL, kind == _LIMIT, kind == _UPGRADE],
        [np.log(first_limit[user]), np.log(factor), np.log(2.0)],
        default=0.0,
    )
    limit = np.round(np.exp(_cumsum_within(log_step, user)), -2)
    upgrades = _cumsum_within((kind == _UPGRADE).astype(np.int64), user)
    tier = np.minimum(first_tier[user] + upgrades, len(TIERS) - 1)
    return limit, tier


def _cumsum_within(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running sums that restart at each new value of the (sorted) `group`."""
    total = np.cumsum(values)
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(values)), 0))
    return total - (total - values)[first]


def _update_delays(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Arrival delays; some changes are late corrections, loaded 1 to 10 days afterwards."""
    delays = arrival_delays(rng, len(kind))
    correction = (kind != _INITIAL) & (rng.random(len(kind)) < CORRECTION_SHARE)
    late_by = (rng.uniform(1.0, 10.0, size=len(kind)) * US_PER_DAY).astype(np.int64)
    return np.where(correction, late_by, delays)
