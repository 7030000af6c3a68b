"""Drift: how the feature values a service serves moved away from those it was trained on.

Owns `hindsight drift`'s computation and report: per feature, PSI (every feature), the two-sample
Kolmogorov-Smirnov test (numeric features) and category share changes (strings, booleans) between
a baseline (a training set Parquet file written by `hindsight training-set --out`) and the feature
vectors `hindsight serve` sampled to its served-features log (`hindsight.serving.sampling`), then a
self-contained HTML report with a plot per feature, ranked by drift.

Reads the baseline file and the log's Delta table; writes only the report it is asked for.
"""

from hindsight.drift.compare import DEFAULT_THRESHOLD, DriftResult, compare, drift
from hindsight.drift.served import DriftError, ServedSample, read_served
from hindsight.drift.stats import Bucket, FeatureDrift, categorical_drift, numeric_drift, psi

__all__ = [
    "DEFAULT_THRESHOLD",
    "Bucket",
    "DriftError",
    "DriftResult",
    "FeatureDrift",
    "ServedSample",
    "categorical_drift",
    "compare",
    "drift",
    "numeric_drift",
    "psi",
    "read_served",
]
