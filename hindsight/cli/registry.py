"""`hindsight plan`, `hindsight apply`, `hindsight registry list|show`, `hindsight summary`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from typing import NoReturn

import click

from hindsight.cli.project import project_settings
from hindsight.core.durations import format_duration
from hindsight.core.settings import Settings
from hindsight.project import project_registry
from hindsight.registry_sync import RegistryError, RegistryStore, load_registry
from hindsight.registry_sync.contracts import write_registry_contracts
from hindsight.registry_sync.dbt_project import parse_project, require_current_manifest
from hindsight.registry_sync.diff import plan as diff_plan
from hindsight.registry_sync.model import Entity, FeatureService, FeatureView, OnDemandFeatureView, Registry, StreamSource
from hindsight.registry_sync.store import same_definitions


def _fail(error: Exception) -> NoReturn:
    click.secho(f"error: {error}" if "\n" not in str(error) else f"error:\n{error}", fg="red", err=True)
    sys.exit(2)


def _build(settings: Settings, parse: bool = True) -> Registry:
    try:
        if parse:
            seconds = parse_project(settings)
            click.echo(f"Parsed the dbt project in {seconds:.1f} s.", err=True)
        else:
            require_current_manifest(settings)
        return project_registry(settings)
    except RegistryError as error:
        _fail(error)
        raise


#: plan, apply and summary read the project as it is now unless told the manifest is current.
parse_option = click.option(
    "--parse/--no-parse",
    default=True,
    help="Run `dbt parse` first (default). --no-parse uses target/manifest.json as is, "
    "refusing it if a project file is newer (for CI jobs that just ran dbt).",
)


@click.command()
@click.option("--allow-breaking", is_flag=True, help="Exit 0 even if a change is breaking.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@parse_option
def plan(allow_breaking: bool, as_json: bool, parse: bool) -> None:
    """Show what `apply` would change in the registry; exit 1 on a breaking change."""
    settings = project_settings()
    new = _build(settings, parse)
    result = diff_plan(RegistryStore(settings.registry_dir).latest(), new)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif not result.changes:
        click.echo("No changes: the registry matches the dbt project.")
    else:
        for change in result.changes:
            click.secho(str(change), fg="red" if change.breaking else None)
        click.echo(f"{len(result.changes)} change(s), {len(result.breaking)} breaking.")
    if result.breaking and not allow_breaking:
        click.secho("Breaking changes: rerun with --allow-breaking to accept them.", fg="red", err=True)
        sys.exit(1)


@click.command()
@click.option("--allow-breaking", is_flag=True, help="Apply even if a change is breaking.")
@click.option("--online/--no-online", default=True, help="Create the online store's tables (default: on).")
@parse_option
def apply(allow_breaking: bool, online: bool, parse: bool) -> None:
    """Write the dbt project's features as a new registry version (and create online tables)."""
    settings = project_settings()
    store = RegistryStore(settings.registry_dir)
    new = _build(settings, parse)
    current = store.latest()
    result = diff_plan(current, new)
    if result.breaking and not allow_breaking:
        for change in result.breaking:
            click.secho(str(change), fg="red", err=True)
        click.secho("Refusing to apply breaking changes without --allow-breaking.", fg="red", err=True)
        sys.exit(1)
    if current is not None and same_definitions(current, new):
        applied = current
        click.echo(f"Registry unchanged (version {current.version}).")
    else:
        applied = store.write(new)
        click.echo(f"Applied registry version {applied.version}: {len(result.changes)} change(s).")
    # What the applied services use: the feature_view materialization refuses to break it.
    write_registry_contracts(applied, settings.registry_dir)
    if online and (any(v.online for v in applied.feature_views) or needs_journal(applied)):
        _ensure_online_tables(applied)


def needs_journal(registry: Registry) -> bool:
    from hindsight.online_sync.tables import needs_journal as needs

    return needs(registry)


def _ensure_online_tables(registry: Registry) -> None:
    from hindsight.online_sync.store import OnlineStoreConfig, OnlineStoreUnavailable, ensure_tables

    try:
        tables = ensure_tables(registry, OnlineStoreConfig.from_settings(project_settings()))
    except OnlineStoreUnavailable as error:
        _fail(RegistryError(f"{error} (start it with `hindsight online up`, or pass --no-online)"))
    changed = [f"{table} ({state})" for table, state in sorted(tables.items()) if state != "exists"]
    click.echo(f"Online store: {len(tables)} table(s) ready" + (f"; {', '.join(changed)}" if changed else "") + ".")


@click.group(name="registry")
def registry_group() -> None:
    """Read the applied registry."""


@registry_group.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--version", type=int, default=None, help="A past registry version.")
def list_views(as_json: bool, version: int | None) -> None:
    """List entities, feature views, on-demand views and feature services."""
    registry = _load(version)
    if as_json:
        click.echo(json.dumps(_listing(registry), indent=2))
        return
    click.echo(f"Registry version {registry.version} (applied {registry.applied_at})")
    for entity in registry.entities:
        click.echo(f"  entity        {entity.name:<30} join keys: {', '.join(entity.join_keys)}")
    views: list[FeatureView | OnDemandFeatureView] = [*registry.feature_views, *registry.on_demand_views]
    for view in views:
        click.echo(f"  {_kind(view):<13} {view.name:<30} {len(view.features)} features")
    for service in registry.feature_services:
        click.echo(f"  service       {service.name:<30} {len(service.features)} features")
    for stream in registry.stream_sources:
        fed = ", ".join(stream_feeds(registry, stream.name)) or "no views"
        click.echo(f"  stream source {stream.name:<30} {len(stream.columns)} columns, feeds {fed}")


@registry_group.command(name="show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.option("--version", type=int, default=None, help="A past registry version.")
def show(name: str, as_json: bool, version: int | None) -> None:
    """Show one feature view, on-demand view, feature service, entity or stream source."""
    registry = _load(version)
    found = _find(registry, name)
    if found is None:
        _fail(RegistryError(f"nothing named {name} in registry version {registry.version}"))
    if isinstance(found, StreamSource):
        document = stream_document(registry, found)
        if as_json:
            click.echo(json.dumps(document, indent=2))
        else:
            _print_document(document)
        return
    if as_json:
        document = view_document(found) if isinstance(found, (FeatureView, OnDemandFeatureView)) else dataclasses.asdict(found)
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        _print_document(_readable(registry, found))


def _readable(registry: Registry, found) -> dict:
    """What `registry show` prints for anything it finds: its fields, then its features."""
    if isinstance(found, (FeatureView, OnDemandFeatureView)):
        return view_document(found)
    if isinstance(found, FeatureService):
        features = []
        for ref in found.features:
            name = f"{ref} as {ref.alias}" if ref.alias else str(ref)
            views: list[FeatureView | OnDemandFeatureView] = [*registry.feature_views, *registry.on_demand_views]
            view = next((v for v in views if v.name == ref.view), None)
            feature = next((f for f in view.features if f.name == ref.feature), None) if view else None
            if feature is None:
                features.append({"name": name, "type": "?", "description": "(not in this registry version)"})
            else:
                features.append({"name": name, "type": feature.dtype, "description": feature.description})
        return {"name": found.name, "kind": "feature_service", "description": found.description, "owner": found.owner,
                "tags": list(found.tags), "file": found.original_file_path, "features": features}
    return {"name": found.name, "kind": "entity", "join_keys": list(found.join_keys), "description": found.description,
            "file": found.original_file_path}


def _print_document(document: dict) -> None:
    width = max(17, *(len(key) + 2 for key in document))  # values line up after the longest label
    for key, value in document.items():
        if key in ("features", "columns"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} ({v})" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        click.echo(f"{key + ':':<{width}}{'-' if value is None or value == '' else value}")
    if "columns" in document:
        click.echo(f"columns ({len(document['columns'])}):")
        width = max((len(c["name"]) for c in document["columns"]), default=0)
        for c in document["columns"]:
            click.echo(f"  {c['name']:<{width}}  {c['type']:<9} {c['description'] or ''}".rstrip())
    if "features" in document:
        click.echo(f"features ({len(document['features'])}):")
        width = max((len(f["name"]) for f in document["features"]), default=0)
        # Aggregation features also say what they compute: "sum(amount) over 7d".
        computed = {f["name"]: f"{f['function']}({f['input_column']}) over {f['window']}" for f in document["features"] if "function" in f}
        span = max(map(len, computed.values()), default=0)
        for f in document["features"]:
            what = f"{computed[f['name']]:<{span}}  " if computed else ""
            click.echo(f"  {f['name']:<{width}}  {f['type']:<8} {what}{f['description'] or ''}".rstrip())


def view_document(view: FeatureView | OnDemandFeatureView) -> dict:
    """The JSON shape of a view in `registry show --json`.

    An aggregation view adds `aggregation_interval` and, per feature, `function`, `input_column`
    ("*" counts events) and `window` (durations as config writes them: '7d').
    """
    features = [{"name": f.name, "type": f.dtype, "description": f.description} for f in view.features]
    if isinstance(view, OnDemandFeatureView):
        return {
            "name": view.name,
            "kind": "on_demand",
            "feature_inputs": list(view.feature_inputs),
            "request_fields": {r.name: r.dtype for r in view.request_fields},
            "function": view.function,
            "description": view.description,
            "features": features,
        }
    document = {
        "name": view.name,
        "kind": view.kind,
        "entities": list(view.join_keys),
        "entity_names": list(view.entities),
        "timestamp_field": view.timestamp_field,
        "created_field": view.created_field,
        "ttl": None if view.ttl is None else format_duration(view.ttl),
        "online": view.online,
        "delta_uri": view.delta_uri,
        "owner": view.owner,
        "tags": list(view.tags),
        "description": view.description,
        "upstream": list(view.upstream),
        "file": view.original_file_path,
        "features": features,
    }
    if view.is_aggregation:
        document = _with_aggregations(document, view)
    # Only where set, so the documents of other views keep their shape.
    if view.stream_source is not None:
        document = {**{k: v for k, v in document.items() if k != "features"}, "stream_source": view.stream_source,
                    "features": document["features"]}
    if view.push:
        document = {**{k: v for k, v in document.items() if k != "features"}, "push": True,
                    "push_partial": view.push_partial, "features": document["features"]}
    return document


def stream_feeds(registry: Registry, name: str) -> list[str]:
    """The feature views whose model reads the stream source `name` (online-fed aggregation views)."""
    return [v.name for v in registry.feature_views if v.stream_source == name]


def stream_document(registry: Registry, stream: StreamSource) -> dict:
    """The JSON shape of a stream source in `registry show --json` and `registry list --json`."""
    return {
        "name": stream.name,
        "kind": "stream_source",
        "event_id": stream.event_id_field,
        "timestamp_field": stream.timestamp_field,
        "entities": list(stream.join_keys),
        "entity_names": list(stream.entities),
        "event_log": stream.delta_uri,
        "kinesis_stream": stream.kinesis_stream,
        "feeds": stream_feeds(registry, stream.name),
        "description": stream.description,
        "file": stream.original_file_path,
        "columns": [{"name": c.name, "type": c.dtype, "description": c.description} for c in stream.columns],
    }


def _with_aggregations(document: dict, view: FeatureView) -> dict:
    """`document` with the aggregation interval after ttl, and what each feature aggregates."""
    interval = format_duration(dt.timedelta(seconds=view.aggregation_interval_seconds or 0))
    keys = list(document)
    at = keys.index("ttl") + 1
    document = {**{k: document[k] for k in keys[:at]}, "aggregation_interval": interval, **{k: document[k] for k in keys[at:]}}
    by_name = {a.name: a for a in view.aggregations}
    for feature in document["features"]:
        aggregation = by_name.get(feature["name"])
        if aggregation is not None:
            feature.update(function=aggregation.function, input_column=aggregation.column,
                           window=format_duration(dt.timedelta(seconds=aggregation.window_seconds)))
    return document


def _load(version: int | None) -> Registry:
    try:
        return load_registry(project_settings(), version=version)
    except RegistryError as error:
        _fail(error)
        raise


def _find(registry: Registry, name: str) -> FeatureView | OnDemandFeatureView | FeatureService | Entity | StreamSource | None:
    items: list[FeatureView | OnDemandFeatureView | FeatureService | Entity] = [
        *registry.feature_views, *registry.on_demand_views, *registry.feature_services, *registry.entities,
    ]
    for item in items:
        if item.name == name:
            return item
    try:
        return registry.stream_source(name)
    except KeyError:
        return None


def _kind(view: FeatureView | OnDemandFeatureView) -> str:
    return "on_demand" if isinstance(view, OnDemandFeatureView) else view.kind


def _listing(registry: Registry) -> dict:
    views: list[FeatureView | OnDemandFeatureView] = [*registry.feature_views, *registry.on_demand_views]
    return {
        "version": registry.version,
        "applied_at": registry.applied_at,
        "entities": [dataclasses.asdict(e) for e in registry.entities],
        "feature_views": [view_document(v) for v in views],
        "feature_services": [
            {"name": s.name, "description": s.description, "features": [str(r) if not r.alias else f"{r} as {r.alias}" for r in s.features]}
            for s in registry.feature_services
        ],
        "stream_sources": [stream_document(registry, s) for s in registry.stream_sources],
    }


@click.command()
@parse_option
def summary(parse: bool) -> None:
    """Summarize each feature view's Delta table: rows, entities, time range, version."""
    from hindsight.offline_store.summary import summarize

    settings = project_settings()
    registry = _build(settings, parse)
    click.echo(f"{'feature view':<30} {'rows':>10} {'entities':>9}  {'from':<19}  {'to':<19}  version")
    for view in registry.feature_views:
        s = summarize(view)
        click.echo(f"{s.view:<30} {s.rows:>10,} {s.entities:>9,}  {s.first or '-':<19}  {s.last or '-':<19}  {s.version}")
