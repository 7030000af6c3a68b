"""Constants of the simulated card-fraud world, the scales, and its seeded random streams."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

DEFAULT_SEED = 7

#: Home countries and how many users live in each (ISO 3166 alpha-2).
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "MX", "IN", "JP")
COUNTRY_P = np.array([0.30, 0.12, 0.10, 0.09, 0.07, 0.06, 0.05, 0.06, 0.05, 0.04, 0.03, 0.03])


@dataclass(frozen=True)
class Category:
    """A merchant category and how its ticket sizes are distributed."""

    name: str
    #: Share of merchants in this category.
    weight: float
    #: Median amount; amounts are lognormal around it.
    median: float
    #: Lognormal sigma of the amount.
    sigma: float
    #: Fraudsters favour it (cash-like goods, easy resale).
    risky: bool = False


CATEGORIES = (
    Category("grocery", 0.22, 35.0, 0.6),
    Category("restaurants", 0.16, 28.0, 0.55),
    Category("fuel", 0.10, 45.0, 0.35),
    Category("transport", 0.08, 15.0, 0.7),
    Category("retail", 0.12, 60.0, 0.8),
    Category("electronics", 0.05, 180.0, 0.9),
    Category("travel", 0.04, 350.0, 0.8),
    Category("entertainment", 0.06, 25.0, 0.6),
    Category("pharmacy", 0.05, 20.0, 0.6),
    Category("utilities", 0.04, 90.0, 0.4),
    Category("online_gaming", 0.03, 20.0, 1.0, risky=True),
    Category("gift_cards", 0.02, 75.0, 0.7, risky=True),
    Category("jewelry", 0.015, 300.0, 1.0, risky=True),
    Category("crypto_exchange", 0.015, 250.0, 1.2, risky=True),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
CATEGORY_P = np.array([c.weight for c in CATEGORIES])
CATEGORY_LOG_MEDIAN = np.log([c.median for c in CATEGORIES])
CATEGORY_SIGMA = np.array([c.sigma for c in CATEGORIES])
CATEGORY_RISKY = np.array([c.risky for c in CATEGORIES])

#: Account tiers, lowest first, with the share of new accounts and their typical credit limit.
TIERS = ("standard", "gold", "platinum")
TIER_P = np.array([0.75, 0.20, 0.05])
TIER_BASE_LIMIT = np.array([2_000.0, 8_000.0, 20_000.0])

#: Relative card activity per UTC hour: quiet nights, a lunch peak and an evening peak.
HOUR_WEIGHTS = np.array([
    0.15, 0.10, 0.08, 0.07, 0.08, 0.15, 0.35, 0.60, 0.85, 0.95, 1.00, 1.10,
    1.25, 1.15, 1.00, 1.00, 1.05, 1.15, 1.30, 1.35, 1.20, 0.90, 0.60, 0.30,
])  # fmt: skip
HOUR_P = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
#: Relative activity Monday..Sunday.
WEEKDAY_FACTOR = np.array([0.95, 0.93, 0.97, 1.00, 1.12, 1.15, 0.88])

#: Share of transactions that are organic fraud (the logistic model is calibrated near it) and
#: that belong to bursts on compromised cards; together about 1%.
ORGANIC_FRAUD_RATE = 0.006
BURST_SHARE = 0.004
#: Share of transactions and profile updates that reach the warehouse 1 to 48 hours late.
LATE_SHARE = 0.02
#: Share of profile changes that are late corrections, loaded 1 to 10 days after the fact.
CORRECTION_SHARE = 0.08


@dataclass(frozen=True)
class Scale:
    """How big a generated world is."""

    name: str
    users: int
    merchants: int
    #: Expected transactions over the window (the realised count varies by a few percent).
    transactions: int
    #: Rows per Parquet row group of the transactions file; bounds the writer's memory.
    row_group_size: int


SCALES = {
    "small": Scale(
        "small", users=1_000, merchants=100, transactions=30_000, row_group_size=250_000
    ),
    "medium": Scale(
        "medium", users=200_000, merchants=10_000, transactions=10_000_000, row_group_size=1_000_000
    ),
}


def stream(seed: int, *key: int | str) -> np.random.Generator:
    """An independent random stream for one part of the world, so parts never shift each other.

    >>> float(stream(7, "users").random()) == float(stream(7, "users").random())
    True
    >>> float(stream(7, "users").random()) == float(stream(7, "merchants").random())
    False
    """
    words = tuple(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=words))
