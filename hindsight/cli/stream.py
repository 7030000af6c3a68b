"""Stream commands: `stream flush` (the journal into Delta)."""

from __future__ import annotations

from pathlib import Path

import click

from hindsight.cli.online import _load_registry, _log_to_stderr, _online_config, _registry_option, _user_errors


@click.group("stream")
def stream() -> None:
    """Stream sources: events from Kinesis and the ingest API, kept offline in Delta event logs."""


@stream.command("flush")
@click.option("--source", metavar="SOURCE", help="Only this stream source (\"streams.transactions\" or \"transactions\").")
@click.option("--view", metavar="VIEW", help="Only this push view's pushed rows.")
@click.option("--batch-size", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Journal entries per Delta commit.")
@_registry_option
@_user_errors
def flush_command(source: str | None, view: str | None, batch_size: int, registry_file: Path | None) -> None:
    """Write every acknowledged event not yet in Delta to its event log (and pushed rows to their views).

    One Delta commit per batch; a rerun after a crash inserts nothing twice. Exits 1 if another
    flusher holds a target's lease (it is flushing that target now).
    """
    from hindsight.streams.flush import Flusher

    _log_to_stderr()
    flusher = Flusher(_load_registry(registry_file), _online_config(), batch_size=batch_size)
    targets = flusher.resolve(source, view)
    if not targets:
        click.echo("nothing to flush: the registry has no stream sources or push views")
        return
    report = flusher.flush_once(targets)
    click.echo(str(report))
    busy = [t.target for t in report.targets if t.busy]
    if busy:
        raise click.ClickException(f"another flusher holds the lease of {', '.join(busy)}; it is flushing now")
