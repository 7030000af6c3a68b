"""Users and merchants: the columns of their raw tables and the hidden traits driving behaviour."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hindsight.demo.domain import (
    CATEGORY_NAMES,
    CATEGORY_P,
    CATEGORY_RISKY,
    COUNTRIES,
    COUNTRY_P,
    Scale,
    stream,
)
from hindsight.demo.raw_files import SCHEMAS, labels, timestamps
from hindsight.demo.window import US_PER_DAY, Window, uniform_times

#: Share of users who already had a card before the window; the rest sign up during it.
PRE_EXISTING_SHARE = 0.85
#: Share of merchants that knowingly or not process a lot of fraud.
BAD_MERCHANT_SHARE = 0.02


@dataclass(frozen=True)
class Users:
    """One entry per user, index i is user_id i + 1."""

    user_id: np.ndarray
    #: Index into COUNTRIES of the country at signup.
    home: np.ndarray
    signup_us: np.ndarray
    birth_year: np.ndarray
    #: Relative transaction rate; lognormal, so a few users are much more active.
    activity: np.ndarray
    #: Probability that a transaction happens abroad.
    travel: np.ndarray
    #: Where the user's history in the window starts: signup, or the window start if earlier.
    first_seen_us: np.ndarray


def make_users(scale: Scale, window: Window, seed: int) -> Users:
    """Simulate the users of a world."""
    rng = stream(seed, "users")
    n = scale.users
    home = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P).astype(np.int16)
    existing = rng.random(n) < PRE_EXISTING_SHARE
    before = window.start_us - (rng.random(n) * 5 * 365 * US_PER_DAY).astype(np.int64) - 1
    during = uniform_times(rng, np.full(n, window.start_us - 1), window.end_us)
    signup = np.where(existing, before, during)
    age = np.minimum(18 + rng.gamma(2.2, 11.0, size=n), 85).astype(np.int32)
    return Users(
        user_id=np.arange(1, n + 1, dtype=np.int64),
        home=home,
        signup_us=signup,
        birth_year=(window.end.year - age).astype(np.int32),
        activity=rng.lognormal(0.0, 1.1, size=n),
        travel=rng.beta(1.2, 25.0, size=n),
        first_seen_us=np.maximum(signup, window.start_us),
    )


@dataclass(frozen=True)
class Merchants:
    """One entry per merchant, index i is merchant_id i + 1."""

    merchant_id: np.ndarray
    #: Index into CATEGORIES.
    category: np.ndarray
    #: Index into COUNTRIES.
    country: np.ndarray
    created_us: np.ndarray
    #: Zipf-like share of its country's card traffic.
    popularity: np.ndarray
    #: Processes much more fraud than its category explains.
    bad: np.ndarray


def make_merchants(scale: Scale, window: Window, seed: int) -> Merchants:
    """Simulate the merchants of a world; every country gets at least one."""
    rng = stream(seed, "merchants")
    n = scale.merchants
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P).astype(np.int16)
    # The country-conditional sampler needs a merchant in every country a card can be used in.
    country[: len(COUNTRIES)] = np.arange(len(COUNTRIES))
    bad = rng.random(n) < BAD_MERCHANT_SHARE
    bad[rng.integers(n)] = True  # at least one, so small worlds have a bad merchant too
    return Merchants(
        merchant_id=np.arange(1, n + 1, dtype=np.int64),
        category=rng.choice(len(CATEGORY_P), size=n, p=CATEGORY_P).astype(np.int16),
        country=country,
        # All merchants predate the window, so no transaction precedes its merchant.
        created_us=window.start_us - (rng.random(n) * 6 * 365 * US_PER_DAY).astype(np.int64) - 1,
        popularity=rng.permutation(np.arange(1, n + 1)) ** -0.9,
        bad=bad,
    )


class MerchantPicker:
    """Draws a merchant in a given country, with probability proportional to a weight.

    Merchants are sorted by country and their cumulative weights normalised so that country k
    occupies the interval (k, k + 1]: one searchsorted then serves every country at once.
    """

    def __init__(self, country: np.ndarray, weight: np.ndarray) -> None:
        self._order = np.argsort(country, kind="stable")
        by_country = country[self._order].astype(np.int64)
        w = weight[self._order].astype(np.float64)
        total = np.cumsum(w)
        starts = np.searchsorted(by_country, np.arange(len(COUNTRIES)))
        self._ends = np.searchsorted(by_country, np.arange(len(COUNTRIES)), side="right")
        before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0.0)
        country_total = total[self._ends - 1] - before
        self._cum = by_country + (total - before[by_country]) / country_total[by_country]

    def pick(self, country: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Merchant indices for the given country indices and uniform draws in [0, 1)."""
        pos = np.searchsorted(self._cum, country + u, side="right")
        # Float rounding of k + u near k + 1 must not spill into the next country.
        return self._order[np.minimum(pos, self._ends[country] - 1)]


def everyday_picker(merchants: Merchants) -> MerchantPicker:
    """Where ordinary card holders shop: popularity alone."""
    return MerchantPicker(merchants.country, merchants.popularity)


def fraudster_picker(merchants: Merchants) -> MerchantPicker:
    """Where stolen cards are used: risky categories and bad merchants are much more likely."""
    risky = CATEGORY_RISKY[merchants.category]
    weight = merchants.popularity * np.where(risky, 8.0, 1.0) * np.where(merchants.bad, 20.0, 1.0)
    return MerchantPicker(merchants.country, weight)


def users_table(users: Users) -> pa.Table:
    """The raw `users` table: home_country is the country at signup (moves are in user_updates)."""
    return pa.Table.from_arrays(
        [
            pa.array(users.user_id),
            labels(COUNTRIES, users.home),
            timestamps(users.signup_us),
            pa.array(users.birth_year),
        ],
        schema=SCHEMAS["users"],
    )


def merchants_table(merchants: Merchants) -> pa.Table:
    """The raw `merchants` table."""
    return pa.Table.from_arrays(
        [
            pa.array(merchants.merchant_id),
            labels(CATEGORY_NAMES, merchants.category),
            labels(COUNTRIES, merchants.country),
            timestamps(merchants.created_us),
        ],
        schema=SCHEMAS["merchants"],
    )
