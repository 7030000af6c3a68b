"""Card transactions, simulated one day at a time so memory stays flat at any scale.

Organic spending is a Poisson process per user whose intensity follows a daily cycle and the day
of the week, scaled by a lognormal activity. Fraud is either organic (a logistic model: large
amounts, abroad, risky categories and bad merchants raise the odds) or a burst on a compromised
card: several transactions within hours, mostly abroad, at merchants fraudsters favour.
Transactions are numbered in time order across the whole window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hindsight.demo.domain import (
    BURST_SHARE,
    CATEGORY_LOG_MEDIAN,
    CATEGORY_RISKY,
    CATEGORY_SIGMA,
    COUNTRIES,
    COUNTRY_P,
    HOUR_P,
    ORGANIC_FRAUD_RATE,
    WEEKDAY_FACTOR,
    Scale,
    stream,
)
from hindsight.demo.entities import (
    MerchantPicker,
    Merchants,
    Users,
    everyday_picker,
    fraudster_picker,
)
from hindsight.demo.profiles import Residence
from hindsight.demo.raw_files import SCHEMAS, labels, timestamps
from hindsight.demo.window import (
    US_PER_DAY,
    US_PER_HOUR,
    WINDOW_DAYS,
    Window,
    arrival_delays,
    separate_equal_times,
)

#: Log-odds of organic fraud for a typical domestic purchase at an ordinary merchant, and how
#: each risk factor moves them. The intercept was measured on a 1M-transaction world so that
#: organic fraud lands near ORGANIC_FRAUD_RATE (the unit tests check the overall band).
FRAUD_INTERCEPT = np.log(ORGANIC_FRAUD_RATE) - 0.98
FRAUD_PER_AMOUNT_SIGMA = 0.9
FRAUD_ABROAD = 1.6
FRAUD_RISKY = 1.3
FRAUD_BAD_MERCHANT = 3.0
#: Compromised cards: transactions per burst, minutes between them, share abroad, amount boost.
BURST_SIZE = (2, 10)
BURST_GAP_MINUTES = 20.0
BURST_ABROAD_SHARE = 0.7
BURST_AMOUNT_BOOST = 1.6


@dataclass(frozen=True)
class _Bursts:
    """Every fraud-burst transaction of the window, sorted by time."""

    user: np.ndarray
    ts: np.ndarray
    #: Where the stolen card is used: a country index, or -1 for the card holder's home.
    country: np.ndarray


@dataclass(frozen=True)
class _Day:
    """One day's transactions before their details are drawn, in (ts, user) order."""

    user: np.ndarray
    ts: np.ndarray
    burst: np.ndarray
    #: Country of a burst transaction (-1: at home); -1 for organic ones.
    burst_country: np.ndarray


def transaction_batches(
    users: Users,
    merchants: Merchants,
    residence: Residence,
    window: Window,
    scale: Scale,
    seed: int,
) -> Iterator[pa.Table]:
    """The window's transactions, one Arrow table per day, in time order."""
    bursts = _make_bursts(users, residence, window, scale, seed)
    day_factor = _day_factors(window)
    rate = _user_daily_rates(users, window, day_factor, scale.transactions - len(bursts.ts))
    pickers = (everyday_picker(merchants), fraudster_picker(merchants))
    next_id = 1
    for day in range(WINDOW_DAYS):
        rng = stream(seed, "transactions", day)
        events = _day_events(rng, users, rate * day_factor[day], bursts, window, day)
        table = _transactions(rng, events, users, merchants, residence, pickers, next_id)
        next_id += table.num_rows
        yield table


def _day_factors(window: Window) -> np.ndarray:
    """Relative activity of each day: the weekday pattern and 10% growth over the window."""
    weekday = WEEKDAY_FACTOR[[window.weekday(d) for d in range(WINDOW_DAYS)]]
    return weekday * (1.0 + 0.1 * np.arange(WINDOW_DAYS) / WINDOW_DAYS)


def _user_daily_rates(
    users: Users, window: Window, day_factor: np.ndarray, expected: int
) -> np.ndarray:
    """Each user's expected transactions per unit day factor, so the window totals `expected`."""
    first_day = (users.first_seen_us - window.start_us) // US_PER_DAY
    exposure = np.r_[np.cumsum(day_factor[::-1])[::-1], 0.0][first_day]
    return users.activity * max(expected, 0) / float(np.sum(users.activity * exposure))


def _make_bursts(
    users: Users, residence: Residence, window: Window, scale: Scale, seed: int
) -> _Bursts:
    """Stolen cards: each used a few times within hours, most often in one foreign country."""
    rng = stream(seed, "bursts")
    mean_size = sum(BURST_SIZE) / 2
    cards = max(1, round(scale.transactions * BURST_SHARE / mean_size))
    victim = rng.choice(len(users.user_id), size=min(cards, len(users.user_id)), replace=False)
    start = users.first_seen_us[victim]
    compromised = start + (rng.random(len(victim)) * (window.end_us - start)).astype(np.int64)
    size = rng.integers(BURST_SIZE[0], BURST_SIZE[1] + 1, size=len(victim))
    abroad = rng.random(len(victim)) < BURST_ABROAD_SHARE
    destination = _foreign_country(rng, residence.home_at(victim, compromised))
    country = np.repeat(np.where(abroad, destination, -1), size)
    user = np.repeat(victim, size)
    gaps = (rng.exponential(BURST_GAP_MINUTES * 60e6, size=len(user))).astype(np.int64) + 1
    ts = np.repeat(compromised, size) + _cumsum_per_burst(gaps, size)
    keep = ts < window.end_us
    order = np.argsort(ts[keep], kind="stable")
    return _Bursts(user[keep][order], ts[keep][order], country[keep][order])


def _cumsum_per_burst(gaps: np.ndarray, size: np.ndarray) -> np.ndarray:
    total = np.cumsum(gaps)
    before_burst = np.repeat(np.r_[0, total[np.cumsum(size)[:-1] - 1]], size)
    return total - before_burst


def _day_events(
    rng: np.random.Generator,
    users: Users,
    rate: np.ndarray,
    bursts: _Bursts,
    window: Window,
    day: int,
) -> _Day:
    """One day's organic events plus the bursts falling in it; a user's ties split apart."""
    day_start = window.day_start_us(day)
    active = np.flatnonzero(users.signup_us < day_start + US_PER_DAY)
    user = np.repeat(active, rng.poisson(rate[active]))
    hour = rng.choice(24, size=len(user), p=HOUR_P)
    ts = day_start + hour * US_PER_HOUR + (rng.random(len(user)) * US_PER_HOUR).astype(np.int64)
    after_signup = ts > users.signup_us[user]
    user, ts = user[after_signup], ts[after_signup]
    lo, hi = np.searchsorted(bursts.ts, [day_start, day_start + US_PER_DAY])
    user = np.concatenate([user, bursts.user[lo:hi]])
    ts = np.concatenate([ts, bursts.ts[lo:hi]])
    organic = len(user) - (hi - lo)
    burst = np.r_[np.zeros(organic, dtype=bool), np.ones(hi - lo, dtype=bool)]
    burst_country = np.r_[np.full(organic, -1), bursts.country[lo:hi]]
    order, ts = separate_equal_times(user, ts)
    return _Day(user[order], ts, burst[order], burst_country[order])


def _transactions(
    rng: np.random.Generator,
    day: _Day,
    users: Users,
    merchants: Merchants,
    residence: Residence,
    pickers: tuple[MerchantPicker, MerchantPicker],
    first_id: int,
) -> pa.Table:
    n = len(day.ts)
    home = residence.home_at(day.user, day.ts)
    travelling = rng.random(n) < users.travel[day.user]
    country = np.where(travelling, _foreign_country(rng, home), home)
    stolen_card_country = np.where(day.burst_country >= 0, day.burst_country, home)
    country = np.where(day.burst, stolen_card_country, country)
    abroad = country != home
    u = rng.random(n)
    merchant = np.where(day.burst, pickers[1].pick(country, u), pickers[0].pick(country, u))
    category = merchants.category[merchant]
    z = rng.standard_normal(n)
    amount = np.exp(CATEGORY_LOG_MEDIAN[category] + CATEGORY_SIGMA[category] * z)
    amount = np.maximum(np.round(amount * np.where(day.burst, BURST_AMOUNT_BOOST, 1.0), 2), 0.5)
    log_odds = (
        FRAUD_INTERCEPT
        + FRAUD_PER_AMOUNT_SIGMA * z
        + FRAUD_ABROAD * abroad
        + FRAUD_RISKY * CATEGORY_RISKY[category]
        + FRAUD_BAD_MERCHANT * merchants.bad[merchant]
    )
    fraud = day.burst | (rng.random(n) < 1.0 / (1.0 + np.exp(-log_odds)))
    return pa.Table.from_arrays(
        [
            pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
            pa.array(users.user_id[day.user]),
            pa.array(merchants.merchant_id[merchant]),
            pa.array(amount),
            labels(COUNTRIES, country),
            timestamps(day.ts),
            pa.array(fraud),
            timestamps(day.ts + arrival_delays(rng, n)),
        ],
        schema=SCHEMAS["transactions"],
    )


def _foreign_country(rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
    """A destination other than home, popular countries more likely."""
    country = rng.choice(len(COUNTRIES), size=len(home), p=COUNTRY_P)
    same = country == home
    shift = rng.integers(1, len(COUNTRIES), size=len(home))
    return np.where(same, (home + shift) % len(COUNTRIES), country)
