"""Comparing a baseline training set with a served sample, feature by feature, ranked by drift."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from hindsight.drift.served import DriftError, ServedSample, read_served
from hindsight.drift.stats import FeatureDrift, categorical_drift, numeric_drift

#: PSI above which a feature counts as drifted (0.1-0.25 is read as a moderate shift, above 0.25 major).
DEFAULT_THRESHOLD = 0.2


@dataclass(frozen=True)
class DriftResult:
    """Per-feature drift of one service, most drifted first."""

    service: str
    #: Where the baseline came from (a file name), for the report.
    baseline: str
    baseline_rows: int
    served: ServedSample
    threshold: float
    #: Ranked by PSI, then KS statistic, highest first.
    features: tuple[FeatureDrift, ...]
    #: Served features the baseline has no column for (not compared).
    not_in_baseline: tuple[str, ...] = ()
    #: Features whose baseline type cannot be compared (name, Arrow type).
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def breached(self) -> tuple[FeatureDrift, ...]:
        """The features whose PSI is above the threshold."""
        return tuple(f for f in self.features if f.psi > self.threshold)


def compare(baseline: pa.Table, served: ServedSample, service: str, threshold: float = DEFAULT_THRESHOLD,
            baseline_name: str = "baseline") -> DriftResult:
    """Drift of every served feature the baseline has a column for.

    Raises:
        DriftError: the baseline has none of the served features.
    """
    names = [n for n in served.features if n in baseline.column_names]
    missing = tuple(n for n in served.features if n not in baseline.column_names)
    if not names:
        raise DriftError(
            f"{baseline_name} has none of the features served for {service!r} ({', '.join(sorted(served.features))}); "
            f"its columns are {', '.join(baseline.column_names)}: build it with "
            f"`hindsight training-set --service {service} --spine ... --out ...`"
        )
    results: list[FeatureDrift] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        column = baseline.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            results.append(numeric_drift(name, values, served.features[name]))
        elif pa.types.is_boolean(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind) \
                or pa.types.is_dictionary(kind):
            results.append(categorical_drift(name, column.to_pylist(), served.features[name]))
        else:
            skipped.append((name, str(kind)))
    results.sort(key=lambda f: (f.psi, f.ks_statistic or 0.0), reverse=True)
    return DriftResult(service, baseline_name, baseline.num_rows, served, threshold, tuple(results), missing,
                       tuple(skipped))


def drift(baseline_path: str | Path, log_uri: str, service: str, since: dt.datetime | None = None,
          until: dt.datetime | None = None, threshold: float = DEFAULT_THRESHOLD) -> DriftResult:
    """Drift of `service`'s served features (logged at `log_uri`) against a training set file.

    Raises:
        DriftError: the baseline cannot be read or shares no feature with the log, or nothing was
            logged for the service in the period.
    """
    import pyarrow.parquet as pq

    try:
        baseline = pq.read_table(baseline_path)
    except (OSError, pa.ArrowException) as error:
        raise DriftError(f"cannot read the baseline {baseline_path}: {error}") from None
    served = read_served(log_uri, service, since, until)
    return compare(baseline, served, service, threshold, Path(baseline_path).name)
