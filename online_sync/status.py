"""Freshness and operations of every feature view, from the pipeline's records, not from requests.

`collect_status` reads, per feature view of a registry: its Delta table's log (newest event time
from the add actions' statistics, last commit, version: `offline_store.freshness`) and, for online
views, the sync state item in its DynamoDB table (`online_sync.state`: version synced, when, the
newest event time synced, running totals, the last failure). It compares them with the view's
expected freshness (`expected_freshness`, registry) and lists each breach with the figure and the
fix. `hindsight status` prints the report; the serving API's /metrics exports the same figures.

Figures, per view (UTC; ages and lags in seconds at `checked_at`):
- offline: newest event time and its age, Delta version, last commit (time, dbt invocation, mode);
- online: newest event time synced and its age, the Delta version synced, when the last sync
  succeeded, versions behind and the sync lag: how long the oldest commit not yet synced has waited
  (0 when the online store holds the latest version).
Pushed rows (`hindsight push`) are not in these figures: only what sync wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from hindsight.core.durations import format_duration
from hindsight.offline_store.freshness import commit_time, last_commit, newest_event
from hindsight.offline_store.tables import open_table
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable
from hindsight.online_sync.state import SyncRecord, read_record
from hindsight.registry_sync.model import FeatureView, Registry

#: The checks, in the order a report lists them.
CHECKS = ("no_offline_table", "offline_stale", "never_synced", "sync_failing", "sync_lag", "online_stale")


@dataclass(frozen=True)
class Breach:
    """One expectation a view does not meet, with the figure and the fix."""

    view: str
    #: One of CHECKS.
    check: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.view}: {self.message}. Fix: {self.fix}"


@dataclass(frozen=True)
class ViewStatus:
    """The figures of one feature view."""

    view: str
    kind: str
    online: bool
    expected_freshness_seconds: int | None
    #: "config" | "schedule" | "ttl" | "" (see registry_sync.manifest.expected_freshness).
    expected_freshness_source: str
    delta_version: int | None = None
    offline_newest_event: dt.datetime | None = None
    offline_age_seconds: float | None = None
    last_materialized_at: dt.datetime | None = None
    last_materialization_invocation: str | None = None
    last_materialization_mode: str | None = None
    online_newest_event: dt.datetime | None = None
    online_age_seconds: float | None = None
    synced_version: int | None = None
    last_synced_at: dt.datetime | None = None
    versions_behind: int | None = None
    sync_lag_seconds: float | None = None
    syncs: int | None = None
    sync_rows_written: int | None = None
    sync_errors: int | None = None
    last_sync_error: str | None = None
    last_sync_error_at: dt.datetime | None = None
    breaches: tuple[Breach, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["breaches"] = [{"check": b.check, "message": b.message, "fix": b.fix} for b in self.breaches]
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in data.items()}


@dataclass(frozen=True)
class StatusReport:
    """Every view's figures at one instant."""

    checked_at: dt.datetime
    registry_version: int | None
    views: tuple[ViewStatus, ...]
    #: Why online figures are missing (the online store could not be reached), else None.
    online_error: str | None = None
    breaches: tuple[Breach, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "breaches", tuple(b for v in self.views for b in v.breaches))

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "registry_version": self.registry_version,
            "ok": not self.breaches and self.online_error is None,
            "online_error": self.online_error,
            "breaches": len(self.breaches),
            "views": [v.to_dict() for v in self.views],
        }


def _parse_time(text: str | None) -> dt.datetime | None:
    return None if not text else dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)


def _age(now: dt.datetime, moment: dt.datetime | None) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def human(seconds: float | None) -> str:
    """A duration for people: '29d14h', '3h05m', '42s'.

    >>> human(29 * 86400 + 14 * 3600 + 59)
    '29d14h'
    >>> human(3 * 3600 + 5 * 60)
    '3h05m'
    """
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _offline(view: FeatureView, status: dict[str, Any], now: dt.datetime) -> DeltaTable | None:
    try:
        table = open_table(view.delta_uri)
    except TableNotFoundError:
        return None
    newest, _ = newest_event(table, view.timestamp_field)
    commit = last_commit(table)
    status.update(
        delta_version=table.version(),
        offline_newest_event=newest,
        offline_age_seconds=_age(now, newest),
        last_materialized_at=commit.at,
        last_materialization_invocation=commit.dbt_invocation_id,
        last_materialization_mode=commit.mode,
    )
    return table


def _read_record(client: Any, table: str) -> SyncRecord:
    try:
        return read_record(client, table)
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceNotFoundException":
            return SyncRecord(state=None)
        raise


def _online(table: DeltaTable | None, record: SyncRecord, status: dict[str, Any], now: dt.datetime) -> None:
    state = record.state
    status.update(syncs=record.syncs, sync_rows_written=record.rows_written, sync_errors=record.errors,
                  last_sync_error=record.last_error, last_sync_error_at=_parse_time(record.last_error_at))
    if state is None:
        return
    newest = None if state.newest_event_us is None else dt.datetime.fromtimestamp(state.newest_event_us / 1e6, dt.timezone.utc)
    status.update(
        synced_version=state.delta_version,
        last_synced_at=_parse_time(state.synced_at),
        online_newest_event=newest,
        online_age_seconds=_age(now, newest),
    )
    if table is None:
        return
    if state.delta_table_id != table.metadata().id:
        # The Delta table was recreated: nothing of it is synced; its first commit waits.
        status.update(versions_behind=table.version() + 1, sync_lag_seconds=_age(now, commit_time(table, 0)))
        return
    behind = max(0, table.version() - state.delta_version)
    waiting = commit_time(table, state.delta_version + 1) if behind else None
    status.update(versions_behind=behind, sync_lag_seconds=_age(now, waiting) if behind else 0.0)


def _breaches(view: FeatureView, s: dict[str, Any], has_table: bool, online_known: bool) -> list[Breach]:
    name = view.name
    expected = view.expected_freshness_seconds
    limit = f"expected within {format_duration(dt.timedelta(seconds=expected))}" if expected else ""
    build = f"dbt build --select {name}"
    sync = f"hindsight sync --select {name}"
    found: list[Breach] = []
    if not has_table:
        return [Breach(name, "no_offline_table", f"no Delta table at {view.delta_uri}", f"run `{build}`")]
    offline_stale = False
    if expected is not None:
        age = s.get("offline_age_seconds")
        if age is None:
            offline_stale = True
            found.append(Breach(name, "offline_stale", f"the Delta table (version {s['delta_version']}) holds no rows; {limit}",
                                f"check its sources (`dbt source freshness`), then `{build}`"))
        elif age > expected:
            offline_stale = True
            commit_age = _age(s["checked_at"], s.get("last_materialized_at"))
            ran = (f"dbt last wrote it {human(commit_age)} ago (version {s['delta_version']}) without newer events, so "
                   f"its sources are late: check `dbt source freshness`, then `{build}` once they have new rows"
                   if commit_age is not None and commit_age <= expected else
                   f"its last materialization was {human(commit_age)} ago: run `{build}` (and schedule it)")
            found.append(Breach(name, "offline_stale",
                                f"newest offline event {_when(s['offline_newest_event'])} is {human(age)} old; {limit}", ran))
    if not view.online or not online_known:
        return found
    if s.get("synced_version") is None:
        found.append(Breach(name, "never_synced", "the online store was never synced from this view's Delta table", f"run `{sync}`"))
        return found
    error_at, synced_at = s.get("last_sync_error_at"), s.get("last_synced_at")
    if error_at is not None and (synced_at is None or error_at > synced_at):
        found.append(Breach(name, "sync_failing", f"the last sync failed at {_when(error_at)}: {s.get('last_sync_error')}",
                            f"fix the error above, then `{sync}`"))
    lag = s.get("sync_lag_seconds")
    if expected is not None and lag is not None and lag > expected:
        found.append(Breach(name, "sync_lag",
                            f"Delta version {s['synced_version'] + 1} has waited {human(lag)} for sync "
                            f"({s['versions_behind']} versions behind); {limit}", f"run `{sync}` (and schedule it)"))
    elif expected is not None and not offline_stale and (s.get("online_age_seconds") or 0) > expected:
        found.append(Breach(name, "online_stale",
                            f"newest online event {_when(s['online_newest_event'])} is {human(s['online_age_seconds'])} old; {limit}",
                            f"run `{sync}`"))
    return found


def view_status(view: FeatureView, now: dt.datetime, client: Any | None, config: OnlineStoreConfig | None) -> ViewStatus:
    """One view's figures and breaches; `client` None: the online figures are unknown (not checked).

    Raises:
        botocore.exceptions.BotoCoreError, ClientError: the online store could not be read.
    """
    figures: dict[str, Any] = {}
    table = _offline(view, figures, now)
    if view.online and client is not None and config is not None:
        _online(table, _read_record(client, config.table_name(view.name)), figures, now)
    breaches = _breaches(view, {**figures, "checked_at": now}, table is not None, client is not None)
    return ViewStatus(
        view=view.name,
        kind=view.kind,
        online=view.online,
        expected_freshness_seconds=view.expected_freshness_seconds,
        expected_freshness_source=view.expected_freshness_source,
        breaches=tuple(breaches),
        **figures,
    )


def collect_status(
    registry: Registry,
    config: OnlineStoreConfig | None,
    client: Any | None,
    select: list[str] | tuple[str, ...] | None = None,
    now: dt.datetime | None = None,
) -> StatusReport:
    """The status of the registry's feature views (every one, or those in `select`).

    Args:
        registry: the feature views and their expectations.
        config: the online store; None checks offline figures only.
        client: a boto3 DynamoDB client for `config`.
        select: only these view names.
        now: the instant ages are measured at; default: now.

    Raises:
        ValueError: a selected name is not a feature view.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    views = list(registry.feature_views)
    if select:
        known = {v.name: v for v in views}
        unknown = [n for n in select if n not in known]
        if unknown:
            from hindsight.core.suggest import did_you_mean

            raise ValueError(f"no feature view named {unknown[0]!r}{did_you_mean(unknown[0], known)}; known: {', '.join(sorted(known))}")
        views = [known[n] for n in dict.fromkeys(select)]
    online_error = None
    statuses = []
    for view in views:
        try:
            statuses.append(view_status(view, now, client if online_error is None else None, config))
        except (BotoCoreError, ClientError, OnlineStoreUnavailable) as err:
            where = config.endpoint_url if config and config.endpoint_url else "AWS"
            online_error = f"the online store at {where} could not be read: {err}"
            statuses.append(view_status(view, now, None, config))
    return StatusReport(checked_at=now, registry_version=registry.version, views=tuple(statuses), online_error=online_error)
