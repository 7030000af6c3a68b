"""`--project-dir` on every command, and the project's settings for the command that runs.

`ProjectGroup` gives each command added to it (and to its sub-groups) a `--project-dir` option
(default: $HINDSIGHT_PROJECT_DIR, else the current folder or its nearest parent holding a
dbt_project.yml, as dbt finds its project). Before the command runs, the option checks that the
folder is a dbt project and that its hindsight.yml is valid (exit 2 with the reason otherwise);
commands then read `project_settings()`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from hindsight.core.config import PROJECT_DIR_ENV, ConfigError
from hindsight.core.object_store import ObjectStoreError
from hindsight.core.settings import Settings

_SETTINGS = "hindsight.settings"
_GROUP_VALUE = "hindsight.project_dir"


class ProjectError(click.ClickException):
    """Not a dbt project, or an invalid hindsight.yml: bad input, exit 2 like a usage error."""

    exit_code = 2


def _group_value(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    # `hindsight --project-dir X registry list`: remembered for the command, checked there (so that
    # `hindsight registry --help` works anywhere).
    if value is not None:
        ctx.meta[_GROUP_VALUE] = value


def _load(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    chosen = value or ctx.meta.get(_GROUP_VALUE)
    try:
        settings = Settings.load(chosen, require=True)
    except ConfigError as error:
        raise ProjectError(str(error)) from None
    ctx.meta[_SETTINGS] = settings
    # What runs below the command and does not take settings (the registry loader a serving worker
    # calls, a detached `serve`, a dbt subprocess) finds the same project through the environment.
    os.environ[PROJECT_DIR_ENV] = str(settings.project_dir)


_HELP = ("The dbt project folder (dbt_project.yml, hindsight.yml). [default: $HINDSIGHT_PROJECT_DIR, "
         "else the current folder or its nearest parent with a dbt_project.yml]")


def project_dir_option(command: click.Command) -> click.Command:
    """Give `command` (and, for a group, every command below it) the `--project-dir` option."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            project_dir_option(sub)
        return command
    if not any(p.name == "project_dir" for p in command.params):
        command.params.append(click.Option(
            ["--project-dir"], type=click.Path(file_okay=False, path_type=Path), envvar=PROJECT_DIR_ENV,
            expose_value=False, callback=_load, help=_HELP,
        ))
    return command


class ProjectGroup(click.Group):
    """A click group whose commands, added now or later, all take `--project-dir`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(
            ["--project-dir"], type=click.Path(file_okay=False, path_type=Path), expose_value=False,
            callback=_group_value, is_eager=True, help=_HELP,
        ))

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(project_dir_option(cmd), name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ObjectStoreError as error:
            # A location on S3 that cannot be reached (no bucket, no credentials): one line, exit 1.
            raise click.ClickException(str(error)) from None


def project_settings() -> Settings:
    """The settings of the project the running command was given (or found)."""
    ctx = click.get_current_context(silent=True)
    settings = ctx.meta.get(_SETTINGS) if ctx is not None else None
    return settings if settings is not None else Settings.load()
