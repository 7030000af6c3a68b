"""Spark commands: `spark up|down|status` run Sail, a local Spark Connect server for the spark target."""

from __future__ import annotations

import sys
from typing import Any

import click

from hindsight.cli.project import project_settings


def _server() -> Any:
    from hindsight.offline_store.sail import SailServer

    settings = project_settings()
    return SailServer(settings.state_dir, working_dir=settings.project_dir)


def _object_store_env() -> dict[str, str]:
    """What Sail needs to reach an offline store on S3 (hindsight.yml's `s3:`); nothing for a local one."""
    from hindsight.core.object_store import S3Config, is_s3

    settings = project_settings()
    return S3Config.from_settings(settings).delta_options() if is_s3(settings.offline_store) else {}


@click.group("spark")
def spark() -> None:
    """Run Sail, a local Spark Connect server with Delta Lake, for `dbt build --target spark`."""


@spark.command("up")
@click.option("--port", default=50051, show_default=True, type=click.IntRange(1, 65535))
def up(port: int) -> None:
    """Start Sail in the background (does nothing if it runs); prints the export to use it.

    The status line goes to stderr, so `eval "$(hindsight spark up)"` sets the variable.
    """
    from hindsight.offline_store.sail import SailError

    try:
        remote = _server().start(port=port, env=_object_store_env())
    except SailError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Sail (Spark Connect) answers at {remote}; then: HINDSIGHT_TARGET=spark dbt build", err=True)
    click.echo(f"export HINDSIGHT_SPARK_REMOTE={remote}")


@spark.command("down")
def down() -> None:
    """Stop the background Sail (its catalog goes with it; Delta tables stay)."""
    click.echo("stopped Sail" if _server().stop() else "Sail was not running")


@spark.command("status")
def status() -> None:
    """Say whether Sail runs and accepts connections (exit 1 if not)."""
    state = _server().status()
    if not state.running:
        click.echo("Sail is not running")
        sys.exit(1)
    click.echo(f"Sail runs (pid {state.pid}) at {state.remote}: {'answers' if state.answering else 'does NOT answer'}")
    sys.exit(0 if state.answering else 1)
