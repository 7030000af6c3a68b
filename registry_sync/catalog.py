"""The feature catalog: dbt docs' manifest and catalog, enriched with what the registry knows.

dbt docs renders a feature view as a plain view and a feature service's features as a JSON blob.
`enrich_docs` rewrites a copy of the two files dbt docs reads (`manifest.json`, `catalog.json`) so
the same site shows:
- on each feature view's page, a card of its configuration (entities, timestamp field, ttl, online,
  aggregation interval and windows, owner, freshness expectation, Delta location) and the feature
  services that use it, with internal columns (the partition column, tile parts) marked as such;
- on each feature service's page, its features as a readable list;
- on each stream source's page (a dbt source with `meta.hindsight.stream`), a card of its event id,
  event time, entities, event log, Kinesis stream and the views it feeds; a stream-fed view's card
  links back to it;
- each on-demand view as a node of its own, in the lineage graph between the views it reads and
  the services that use it;
- on the overview page, a generated catalog of services, views, stream sources, entities and
  on-demand views.

Pure functions over dicts: `hindsight docs generate` runs dbt and writes the result beside dbt's
(never over `target/manifest.json`, which `hindsight apply` reads).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hindsight.core.durations import format_duration
from hindsight.registry_sync.model import FeatureService, FeatureView, OnDemandFeatureView, Registry, StreamSource

#: The resource type and materialization shown for an on-demand view's node.
ON_DEMAND_MATERIALIZATION = "on_demand"
#: Columns of a feature view's Delta table that are not features.
_INTERNAL_NOTE = "_Internal: {what}; not a feature._"


def enrich_docs(
    manifest: dict[str, Any],
    catalog: dict[str, Any],
    registry: Registry,
    on_demand_code: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies of dbt's manifest.json and catalog.json with the feature catalog written in.

    Args:
        manifest: dbt's manifest.json, as loaded.
        catalog: dbt's catalog.json, as loaded.
        registry: the registry the project declares (views, services, on-demand views).
        on_demand_code: on-demand view name -> its Python source, shown as the node's code.
    """
    manifest = copy.deepcopy(manifest)
    catalog = copy.deepcopy(catalog)
    project = manifest["metadata"].get("project_name") or registry.project
    view_ids = _view_ids(manifest, registry)
    users = _services_by_view(registry)
    for view in registry.feature_views:
        node_id = view_ids.get(view.name)
        if node_id is None:
            continue
        node = manifest["nodes"][node_id]
        node["description"] = _join(view_card(view, users.get(view.name, ()), registry), node.get("description"))
        _mark_internal_columns(node, catalog.get("nodes", {}).get(node_id), view)
        metadata = (catalog.get("nodes", {}).get(node_id) or {}).get("metadata")
        if metadata is not None:
            # dbt docs shows the warehouse's relation type ("view": the view over the Delta table).
            metadata["type"] = "aggregation feature view (Delta)" if view.is_aggregation else "feature view (Delta)"
    for odfv in registry.on_demand_views:
        node_id = f"model.{project}.{odfv.name}"
        view_ids[odfv.name] = node_id
        manifest["nodes"][node_id] = on_demand_node(
            odfv, project, view_ids, users.get(odfv.name, ()), (on_demand_code or {}).get(odfv.name, "")
        )
        _link(manifest, node_id, manifest["nodes"][node_id]["depends_on"]["nodes"])
    for service in registry.feature_services:
        exposure_id = f"exposure.{project}.{service.name}"
        exposure = manifest.get("exposures", {}).get(exposure_id)
        if exposure is None:
            continue
        exposure["description"] = _join(exposure.get("description"), service_card(service, registry))
        # The list above replaces the raw `meta.hindsight` JSON dbt docs would show.
        for holder in (exposure, exposure.get("config") or {}):
            if isinstance(holder.get("meta"), dict):
                holder["meta"] = {k: v for k, v in holder["meta"].items() if k != "hindsight"}
        readable = [view_ids[v] for v in dict.fromkeys(ref.view for ref in service.features) if v in view_ids]
        exposure["depends_on"]["nodes"] = list(dict.fromkeys([*exposure["depends_on"].get("nodes", []), *readable]))
        _link(manifest, exposure_id, exposure["depends_on"]["nodes"])
    for stream in registry.stream_sources:
        source = manifest.get("sources", {}).get(stream.unique_id)
        if source is None:
            continue
        source["description"] = _join(stream_card(stream, registry, view_ids), source.get("description"))
        metadata = (catalog.get("sources", {}).get(stream.unique_id) or {}).get("metadata")
        if metadata is not None:
            metadata["type"] = "stream source (Delta event log)"
    _set_overview(manifest, project, overview(registry, view_ids))
    return manifest, catalog


# -- stream sources --------------------------------------------------------------------------------


def stream_card(stream: StreamSource, registry: Registry, view_ids: Mapping[str, str]) -> str:
    """The markdown card at the top of a stream source's page."""
    entities = ", ".join(
        f"{name} (`{'`, `'.join(_entity_keys(registry, name))}`)" for name in stream.entities
    )
    fed = [v.name for v in registry.feature_views if v.stream_source == stream.name]
    feeds = ", ".join(f"[{name}](#!/model/{view_ids[name]})" if name in view_ids else name for name in fed)
    rows = [
        ("Kind", "stream source (events arrive one by one: Kinesis, POST /v1/ingest, hindsight.ingest)"),
        ("Event id", f"`{stream.event_id_field}` (a redelivered event is counted once)"),
        ("Event time", f"`{stream.timestamp_field}`"),
        ("Entities", entities),
        ("Event log", f"`{stream.delta_uri}` (Delta)"),
        ("Kinesis stream", f"`{stream.kinesis_stream}`" if stream.kinesis_stream else "none (ingest API only)"),
        ("Feeds", feeds or "no feature view yet"),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| **{k}** | {v} |" for k, v in rows)])


def _entity_keys(registry: Registry, entity: str) -> tuple[str, ...]:
    try:
        return registry.entity(entity).join_keys
    except KeyError:
        return ()


# -- feature views ---------------------------------------------------------------------------------


def view_card(view: FeatureView, services: tuple[str, ...], registry: Registry) -> str:
    """The markdown card at the top of a feature view's page."""
    entities = ", ".join(
        f"{name} (`{'`, `'.join(_join_keys(registry, name, view))}`)" for name in view.entities
    ) or ", ".join(f"`{k}`" for k in view.join_keys)
    rows = [
        ("Kind", "aggregation feature view" if view.is_aggregation else "feature view"),
        ("Entities", entities),
        ("Timestamp field", f"`{view.timestamp_field}`"),
    ]
    if view.created_field:
        rows.append(("Created field", f"`{view.created_field}`"))
    if view.is_aggregation and view.aggregation_interval_seconds:
        windows = sorted({a.window_seconds for a in view.aggregations})
        rows.append(("Aggregation interval", _duration(view.aggregation_interval_seconds)))
        rows.append(("Windows", ", ".join(_duration(w) for w in windows)))
    else:
        rows.append(("TTL", _duration(view.ttl_seconds) if view.ttl_seconds is not None else "none (never stale)"))
    if view.stream_source:
        stream = next((st for st in registry.stream_sources if st.name == view.stream_source), None)
        target = f"[{view.stream_source}](#!/source/{stream.unique_id})" if stream and stream.unique_id else view.stream_source
        rows.append(("Stream source", f"{target} (online tiles updated as each event is ingested)"))
    rows.append(("Online", "yes (synced to DynamoDB)" if view.online else "no (offline only)"))
    if view.push:
        rows.append(("Push", "yes, a push may carry a subset of the features" if view.push_partial else "yes (whole rows)"))
    freshness = getattr(view, "freshness_seconds", None) or getattr(view, "expected_freshness_seconds", None)
    if freshness:
        rows.append(("Freshness expectation", f"newer than {_duration(freshness)}"))
    rows.append(("Owner", view.owner or "not set (config meta.owner)"))
    rows.append(("Delta location", f"`{view.delta_uri}`"))
    used = ", ".join(f"[{s}](#!/exposure/exposure.{registry.project}.{s})" for s in services) or "none yet"
    rows.append(("Feature services", used))
    table = ["| | |", "|---|---|", *(f"| **{k}** | {v} |" for k, v in rows)]
    if view.is_aggregation:
        table += ["", "| Feature | Function | Input | Window |", "|---|---|---|---|"]
        table += [
            f"| `{a.name}` | {a.function} | {'every event' if a.column == '*' else f'`{a.column}`'} | "
            f"{_duration(a.window_seconds)} |"
            for a in view.aggregations
        ]
    return "\n".join(table)


def _mark_internal_columns(node: dict[str, Any], catalog_node: dict[str, Any] | None, view: FeatureView) -> None:
    """Describe the Delta table's columns that are not features (dbt docs lists them from the catalog)."""
    internal = dict.fromkeys(view.partition_columns, "the Delta table's partition column")
    if view.is_aggregation:
        features = {f.name for f in view.features}
        keys = {*view.join_keys, view.timestamp_field}
        present = (catalog_node or {}).get("columns", {})
        for name in present:
            if name not in features and name not in keys and name not in internal:
                internal[name] = "a tile part that aggregation features are computed from"
    columns = node.setdefault("columns", {})
    for name, what in internal.items():
        entry = columns.setdefault(name, {"name": name, "description": "", "meta": {}, "data_type": None,
                                          "constraints": [], "quote": None, "tags": []})
        entry["description"] = _INTERNAL_NOTE.format(what=what)
        entry["tags"] = list(dict.fromkeys([*entry.get("tags", []), "internal"]))


# -- feature services ------------------------------------------------------------------------------


def service_card(service: FeatureService, registry: Registry) -> str:
    """The readable feature list on a feature service's page."""
    lines = [f"**Features** ({len(service.features)}):", ""]
    for ref in service.features:
        try:
            view = registry.view(ref.view)
            feature = next(f for f in view.features if f.name == ref.feature)
            detail = f" ({feature.dtype}): {feature.description}" if feature.description else f" ({feature.dtype})"
        except (KeyError, StopIteration):
            detail = ""
        alias = f" as `{ref.alias}`" if ref.alias else ""
        lines.append(f"- `{ref.view}:{ref.feature}`{alias}{detail}")
    return "\n".join(lines)


# -- on-demand views -------------------------------------------------------------------------------


def on_demand_node(
    odfv: OnDemandFeatureView, project: str, view_ids: Mapping[str, str], services: tuple[str, ...], code: str
) -> dict[str, Any]:
    """A manifest node that shows an on-demand view in dbt docs and its lineage graph."""
    inputs = [text.split(":", 1)[0] for text in odfv.feature_inputs]
    parents = [view_ids[v] for v in dict.fromkeys(inputs) if v in view_ids]
    rows = [
        ("Kind", "on-demand feature view (Python, run at read time by serving and training sets)"),
        ("Function", f"`{odfv.function}`"),
        ("Reads", ", ".join(f"`{t}`" for t in odfv.feature_inputs) or "no stored features"),
        ("Request fields", ", ".join(f"`{r.name}` ({r.dtype})" for r in odfv.request_fields) or "none"),
        ("Owner", odfv.owner or "not set"),
        ("Feature services", ", ".join(f"[{s}](#!/exposure/exposure.{project}.{s})" for s in services) or "none yet"),
    ]
    card = "\n".join(["| | |", "|---|---|", *(f"| **{k}** | {v} |" for k, v in rows)])
    module = odfv.function.split(":", 1)[0]
    path = module.replace(".", "/") + ".py"
    return {
        "name": odfv.name,
        "resource_type": "model",
        "package_name": project,
        "path": path,
        "original_file_path": path,
        "unique_id": f"model.{project}.{odfv.name}",
        "fqn": [project, "on_demand", odfv.name],
        "alias": odfv.name,
        "database": None,
        "schema": None,
        "relation_name": None,
        "language": "python",
        "raw_code": code or f"# {odfv.function}",
        "compiled_code": code or f"# {odfv.function}",
        "description": _join(card, odfv.description),
        "columns": {
            f.name: {"name": f.name, "description": f.description, "meta": {}, "data_type": f.dtype,
                     "constraints": [], "quote": None, "tags": []}
            for f in odfv.features
        },
        "meta": {},
        "tags": list(odfv.tags),
        "config": {"enabled": True, "materialized": ON_DEMAND_MATERIALIZATION, "tags": list(odfv.tags),
                   "meta": {}, "docs": {"show": True, "node_color": None}},
        "docs": {"show": True, "node_color": None},
        "depends_on": {"nodes": parents, "macros": []},
        "refs": [],
        "sources": [],
        "checksum": {"name": "none", "checksum": ""},
        "patch_path": None,
        "build_path": None,
        "unrendered_config": {},
        "created_at": 0,
    }


# -- overview --------------------------------------------------------------------------------------


def overview(registry: Registry, view_ids: Mapping[str, str]) -> str:
    """The markdown of the docs site's front page: the feature catalog."""

    def link(name: str) -> str:
        return f"[{name}](#!/model/{view_ids[name]})" if name in view_ids else name

    lines = [f"# Feature catalog: {registry.project}", ""]
    lines += [
        "Features are dbt models materialized as Delta tables; feature services are dbt exposures of "
        "type `ml`. Each page shows a view's configuration; lineage shows where features come from "
        "and who uses them.",
        "",
        f"## Feature services ({len(registry.feature_services)})",
        "",
        "| Service | Features | Owner | Description |",
        "|---|---|---|---|",
    ]
    for s in registry.feature_services:
        target = f"[{s.name}](#!/exposure/exposure.{registry.project}.{s.name})"
        lines.append(f"| {target} | {len(s.features)} | {s.owner or ''} | {_one_line(s.description)} |")
    lines += ["", f"## Feature views ({len(registry.feature_views)})", "",
              "| View | Entities | Features | Online | Window / TTL | Freshness | Owner |",
              "|---|---|---|---|---|---|---|"]
    for v in registry.feature_views:
        if v.is_aggregation and v.aggregation_interval_seconds:
            span = "windows " + ", ".join(_duration(w) for w in sorted({a.window_seconds for a in v.aggregations}))
        else:
            span = f"ttl {_duration(v.ttl_seconds)}" if v.ttl_seconds is not None else "no ttl"
        freshness = getattr(v, "freshness_seconds", None) or getattr(v, "expected_freshness_seconds", None)
        lines.append(
            f"| {link(v.name)} | {', '.join(v.entities)} | {len(v.features)} | {'yes' if v.online else 'no'} | "
            f"{span} | {_duration(freshness) if freshness else ''} | {v.owner or ''} |"
        )
    if registry.stream_sources:
        lines += ["", f"## Stream sources ({len(registry.stream_sources)})", "",
                  "| Source | Event id | Event time | Entities | Feeds | Kinesis stream |", "|---|---|---|---|---|---|"]
        for st in registry.stream_sources:
            target = f"[{st.name}](#!/source/{st.unique_id})" if st.unique_id else st.name
            fed = ", ".join(link(v.name) for v in registry.feature_views if v.stream_source == st.name)
            lines.append(
                f"| {target} | `{st.event_id_field}` | `{st.timestamp_field}` | {', '.join(st.entities)} | {fed} | "
                f"{st.kinesis_stream or ''} |"
            )
    lines += ["", f"## On-demand views ({len(registry.on_demand_views)})", "",
              "| View | Reads | Request fields | Outputs |", "|---|---|---|---|"]
    for o in registry.on_demand_views:
        lines.append(
            f"| {link(o.name)} | {', '.join(o.feature_inputs)} | {', '.join(r.name for r in o.request_fields)} | "
            f"{', '.join(f.name for f in o.features)} |"
        )
    lines += ["", f"## Entities ({len(registry.entities)})", "", "| Entity | Join keys | Description |", "|---|---|---|"]
    for e in registry.entities:
        lines.append(f"| {e.name} | {', '.join(f'`{k}`' for k in e.join_keys)} | {_one_line(e.description)} |")
    return "\n".join(lines) + "\n"


def _set_overview(manifest: dict[str, Any], project: str, text: str) -> None:
    """Replace dbt's welcome text (and the project's own overview, if it has none of its own)."""
    docs = manifest.setdefault("docs", {})
    for doc_id, package in ((f"doc.{project}.__overview__", project), ("doc.dbt.__overview__", "dbt")):
        entry = docs.get(doc_id)
        if entry is None:
            entry = docs[doc_id] = {"name": "__overview__", "resource_type": "doc", "package_name": package,
                                    "path": "overview.md", "original_file_path": "overview.md",
                                    "unique_id": doc_id}
        elif package == project:
            continue  # the project wrote its own overview: keep it
        entry["block_contents"] = text


# -- helpers ---------------------------------------------------------------------------------------


def _view_ids(manifest: dict[str, Any], registry: Registry) -> dict[str, str]:
    names = {v.name for v in registry.feature_views}
    return {
        node["name"]: node_id
        for node_id, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") == "model" and node.get("name") in names
    }


def _services_by_view(registry: Registry) -> dict[str, tuple[str, ...]]:
    users: dict[str, list[str]] = {}
    for service in registry.feature_services:
        for view in dict.fromkeys(ref.view for ref in service.features):
            users.setdefault(view, []).append(service.name)
        for ref in service.features:
            odfv = next((o for o in registry.on_demand_views if o.name == ref.view), None)
            for text in odfv.feature_inputs if odfv else ():
                source = text.split(":", 1)[0]
                if service.name not in users.setdefault(source, []):
                    users[source].append(service.name)
    return {k: tuple(v) for k, v in users.items()}


def _join_keys(registry: Registry, entity: str, view: FeatureView) -> tuple[str, ...]:
    try:
        return registry.entity(entity).join_keys
    except KeyError:
        return view.join_keys


def _link(manifest: dict[str, Any], child: str, parents: list[str]) -> None:
    parent_map = manifest.setdefault("parent_map", {})
    child_map = manifest.setdefault("child_map", {})
    parent_map[child] = list(dict.fromkeys([*parent_map.get(child, []), *parents]))
    child_map.setdefault(child, [])
    for parent in parents:
        child_map[parent] = list(dict.fromkeys([*child_map.get(parent, []), child]))


def _duration(seconds: int | None) -> str:
    import datetime as dt

    return "" if seconds is None else format_duration(dt.timedelta(seconds=seconds))


def _join(*parts: str | None) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _one_line(text: str) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")
