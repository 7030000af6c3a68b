"""Drift of one feature between a baseline sample and a served sample: PSI, KS, category shares.

PSI (population stability index) = sum over buckets of (served - baseline) * ln(served / baseline),
with shares of rows per bucket. Numeric features are bucketed at the baseline's deciles (each
bucket holds about a tenth of the baseline; ties merge buckets), categorical ones (strings,
booleans) one bucket per baseline category, `(new)` for categories the baseline never had and
`(other)` past the MAX_CATEGORIES most frequent. Missing values (null: NOT_FOUND, EXPIRED, no value
as of the event time) are a bucket of their own, so a feature that stops being found drifts too.
An empty bucket counts as a share of FLOOR so the logarithm stays finite. Rules of thumb: below
0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.

Numeric features also get the two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`: the
largest gap between the two empirical distribution functions, and its p-value).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Share given to an empty bucket (PSI's logarithm is undefined at 0).
FLOOR = 1e-4
#: Buckets of a numeric feature (deciles of the baseline).
NUMERIC_BUCKETS = 10
#: Categories kept as buckets; rarer baseline categories share `(other)`.
MAX_CATEGORIES = 30
MISSING = "(missing)"
NEW = "(new)"
OTHER = "(other)"


@dataclass(frozen=True)
class Bucket:
    """One PSI bucket: its label and the share of each sample's rows in it."""

    label: str
    baseline: float
    served: float

    @property
    def change(self) -> float:
        """Served share minus baseline share."""
        return self.served - self.baseline


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one feature."""

    name: str
    #: "numeric" or "categorical".
    kind: str
    psi: float
    buckets: tuple[Bucket, ...]
    baseline_rows: int
    served_rows: int
    #: Kolmogorov-Smirnov statistic and p-value (numeric features with values on both sides).
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    #: Non-missing values of each side (numeric features; for the report's plot).
    baseline_values: np.ndarray | None = field(default=None, repr=False, compare=False)
    served_values: np.ndarray | None = field(default=None, repr=False, compare=False)

    def bucket(self, label: str) -> Bucket | None:
        return next((b for b in self.buckets if b.label == label), None)


def psi(baseline: Sequence[float], served: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same buckets (shares floored at FLOOR).

    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.5, 0.5], [0.9, 0.1]), 4)
    0.8789
    """
    total = 0.0
    for b, s in zip(baseline, served):
        b, s = max(b, FLOOR), max(s, FLOOR)
        total += (s - b) * math.log(s / b)
    return total


def numeric_drift(name: str, baseline: Sequence[Any], served: Sequence[Any]) -> FeatureDrift:
    """PSI over the baseline's deciles (plus a missing bucket) and the KS test.

    >>> d = numeric_drift("x", list(range(100)), list(range(100)))
    >>> d.psi, d.ks_statistic, len(d.buckets)
    (0.0, 0.0, 11)
    """
    base_all, served_all = _floats(baseline), _floats(served)
    base, now = base_all[~np.isnan(base_all)], served_all[~np.isnan(served_all)]
    buckets: list[Bucket] = []
    if len(base):
        inner = np.unique(np.quantile(base, np.linspace(0, 1, NUMERIC_BUCKETS + 1)[1:-1]))
        base_counts = np.bincount(np.searchsorted(inner, base, side="right"), minlength=len(inner) + 1)
        served_counts = np.bincount(np.searchsorted(inner, now, side="right"), minlength=len(inner) + 1)
        bounds = [-math.inf, *inner.tolist(), math.inf]
        for i in range(len(inner) + 1):
            label = _range_label(bounds[i], bounds[i + 1])
            buckets.append(Bucket(label, _share(base_counts[i], len(base_all)), _share(served_counts[i], len(served_all))))
    elif len(now):
        buckets.append(Bucket("(any value)", 0.0, len(now) / len(served_all)))
    buckets.append(Bucket(MISSING, _share(len(base_all) - len(base), len(base_all)),
                          _share(len(served_all) - len(now), len(served_all))))
    statistic = pvalue = None
    if len(base) and len(now):
        from scipy.stats import ks_2samp

        result = ks_2samp(base, now)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    return FeatureDrift(name, "numeric", _psi_of(buckets), tuple(buckets), len(base_all), len(served_all),
                        statistic, pvalue, base, now)


def categorical_drift(name: str, baseline: Sequence[Any], served: Sequence[Any]) -> FeatureDrift:
    """PSI over category shares (plus `(new)`, `(other)` and missing buckets).

    >>> d = categorical_drift("c", ["a", "a", "b", None], ["a", "b", "b", "z"])
    >>> [(b.label, b.baseline, b.served) for b in d.buckets]
    [('a', 0.5, 0.25), ('b', 0.25, 0.5), ('(new)', 0.0, 0.25), ('(missing)', 0.25, 0.0)]
    """
    base_labels = [_category(v) for v in baseline]
    served_labels = [_category(v) for v in served]
    base_counts = Counter(base_labels)
    served_counts = Counter(served_labels)
    known = [c for c, _ in base_counts.most_common() if c is not None]
    kept = known[:MAX_CATEGORIES]
    rare = set(known[MAX_CATEGORIES:])
    buckets = [Bucket(c, _share(base_counts[c], len(base_labels)), _share(served_counts[c], len(served_labels)))
               for c in kept]
    if rare:
        buckets.append(Bucket(OTHER, _share(sum(base_counts[c] for c in rare), len(base_labels)),
                              _share(sum(served_counts[c] for c in rare), len(served_labels))))
    new = sum(n for c, n in served_counts.items() if c is not None and c not in base_counts)
    if new:
        buckets.append(Bucket(NEW, 0.0, _share(new, len(served_labels))))
    buckets.append(Bucket(MISSING, _share(base_counts[None], len(base_labels)),
                          _share(served_counts[None], len(served_labels))))
    return FeatureDrift(name, "categorical", _psi_of(buckets), tuple(buckets), len(base_labels), len(served_labels))


def _psi_of(buckets: list[Bucket]) -> float:
    return psi([b.baseline for b in buckets], [b.served for b in buckets])


def _share(count: int, total: int) -> float:
    return float(count) / total if total else 0.0


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Values as floats, NaN for missing ones (and for anything that is not a number)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype(float)
    out = np.empty(len(values), dtype=float)
    for i, v in enumerate(values):
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        out[i] = float(v) if ok else math.nan
    return out


def _category(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def _range_label(low: float, high: float) -> str:
    """
    >>> _range_label(-math.inf, 2.5), _range_label(2.5, 10.0), _range_label(10.0, math.inf)
    ('< 2.5', '[2.5, 10)', '>= 10')
    """
    if math.isinf(low):
        return f"< {high:.4g}"
    if math.isinf(high):
        return f">= {low:.4g}"
    return f"[{low:.4g}, {high:.4g})"
