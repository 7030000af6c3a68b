"""`hindsight keys create|list|revoke`: API keys of the serving API (hindsight.online_sync.keys)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hindsight.cli.online import _user_errors


def _store():
    from hindsight.cli.project import project_settings
    from hindsight.online_sync.config import OnlineStoreConfig
    from hindsight.online_sync.keys import KeyStore

    return KeyStore(OnlineStoreConfig.from_settings(project_settings()))


def _registry_names() -> tuple[list[str], list[str], dict[str, str]] | None:
    """What keys may name: (services and views to read, feature views and stream sources to write,
    stream sources' table names -> full names) of the latest applied registry; None when no
    registry is applied yet."""
    from hindsight.cli.project import project_settings
    from hindsight.registry_sync import load_registry

    try:
        registry = load_registry(project_settings())
    except Exception:  # noqa: BLE001 - no registry applied (yet): names cannot be checked
        return None
    views = [v.name for v in registry.feature_views]
    readable = [*(s.name for s in registry.feature_services), *views, *(v.name for v in registry.on_demand_views)]
    sources = [s.name for s in registry.stream_sources]
    tables = [s.table_name for s in registry.stream_sources]
    # A source's table name stands for it when unique (as in POST /v1/ingest); the key records its full name.
    short = {s.table_name: s.name for s in registry.stream_sources if tables.count(s.table_name) == 1}
    return readable, [*views, *sources], short


def _check_names(option: str, names: tuple[str, ...], known: list[str], kind: str) -> None:
    from hindsight.core.suggest import did_you_mean

    for name in names:
        if name != "*" and name not in known:
            raise click.BadParameter(
                f"{name!r} is not a {kind} of the applied registry{did_you_mean(name, known)}", param_hint=option
            )


@click.group("keys")
def keys() -> None:
    """Create, list and revoke API keys of the serving API (kept hashed in the online store)."""


@keys.command("create")
@click.option("--name", required=True, help="Who uses the key (a model, a dashboard); shown by `keys list`.")
@click.option("--read", "read", multiple=True, metavar="SERVICE_OR_VIEW",
              help="A feature service or view the key may read (repeatable); '*' for all.")
@click.option("--write", "write", multiple=True, metavar="TARGET",
              help="A feature view the key may push to, or a stream source it may ingest into "
                   "(streams.transactions; repeatable); '*' for all.")
@click.option("--metrics", is_flag=True, help="The key may read GET /metrics.")
@click.option("--save", "save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the key to this file (mode 0600), for scripts and `hindsight demo-request`.")
@click.option("--replace", is_flag=True,
              help="Revoke the other active keys of this --name once the new key is stored (rotation; `make demo`).")
@_user_errors
def create(name: str, read: tuple[str, ...], write: tuple[str, ...], metrics: bool, save: Path | None,
           replace: bool) -> None:
    """Create a key; it is printed once, as the last word of the output, and stored only hashed."""
    known = _registry_names()
    if known is None:
        click.echo("note: no registry applied yet, so --read/--write names are not checked", err=True)
    else:
        _check_names("--read", read, known[0], "feature service or view")
        write = tuple(known[2].get(name, name) for name in write)
        _check_names("--write", write, known[1], "feature view or stream source")
    store = _store()
    key, record = store.create(name, read, write, metrics)
    if replace:
        for old in store.list():
            if old.name == record.name and old.active and old.key_id != record.key_id:
                store.revoke(old.key_id)
                click.echo(f"revoked the previous key {old.key_id} of {old.name!r}")
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        # Created with 0600 from the start: the key is never readable by others, not even briefly.
        descriptor = os.open(save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(key + "\n")
    click.echo(f"created API key {record.name!r} (id {record.key_id}): {record.scopes()}")
    if save is not None:
        click.echo(f"saved to {save}")
    click.echo("it is shown only this once; clients send it as 'Authorization: Bearer <key>':")
    click.echo(key)


@keys.command("list")
@click.option("--active", is_flag=True, help="Only keys that are not revoked.")
@_user_errors
def list_keys(active: bool) -> None:
    """List keys: id, name, scopes, created, revoked (never the keys themselves)."""
    records = [r for r in _store().list() if r.active or not active]
    if not records:
        click.echo("no API keys; create one with `hindsight keys create --name NAME --read SERVICE`")
        return
    rows = [("ID", "NAME", "STATUS", "CREATED", "BY", "SCOPES")]
    for r in records:
        status = "active" if r.active else f"revoked {r.revoked_at:%Y-%m-%d %H:%M:%S}Z"
        rows.append((r.key_id, r.name, status, f"{r.created_at:%Y-%m-%d %H:%M:%S}Z", r.created_by or "-", r.scopes()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


@keys.command("revoke")
@click.argument("key_id")
@_user_errors
def revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (or the whole key, if that is what leaked)."""
    from hindsight.serving.auth import AuthConfig

    record, changed = _store().revoke(key_id)
    if not changed:
        click.echo(f"API key {record.key_id} ({record.name!r}) was already revoked at "
                   f"{record.revoked_at:%Y-%m-%d %H:%M:%S}Z")
        return
    from hindsight.cli.project import project_settings

    cache = AuthConfig.from_settings(project_settings()).cache_seconds
    click.echo(f"revoked API key {record.key_id} ({record.name!r}); servers refuse it within {cache:g} s "
               "(their key cache, serving.key_cache_seconds)")
