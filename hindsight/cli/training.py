"""`hindsight training-set`: point-in-time features for a spine file, written to Parquet."""

from __future__ import annotations

import json
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
@click.option("--no-created", is_flag=True, help="Ignore created times (use rows however late they were recorded).")
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
    no_created: bool,
) -> None:
    """Build a training set: each spine row gets the feature values known at its event time."""
    import pyarrow.parquet as pq

    from hindsight.cli.project import project_settings
    from hindsight.registry_sync.errors import RegistryError
    from hindsight.training_sets import TrainingSetError, read_versions, training_set, training_set_sql

    if (service is None) == (features is None):
        raise click.UsageError("pass exactly one of --service and --features")
    if out is None and not print_sql:
        raise click.UsageError("--out is required (or --print-sql to only show the SQL)")
    pinned = _parse_versions(versions)
    selection: dict[str, Any] = {"service": service, "features": features, "project_dir": project_settings().project_dir}
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
        )
    except (TrainingSetError, RegistryError) as error:
        raise click.ClickException(str(error)) from error
    pq.write_table(table, out)
    click.echo(
        f"wrote {table.num_rows} rows x {table.num_columns} columns to {out}; "
        f"Delta versions {json.dumps(read_versions(table), sort_keys=True)} (replay with --versions)",
        err=True,
    )


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
