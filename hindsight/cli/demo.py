"""`hindsight demo-data`: write the raw card-fraud demo tables (see hindsight.demo_data)."""

from __future__ import annotations

from pathlib import Path

import click

from hindsight.cli.project import project_settings
from hindsight.demo_data import DEFAULT_SEED, SCALES, DemoDataError, write_demo_data


@click.command("demo-data")
@click.option("--scale", type=click.Choice(list(SCALES)), default="small", show_default=True,
              help="small: ~1k users, ~30k transactions; medium: ~200k users, ~10M transactions.")
@click.option("--end", "end", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Events cover the 180 days before this date (00:00 UTC). [default: today, UTC]")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True,
              help="Seed of every random draw: the same arguments give byte-identical files.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Raw data folder. [default: $HINDSIGHT_RAW_DATA or data/raw]")
@click.option("--loaded-before", metavar="TS", default=None,
              help="Only transactions and user updates loaded before TS (ISO 8601, UTC if no "
                   "offset).")
@click.option("--loaded-from", metavar="TS", default=None,
              help="Append, as new part files, the transactions and user updates loaded at or "
                   "after TS; continue where a --loaded-before write stopped.")  # fmt: skip
def demo_data(scale, end, seed, out_dir, loaded_before, loaded_from) -> None:
    """Generate deterministic raw demo data (users, merchants, transactions, user_updates)."""
    try:
        parts = write_demo_data(
            out_dir or project_settings().raw_data_dir,
            scale=scale,
            end=end.date() if end else None,
            seed=seed,
            loaded_before=loaded_before,
            loaded_from=loaded_from,
        )
    except DemoDataError as error:
        raise click.UsageError(str(error)) from None
    for part in parts:
        where = part.path if part.path is not None else "unchanged (append)"
        click.echo(f"{part.table:<13} {part.rows:>11,} rows  {where}")


@click.command("demo-request")
@click.option("--url", default=None, help="The serving API. [default: serving.host and serving.port of hindsight.yml]")
@click.option("--service", default="fraud_detection", show_default=True, help="The feature service to ask for.")
def demo_request(url: str | None, service: str) -> None:
    """Print an example `curl` for the newest demo transaction's card holder and merchant, and its answer."""
    import json
    import shlex

    import requests

    from hindsight.demo.request import newest_entities

    serving = project_settings().serving
    # A server bound to every interface answers on loopback too.
    url = url or f"http://{'127.0.0.1' if serving.host in ('0.0.0.0', '::') else serving.host}:{serving.port}"
    body = {
        "feature_service": service,
        "entities": newest_entities(project_settings()),
        "request_context": {"amount": 99.5, "country": "FR"},
        "include_metadata": True,
    }
    payload = json.dumps(body)
    click.echo("$ curl -s -X POST " + f"{url}/v1/features -H 'Content-Type: application/json' -d {shlex.quote(payload)}")
    try:
        response = requests.post(f"{url}/v1/features", json=body, timeout=10)
    except requests.RequestException as error:
        raise click.ClickException(f"the serving API at {url} did not answer: {error}") from None
    click.echo(json.dumps(response.json(), indent=2))
    if response.status_code != 200:
        raise click.ClickException(f"HTTP {response.status_code}")
