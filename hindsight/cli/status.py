"""`hindsight status`: every feature view's freshness and sync, and exit 3 when an expectation is breached.

Exit codes (for cron and CI): 0 every expectation is met; 3 at least one is breached (each breach
is printed with the view, the figure and the fix); 1 the status could not be read (no registry,
or the online store is unreachable: the offline figures are still printed); 2 bad usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hindsight.cli.online import _load_registry, _online_config, _registry_option, _user_errors

#: Exit code when at least one expectation is breached.
EXIT_BREACHED = 3
#: Exit code when figures could not be read.
EXIT_UNKNOWN = 1


def _expected(view: Any) -> str:
    from hindsight.core.durations import format_duration

    seconds = view.expected_freshness_seconds
    if seconds is None:
        return "not set"
    import datetime as dt

    return f"{format_duration(dt.timedelta(seconds=seconds))} ({view.expected_freshness_source})"


def _newest(moment: Any, age: float | None) -> str:
    from hindsight.online_sync.status import human

    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}Z ({human(age)})"


def _table(report: Any) -> list[tuple[str, ...]]:
    from hindsight.online_sync.status import human

    rows: list[tuple[str, ...]] = [("VIEW", "EXPECTED", "OFFLINE NEWEST (AGE)", "DELTA V", "MATERIALIZED",
             "ONLINE NEWEST (AGE)", "SYNCED V", "LAST SYNC", "SYNC LAG", "STATE")]
    for v in report.views:
        materialized = "-" if v.last_materialized_at is None else f"{v.last_materialized_at:%Y-%m-%d %H:%M}Z"
        if not v.online:
            online = synced = last_sync = lag = "(offline)"
        elif report.online_error is not None:
            online = synced = last_sync = lag = "?"
        else:
            online = _newest(v.online_newest_event, v.online_age_seconds)
            synced = "-" if v.synced_version is None else str(v.synced_version)
            last_sync = "never" if v.last_synced_at is None else f"{v.last_synced_at:%Y-%m-%d %H:%M}Z"
            lag = "-" if v.sync_lag_seconds is None else f"{human(v.sync_lag_seconds)} ({v.versions_behind} v)"
        state = "BREACHED" if v.breaches else "ok"
        rows.append((v.view, _expected(v), _newest(v.offline_newest_event, v.offline_age_seconds),
                     "-" if v.delta_version is None else str(v.delta_version), materialized,
                     online, synced, last_sync, lag, state))
    return rows


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        if index == 0:
            click.secho(line, bold=True)
        elif row[-1] == "BREACHED":
            click.secho(line, fg="red")
        else:
            click.echo(line)


@click.command("status")
@click.option("--select", "select", multiple=True, metavar="VIEW", help="Only this view (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON document.")
@click.option("--offline-only", is_flag=True, help="Do not read the online store (offline figures and checks only).")
@_registry_option
@_user_errors
def status_command(select: tuple[str, ...], as_json: bool, offline_only: bool, registry_file: Path | None) -> None:
    """Each feature view's freshness (offline and online), last materialization and sync, against its
    expected_freshness. Exit 0: all met; 3: a breach (printed with its fix); 1: figures could not be read."""
    from hindsight.online_sync.config import shared_client
    from hindsight.online_sync.status import collect_status

    registry = _load_registry(registry_file)
    config = None if offline_only else _online_config()
    client = None if config is None else shared_client(config)
    report = collect_status(registry, config, client, select=list(select) or None)
    code = EXIT_BREACHED if report.breaches else (EXIT_UNKNOWN if report.online_error else 0)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "exit_code": code}, indent=2))
        sys.exit(code)
    click.echo(f"hindsight status at {report.checked_at:%Y-%m-%d %H:%M:%S}Z, registry version {report.registry_version}")
    _print_table(_table(report))
    if report.online_error:
        click.secho(f"\nUNKNOWN: {report.online_error}", fg="yellow", bold=True, err=True)
    if report.breaches:
        views = len({b.view for b in report.breaches})
        click.secho(f"\nBREACHED: {len(report.breaches)} expectation(s) on {views} feature view(s) (exit {EXIT_BREACHED})",
                    fg="red", bold=True)
        for breach in report.breaches:
            click.secho(f"  {breach.view} [{breach.check}]: {breach.message}", fg="red")
            click.echo(f"      fix: {breach.fix}")
    elif not report.online_error:
        checked = sum(1 for v in report.views if v.expected_freshness_seconds is not None)
        click.secho(f"\nOK: {len(report.views)} feature view(s), {checked} with a freshness expectation, all met",
                    fg="green", bold=True)
    sys.exit(code)
