"""`hindsight init`: set up an existing dbt project to use Hindsight (see hindsight.project_init)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("init")
@click.option(
    "--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of the profiles.yml to edit (default: where dbt looks: DBT_PROFILES_DIR, the project, ~/.dbt).",
)
def init(profiles_dir: Path | None) -> None:
    """Add Hindsight to the dbt project here: packages.yml, dbt_project.yml, the profile, hindsight.yml.

    Only adds what is missing (a rerun changes nothing) and prints each change; what you wrote stays.
    Then run `dbt deps` and put feature views in models/features/.
    """
    from hindsight.cli.project import project_settings
    from hindsight.project_init import InitError, init_project

    try:
        # --project-dir (every command has it) has already checked that this is a dbt project.
        result = init_project(project_settings().project_dir, profiles_dir)
    except InitError as error:
        raise click.ClickException(str(error)) from error
    for change in result.changes:
        click.echo(change)
    for note in result.notes:
        click.secho(f"note: {note}", fg="yellow")
    if not result.changes:
        click.echo("Nothing to change: the project is already set up for Hindsight.")
    elif any("packages.yml" in c or "dependencies.yml" in c for c in result.changes):
        click.echo("Next: `dbt deps`, then `dbt build` and `hindsight apply`.")
