"""`hindsight vacuum`: delete Delta files no version still needs (see hindsight.offline_store.vacuum)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("vacuum")
@click.option("--select", "select", multiple=True, metavar="VIEW",
              help="Only this feature view, or stream source's event log (repeatable).")
@click.option("--retention", default="7d", show_default=True, metavar="DURATION",
              help="Keep files younger than this (at least 1h): versions newer than it stay readable.")
@click.option("--pinned", multiple=True, type=click.Path(exists=True, path_type=Path), metavar="PATH",
              help="A training set (Parquet file, or a folder of them) whose Delta versions must stay "
                   "readable, however old (repeatable).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
def vacuum(select: tuple[str, ...], retention: str, pinned: tuple[Path, ...], dry_run: bool) -> None:
    """Delete Parquet files no kept Delta version references, orphans of killed runs included."""
    from hindsight.core.durations import parse_duration
    from hindsight.cli.project import project_settings
    from hindsight.core.suggest import did_you_mean
    from hindsight.offline_store.vacuum import VacuumError, check_retention, format_bytes, vacuum_table
    from hindsight.project import project_registry
    from hindsight.registry_sync import RegistryError

    try:
        keep = parse_duration(retention)
        check_retention(keep)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--retention") from None
    try:
        registry = project_registry(project_settings())
        views = {v.name: v.delta_uri for v in registry.feature_views}
        # Stream sources' event logs too: the flusher compacts them, leaving replaced files behind.
        views.update({s.name: s.delta_uri for s in registry.stream_sources})
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    for name in select:
        if name not in views:
            raise click.BadParameter(f"unknown feature view {name!r}{did_you_mean(name, views, quote=True)}",
                                     param_hint="--select")
    versions = _pinned_versions(pinned)
    total_files, total_bytes = 0, 0  # type: tuple[int, int | None]
    verb = "would remove" if dry_run else "removed"
    for name in select or sorted(views):
        try:
            report = vacuum_table(name, views[name], keep, dry_run=dry_run,
                                  keep_versions=versions.get(name, ()))
        except VacuumError as error:
            raise click.ClickException(str(error)) from None
        if report.version is None:
            click.echo(f"{name}: no Delta table yet, nothing to do")
            continue
        pins = f"; kept pinned version(s) {', '.join(map(str, report.kept_versions))}" if report.kept_versions else ""
        click.echo(f"{name}: {verb} {len(report.files)} file(s), {format_bytes(report.bytes)} (version {report.version}{pins})")
        total_files += len(report.files)
        total_bytes = None if total_bytes is None or report.bytes is None else total_bytes + report.bytes
    click.echo(f"total: {verb} {total_files} file(s), {format_bytes(total_bytes)}; files younger than "
               f"{retention} were kept")


def _pinned_versions(paths: tuple[Path, ...]) -> dict[str, set[int]]:
    """{view: versions} read by the training sets at `paths` (their Parquet metadata)."""
    import pyarrow.parquet as pq

    from hindsight.training_sets import read_versions

    pinned: dict[str, set[int]] = {}
    for path in paths:
        for file in sorted(path.rglob("*.parquet")) if path.is_dir() else [path]:
            try:
                schema = pq.read_schema(file)
            except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
                raise click.BadParameter(f"{file}: not a Parquet file ({error})", param_hint="--pinned") from None
            found = read_versions(schema.empty_table())
            if not found and not path.is_dir():
                raise click.BadParameter(f"{file} records no Delta versions: is it a training set written by "
                                         "`hindsight training-set`?", param_hint="--pinned")
            for view, version in found.items():
                pinned.setdefault(view, set()).add(int(version))
    return pinned
