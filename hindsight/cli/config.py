"""`hindsight config`: the project's settings after hindsight.yml, the environment and the defaults,
each with where it came from, and the online store the commands will use."""

from __future__ import annotations

import json

import click

from hindsight.cli.project import project_settings


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def config_command(as_json: bool) -> None:
    """Show the project's resolved settings and where each came from (exit 1 if the online store
    recorded by `hindsight online up` is gone)."""
    from hindsight.core.config import sources
    from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable

    settings = project_settings()
    origin = sources(settings.project_dir)
    values = {
        "offline_store": settings.offline_store,
        "registry": str(settings.registry_dir),
        "state": str(settings.state_dir),
        "on_demand": str(settings.on_demand_dir),
        "online_store.endpoint": settings.online_store.endpoint,
        "online_store.region": settings.online_store.region,
        "online_store.table_prefix": settings.online_store.table_prefix,
        "serving.host": settings.serving.host,
        "serving.port": settings.serving.port,
        "serving.workers": settings.serving.workers,
        "serving.sample_rate": settings.serving.sample_rate,
        "serving.sample_log": settings.sample_log,
        "s3.endpoint_url": settings.s3.endpoint_url,
        "s3.region": settings.s3.region,
    }
    _aws_fallbacks(values, origin)
    problem = None
    try:
        online = OnlineStoreConfig.from_settings(settings)
        if not settings.online_store.endpoint:
            values["online_store.endpoint"] = online.endpoint_url
            origin["online_store.endpoint"] = ("recorded by `hindsight online up`" if online.endpoint_url
                                               else f"{origin['online_store.endpoint']}: AWS through boto3's chain")
    except OnlineStoreUnavailable as error:
        problem = str(error)
    if as_json:
        click.echo(json.dumps({"project_dir": str(settings.project_dir),
                               "config_file": str(settings.config_file) if settings.config_file else None,
                               "settings": {k: {"value": v, "from": origin[k]} for k, v in values.items()},
                               "problem": problem}, indent=2))
    else:
        click.echo(f"project_dir: {settings.project_dir}")
        click.echo(f"config_file: {settings.config_file or '(none: every default applies)'}")
        width = max(map(len, values))
        for key, value in values.items():
            shown = "null" if value is None else value
            click.echo(f"  {key:<{width}}  {shown}  ({origin[key]})")
    if problem:
        click.secho(f"error: {problem}", fg="red", err=True)
        raise SystemExit(1)


def _aws_fallbacks(values: dict, origin: dict) -> None:
    """Show the S3 endpoint and region the commands will use when AWS's own variables supply them
    (the order of hindsight.core.object_store.S3Config.from_settings)."""
    import os

    fallbacks = {"s3.endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), "s3.region": ("AWS_REGION", "AWS_DEFAULT_REGION")}
    for key, names in fallbacks.items():
        found = next((name for name in names if values[key] is None and os.environ.get(name)), None)
        if found:
            values[key], origin[key] = os.environ[found], f"env {found}"
    if values["s3.endpoint_url"] is None:
        origin["s3.endpoint_url"] += ": AWS"
