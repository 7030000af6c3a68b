"""`hindsight ingest SOURCE FILE|-`: events of a stream source into the stores, as `POST /v1/ingest` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hindsight.cli.online import _json_rows, _load_registry, _online_config, _registry_option, _user_errors


@click.command("ingest")
@click.argument("source")
@click.argument("file", type=click.File("r"), default="-")
@click.option("--flush", is_flag=True,
              help="Also write the events to the source's Delta event log now (else the next flush does).")
@_registry_option
@_user_errors
def ingest_command(source: str, file: Any, flush: bool, registry_file: Path | None) -> None:
    """Ingest events of stream source SOURCE from FILE: JSON lines or one JSON array; '-' (the
    default) reads stdin.

    Every event is checked against the source's declared columns before anything is written;
    an event id ingested before counts as a duplicate, so rerunning a file is safe.
    """
    from hindsight.online_sync.config import shared_client
    from hindsight.streams.ingest import Ingestor

    rows = list(_json_rows(file))
    if not rows:
        raise click.ClickException("no events in the input: give JSON lines or a JSON array of objects")
    registry, config = _load_registry(registry_file), _online_config()
    report = Ingestor(registry, config, shared_client(config)).ingest(source, rows)
    click.echo(f"{report.source}: {report.received} events, {report.accepted} accepted, "
               f"{report.duplicates} duplicates ({report.seconds:.2f} s)")
    if flush:
        from hindsight.streams.flush import Flusher

        flusher = Flusher(registry, config, client=shared_client(config))
        click.echo(str(flusher.flush_once(flusher.resolve(source=report.source))))
