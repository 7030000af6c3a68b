"""`hindsight drift`: how far a service's served features moved from a training set, with an HTML report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from hindsight.drift import DriftResult

#: Exit status when a feature's PSI is above the threshold (errors exit 2, like bad input).
EXIT_DRIFTED = 1


class DriftFailed(click.ClickException):
    """Drift could not be computed (no log, no rows, a baseline without the features): exit 2."""

    exit_code = 2


def parse_moment(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A duration back from now ('7d', '12h') or an ISO 8601 date or time (UTC unless it says).

    >>> parse_moment("2d", dt.datetime(2026, 6, 3, tzinfo=dt.timezone.utc)).isoformat()
    '2026-06-01T00:00:00+00:00'
    >>> parse_moment("2026-05-01").isoformat()
    '2026-05-01T00:00:00+00:00'
    """
    from hindsight.core.durations import parse_duration

    try:
        return (now or dt.datetime.now(dt.timezone.utc)) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration back from now ('7d', '12h', '1d12h') nor an ISO 8601 date or time "
            "('2026-05-01', '2026-05-01T08:00:00+02:00')"
        ) from None
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


@click.command("drift")
@click.option("--service", required=True, help="The feature service (its sampled served vectors are compared).")
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A training set Parquet file (`hindsight training-set --service ... --out FILE`).")
@click.option("--since", help="Served rows from this moment: a duration back from now ('7d') or an ISO date/time. "
                              "[default: everything logged]")
@click.option("--until", help="Served rows before this moment (same forms as --since). [default: now]")
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True), default=None,
              help="PSI above which a feature counts as drifted (exit 1). [default: 0.2]")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the HTML report (a plot per feature, ranked by drift) to this file.")
@click.option("--log", "log_uri", help="The served-features Delta table. [default: serving.sample_log in hindsight.yml]")
def drift_command(service: str, baseline: str, since: str | None, until: str | None, threshold: float | None,
                  report_path: str | None, log_uri: str | None) -> None:
    """Compare the feature vectors a service served with a training set: PSI per feature, KS for
    numeric features, category share changes for strings and booleans.

    Exits 1 when a feature's PSI is above the threshold, 2 when drift cannot be computed.
    """
    from hindsight.cli.project import project_settings
    from hindsight.drift import DEFAULT_THRESHOLD, DriftError
    from hindsight.drift import drift as compute

    settings = project_settings()
    start = parse_moment(since) if since else None
    end = parse_moment(until) if until else None
    if start and end and start >= end:
        raise click.BadParameter(f"--since {since} is not before --until {until}", param_hint="--since")
    if report_path is not None and not Path(report_path).resolve().parent.is_dir():
        raise DriftFailed(f"--report {report_path}: folder {Path(report_path).resolve().parent} does not exist")
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    try:
        result = compute(baseline, log_uri or settings.sample_log, service, start, end, limit)
    except DriftError as error:
        raise DriftFailed(str(error)) from None
    click.echo(_table(result))
    if report_path is not None:
        from hindsight.drift.report import write

        click.echo(f"report: {write(result, report_path)}", err=True)
    if result.breached:
        names = ", ".join(f"{f.name} ({f.psi:.3f})" for f in result.breached)
        click.echo(f"drift above PSI {limit:g} in {len(result.breached)} feature(s): {names}", err=True)
        raise SystemExit(EXIT_DRIFTED)
    click.echo(f"no drift above PSI {limit:g}", err=True)


def _table(result: DriftResult) -> str:
    from hindsight.drift.report import status

    served = result.served
    lines = [f"service {result.service}: {served.rows} served rows vs {result.baseline_rows} baseline rows "
             f"({result.baseline})"]
    header = f"{'#':>2}  {'feature':<32} {'kind':<11} {'PSI':>7} {'KS':>6} {'missing':>15}  status"
    lines += [header, "-" * len(header)]
    for rank, f in enumerate(result.features, 1):
        missing = f.bucket("(missing)")
        shares = f"{missing.baseline * 100:.0f}% -> {missing.served * 100:.0f}%" if missing else "-"
        ks = f"{f.ks_statistic:.3f}" if f.ks_statistic is not None else "-"
        lines.append(f"{rank:>2}  {f.name:<32} {f.kind:<11} {f.psi:>7.3f} {ks:>6} {shares:>15}  "
                     f"{status(f.psi, result.threshold)[0]}")
    for name in result.not_in_baseline:
        lines.append(f"    {name}: served but not in the baseline (not compared)")
    return "\n".join(lines)
