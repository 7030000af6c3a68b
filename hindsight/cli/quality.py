"""`hindsight validate`: run feature views' data quality expectations (hindsight.quality)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hindsight.cli.online import _load_registry, _log_to_stderr, _registry_option
from hindsight.cli.project import project_settings


@click.command("validate")
@click.option("--select", "select", multiple=True, metavar="VIEW",
              help="Only this feature view (repeatable); default: every view with expectations.")
@click.option("--all-rows", is_flag=True,
              help="Check every row of the table, not only the rows added since the newest version that passed.")
@_registry_option
def validate_command(select: tuple[str, ...], all_rows: bool, registry_file: Path | None) -> None:
    """Run each view's expectations on its newest Delta version and record the result.

    Exit 1 when a version fails (a critical expectation failed); `hindsight sync` will not publish
    it. The records go to validations.jsonl in the registry folder.
    """
    from hindsight.quality import ValidationLog, validate

    _log_to_stderr()
    settings = project_settings()
    registry = _load_registry(registry_file)
    validations = ValidationLog.in_registry(settings.registry_dir)
    try:
        outcomes = validate(registry, validations, list(select) or None, all_rows=all_rows)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    if not outcomes:
        click.echo("no feature view declares expectations (config.meta.hindsight.expectations): nothing to validate")
        return
    click.echo(f"{'view':<30} {'version':>7}  {'rows checked':<36} {'result':<7} {'passed':>7} {'s':>6}")
    for outcome in outcomes:
        record = outcome.record
        ok = sum(r.success for r in record.results)
        click.echo(f"{record.view:<30} {record.delta_version:>7}  {record.rows_checked:<36} "
                   f"{'passed' if record.passed else 'FAILED':<7} {f'{ok}/{len(record.results)}':>7} {outcome.seconds:>6.2f}")
        for result in record.failures:
            label = "" if result.blocking else f" [{result.severity}: recorded, does not block]"
            click.echo(f"  - {result.describe()}{label}")
        if record.note:
            click.echo(f"  note: {record.note}")
    click.echo(f"recorded in {_shown(validations.path)}")
    if not all(o.record.passed for o in outcomes):
        sys.exit(1)


def _shown(path: Path | str) -> str:
    if isinstance(path, str):  # a registry on S3: its URI
        return path
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
