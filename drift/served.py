"""Reading back the served-features log (`hindsight.serving.sampling`) for one service and period."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from hindsight.core.instants import utc_instant
from hindsight.serving.sampling import AD_HOC, LOG_SCHEMA


class DriftError(ValueError):
    """Drift cannot be computed: no log, no rows, a baseline without the features; the message says why."""


@dataclass(frozen=True)
class ServedSample:
    """The logged feature vectors of one service."""

    #: Response column -> the values served, one per logged row (None where missing).
    features: dict[str, list[Any]]
    rows: int
    #: Registry versions that served them.
    registry_versions: tuple[int, ...]
    first: dt.datetime | None
    last: dt.datetime | None


def read_served(uri: str, service: str, since: dt.datetime | None = None, until: dt.datetime | None = None) -> ServedSample:
    """The rows logged for `service` with `since <= request_time < until`.

    Raises:
        DriftError: there is no log at `uri`, or it holds no rows for the service in the period
            (naming the services it does hold).
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from hindsight.offline_store.tables import open_table
    from deltalake.exceptions import TableNotFoundError

    try:
        table = open_table(uri)
    except TableNotFoundError:
        raise DriftError(
            f"no served-features log at {uri}: `hindsight serve` writes one when serving.sample_rate is above 0 "
            "(hindsight.yml), after its first sampled request"
        ) from None
    dataset = table.to_pyarrow_dataset()
    stamp = LOG_SCHEMA.field("request_time").type
    condition = ds.field("service") == service
    if since is not None:
        condition &= ds.field("request_time") >= ds.scalar(utc_instant(since)).cast(stamp)
    if until is not None:
        condition &= ds.field("request_time") < ds.scalar(utc_instant(until)).cast(stamp)
    rows = dataset.to_table(columns=["request_time", "registry_version", "features"], filter=condition)
    if rows.num_rows == 0:
        services = sorted(set(dataset.to_table(columns=["service"]).column("service").unique().to_pylist()))
        period = _period(since, until)
        from hindsight.core.suggest import did_you_mean

        held = ", ".join(s if s != AD_HOC else f"{AD_HOC} (ad-hoc feature lists)" for s in services) or "none"
        raise DriftError(f"the served-features log at {uri} has no rows for service {service!r}{period}"
                         f"{did_you_mean(service, services, quote=True)}; services logged: {held}")
    features: dict[str, list[Any]] = {}
    for index, text in enumerate(rows.column("features").to_pylist()):
        for name, value in json.loads(text).items():
            # A feature the service gained later: missing in the rows logged before it.
            features.setdefault(name, [None] * index).append(value)
        for column in features.values():
            if len(column) <= index:
                column.append(None)
    versions = rows.column("registry_version").drop_null().unique().to_pylist()
    times = rows.column("request_time")
    return ServedSample(features, rows.num_rows, tuple(sorted(versions)), pc.min(times).as_py(), pc.max(times).as_py())


def _period(since: dt.datetime | None, until: dt.datetime | None) -> str:
    parts = ([f"since {since.isoformat()}"] if since else []) + ([f"before {until.isoformat()}"] if until else [])
    return " " + " and ".join(parts) if parts else ""
