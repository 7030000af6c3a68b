"""`hindsight training-set`: point-in-time features for a spine file, written to Parquet."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


@click.command("training-set")
@click.option("--service", help="A feature service (dbt exposure) name.")
@click.option("--features", help="Comma-separated view:feature or view:* references.")
@click.option(
    "--spine",
    "spine_path",
    required=True,
    type=click.Path(exists=True, dir_okay=True),
    help="Parquet file with join keys, the event time and labels.",
)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Parquet file to write.")
@click.option("--event-timestamp", default="event_timestamp", show_default=True, help="The spine's event-time column.")
@click.option("--print-sql", is_flag=True, help="Print the point-in-time SQL (without --out: print only).")
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="SQL dialect and engine: DuckDB in process, or Spark Connect ($HINDSIGHT_SPARK_REMOTE).",
)
@click.option("--spark-remote", help="Spark Connect URL for --dialect spark (default $HINDSIGHT_SPARK_REMOTE).")
@click.option("--versions", help='Delta versions to read, as JSON: \'{"user_profile": 3}\'.')
@click.option("--registry-version", type=click.IntRange(min=1), help="An applied registry version to use (default: the latest).")
@click.option(
    "--replay",
    "replay_path",
    type=click.Path(exists=True, dir_okay=False),
    help="An earlier training set's Parquet file: use the registry and Delta versions it records.",
)
@click.option("--no-created", is_flag=True, help="Ignore created times (use rows however late they were recorded).")
@click.option("--validated-only", is_flag=True,
              help="Read each view with expectations at its newest Delta version that passed `hindsight validate`.")
def training_set_command(
    service: str | None,
    features: str | None,
    spine_path: str,
    out: str | None,
    event_timestamp: str,
    print_sql: bool,
    dialect: str,
    spark_remote: str | None,
    versions: str | None,
    registry_version: int | None,
    replay_path: str | None,
    no_created: bool,
    validated_only: bool,
) -> None:
    """Build a training set: each spine row gets the feature values known at its event time."""
    import pyarrow.parquet as pq

    from hindsight.cli.project import project_settings
    from hindsight.registry_sync.errors import RegistryError
    from hindsight.training_sets import (
        TrainingSetError,
        read_registry_version,
        read_versions,
        training_set,
        training_set_sql,
    )

    if (service is None) == (features is None):
        raise click.UsageError("pass exactly one of --service and --features")
    if out is None and not print_sql:
        raise click.UsageError("--out is required (or --print-sql to only show the SQL)")
    if out is not None:
        _check_output(out, spine_path)
    pinned = _parse_versions(versions)
    if replay_path is not None:
        if versions is not None or registry_version is not None:
            raise click.UsageError("--replay takes the versions from the file: drop --versions and --registry-version")
        pinned, registry_version = _recorded_versions(replay_path)
    selection: dict[str, Any] = {"service": service, "features": features, "registry_version": registry_version,
                 "project_dir": project_settings().project_dir}
    try:
        if print_sql:
            spine_columns = pq.read_schema(spine_path).names
            sql = training_set_sql(spine_columns, **selection, dialect=dialect, honor_created=not no_created)
            click.echo(sql or "-- no feature view to join: only on-demand views without feature inputs")
        if out is None:
            return
        table = training_set(
            spine_path,
            **selection,
            event_timestamp=event_timestamp,
            versions=pinned,
            honor_created=not no_created,
            engine=dialect,
            spark_remote=spark_remote,
            validated_only=validated_only,
        )
    except (TrainingSetError, RegistryError) as error:
        raise click.ClickException(str(error)) from error
    # Written beside `out` and renamed into place: a failed write never leaves half a file.
    partial = Path(out).with_name(f".{Path(out).name}.{os.getpid()}.partial")
    try:
        pq.write_table(table, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    used = read_registry_version(table)
    click.echo(
        f"wrote {table.num_rows} rows x {table.num_columns} columns to {out}; registry version {used}, "
        f"Delta versions {json.dumps(read_versions(table), sort_keys=True)} (replay with --replay {out})",
        err=True,
    )


def _recorded_versions(path: str) -> tuple[dict[str, int], int | None]:
    """The Delta versions and registry version an earlier training set's file records."""
    import pyarrow.parquet as pq

    from hindsight.training_sets import read_registry_version, read_versions

    schema = pq.read_schema(path)
    empty = schema.empty_table()
    versions, registry_version = read_versions(empty), read_registry_version(empty)
    if not versions and registry_version is None:
        raise click.BadParameter(f"{path} records no versions: it was not written by hindsight training-set", param_hint="--replay")
    return versions, registry_version


def _check_output(out: str, spine_path: str) -> None:
    """Refuse, before any computation, an --out that would overwrite the spine or cannot be written."""
    target, spine = Path(out).resolve(), Path(spine_path).resolve()
    if target == spine or spine in target.parents:
        raise click.ClickException(
            f"--out {out} would overwrite the spine {spine_path}: write the training set to another file"
        )
    folder = target.parent
    if not folder.is_dir():
        raise click.ClickException(f"--out {out}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(f"--out {out}: folder {folder} is not writable")


def _parse_versions(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--versions") from error
    if not isinstance(parsed, dict):
        raise click.BadParameter('expected an object like {"user_profile": 3}', param_hint="--versions")
    return parsed
