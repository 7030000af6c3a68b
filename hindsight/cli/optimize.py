"""`hindsight optimize`: merge feature views' small Delta files (see hindsight.offline_store.optimize)."""

from __future__ import annotations

import click


@click.command("optimize")
@click.option("--select", "select", multiple=True, metavar="VIEW", help="Only this feature view (repeatable).")
def optimize(select: tuple[str, ...]) -> None:
    """Merge the small files of feature views' Delta tables (hindsight.yml's `optimize:` section).

    Safe while others read: the rewrite is one new Delta version with the same rows; older versions
    keep their files until `hindsight vacuum`.
    """
    from hindsight.cli.project import project_settings
    from hindsight.core.suggest import did_you_mean
    from hindsight.offline_store.optimize import OptimizeError, coarser_partition_hint, optimize_table
    from hindsight.offline_store.vacuum import format_bytes
    from hindsight.project import project_registry
    from hindsight.registry_sync import RegistryError

    settings = project_settings()
    try:
        registry = project_registry(settings)
    except RegistryError as error:
        raise click.ClickException(str(error)) from None
    views = {v.name: v for v in registry.feature_views}
    for name in select:
        if name not in views:
            raise click.BadParameter(f"unknown feature view {name!r}{did_you_mean(name, views, quote=True)}",
                                     param_hint="--select")
    config = settings.optimize
    click.echo(f"target file size {config.target_file_size_mb} MB; a partition is rewritten from "
               f"{config.min_small_files} smaller files; z-order by entity: {'on' if config.z_order else 'off'}")
    rewritten = 0
    for name in select or sorted(views):
        try:
            report = optimize_table(name, views[name].delta_uri, views[name].join_keys, config)
        except OptimizeError as error:
            raise click.ClickException(str(error)) from None
        if report.before is None or report.after is None:
            click.echo(f"{name}: no Delta table yet, nothing to do")
            continue
        if not report.rewritten:
            click.echo(f"{name}: nothing to do ({report.before.files} file(s), {format_bytes(report.before.bytes)}, "
                       f"no partition with {config.min_small_files}+ small files; version {report.version_before})")
        else:
            rewritten += 1
            order = f", z-ordered by {', '.join(report.z_order_by)}" if report.z_order_by else ""
            click.echo(f"{name}: {report.before.files} -> {report.after.files} file(s), "
                       f"{format_bytes(report.before.bytes)} -> {format_bytes(report.after.bytes)}{order} in "
                       f"{report.seconds:.1f}s (version {report.version_before} -> {report.version_after})")
        hint = coarser_partition_hint(report.after)
        if hint:
            click.echo(f"  hint: {hint}")
    click.echo(f"total: {rewritten} table(s) rewritten; older versions stay readable until `hindsight vacuum`")
