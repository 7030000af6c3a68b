"""Build a `Registry` from dbt's manifest.json and the Delta tables' schemas.

Where each object is declared (all visible in dbt docs):
- entities: `meta.hindsight.entity` of a source table (or model) that describes the entity,
  e.g. `{name: user, join_keys: [user_id], description: ...}`;
- feature views: models materialized as `feature_view` (their config keys, description, columns);
  feature types come from the Delta table's schema; with `aggregation_interval` in the config, an
  aggregation view whose features are its declared aggregations (`registry_sync.aggregations`);
  data quality expectations from `config.meta.hindsight.expectations` (registry_sync.expectations);
- feature services: exposures of type `ml` listing `meta.hindsight.features`
  (`view:feature`, `view:*`, or `{feature: view:feature, alias: name}`);
- on-demand feature views: Python functions the caller discovered and hands in (the CLI does;
  `registry_sync` never imports user code).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import pyarrow as pa

from hindsight.core.durations import parse_duration
from hindsight.core.suggest import did_you_mean
from hindsight.offline_store.derived_partition import DEFAULT as DEFAULT_PARTITION
from hindsight.offline_store.derived_partition import derived_partition_in
from hindsight.offline_store.event_log import PROCESSING_RANGE_END, PROCESSING_RANGE_START, event_log_uri
from hindsight.offline_store.pushed_rows import PUSHED_AT
from hindsight.offline_store.tables import partitioning_mismatch
from hindsight.offline_store.uris import absolute_uri
from hindsight.registry_sync import aggregations, streams
from hindsight.registry_sync.errors import DefinitionErrors, RegistryError
from hindsight.registry_sync.expectations import expectations_of
from hindsight.registry_sync.model import (
    Entity,
    Feature,
    FeatureRef,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    Registry,
    StreamSource,
)
from hindsight.registry_sync.types import arrow_type_name

SchemaReader = Callable[[str], "pa.Schema | None"]
#: unique ids of models -> their compiled SQL (registry_sync.dbt_project.compile_models).
ModelCompiler = Callable[[list[str]], dict[str, str]]


def load_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RegistryError(f"no dbt manifest at {path}: run `dbt build` (or `dbt parse`) first")
    return json.loads(path.read_text())


def registry_from_manifest(
    manifest: dict[str, Any],
    read_schema: SchemaReader | None = None,
    on_demand_views: Iterable[OnDemandFeatureView] = (),
    offline_store: str = "data/offline_store",
    project_dir: Path | None = None,
    compile_models: ModelCompiler | None = None,
) -> Registry:
    """Translate the manifest into a Registry, or raise DefinitionErrors listing every problem.

    `offline_store` is the project's Delta root (hindsight.yml), the folder of every view that sets
    no `location_root`/`location`; relative paths resolve against `project_dir` (default: the
    working directory), where dbt wrote them. Stream-fed views whose node has no compiled SQL in
    the manifest (after `dbt parse`) get it from `compile_models`; without one they are refused.
    """
    problems: list[str] = []
    read_schema = read_schema or delta_schema
    project_dir = project_dir or Path.cwd()

    def uri_of(node: dict[str, Any]) -> str:
        return _delta_uri(node, offline_store, project_dir)
    entities = _entities(manifest, problems)

    def log_uri(source: str, table: str, location: str | None) -> str:
        return event_log_uri(offline_store, source, table, location, base=project_dir)
    stream_list = streams.stream_sources(manifest, entities, log_uri, problems)
    by_name = {s.name: s for s in stream_list}
    nodes = _feature_view_nodes(manifest)
    views = [
        view for node in nodes
        if (view := _feature_view(node, entities, read_schema, problems, uri_of, by_name)) is not None
    ]
    views = _with_stream_sql(views, manifest, compile_models, problems)
    # A view that could not be read has its own problem listed; services naming it add nothing.
    unreadable = {node["name"] for node in nodes} - {view.name for view in views}
    odfvs = tuple(on_demand_views)
    _check_on_demand_inputs(odfvs, views, problems)
    services = _services(manifest, views, odfvs, problems, unreadable)
    if problems:
        raise DefinitionErrors(problems)
    return Registry(
        project=manifest["metadata"].get("project_name") or "hindsight",
        entities=tuple(sorted(entities.values(), key=lambda e: e.name)),
        feature_views=tuple(sorted(views, key=lambda v: v.name)),
        on_demand_views=tuple(sorted(odfvs, key=lambda v: v.name)),
        feature_services=tuple(sorted(services, key=lambda s: s.name)),
        stream_sources=tuple(stream_list),
        manifest_generated_at=manifest["metadata"].get("generated_at"),
    )


#: Schema metadata key under which `delta_schema` records the table's partition columns (JSON).
PARTITION_COLUMNS_KEY = b"hindsight.partition_columns"


def delta_schema(uri: str) -> pa.Schema | None:
    """The Arrow schema of a Delta table, or None if there is no table there yet.

    Its metadata records the table's partition columns (PARTITION_COLUMNS_KEY), which the Arrow
    schema alone does not say.
    """
    from hindsight.offline_store.tables import open_table
    from deltalake.exceptions import TableNotFoundError

    try:
        table = open_table(uri)
    except TableNotFoundError:
        return None
    partitioned = json.dumps(list(table.metadata().partition_columns)).encode()
    return pa.schema(table.schema().to_arrow()).with_metadata({PARTITION_COLUMNS_KEY: partitioned})


def _check_partitioning(schema: pa.Schema, configured: list[str], name: str, where: str, problems: list[str]) -> None:
    """A table partitioned otherwise than its config says (offline_store.tables.partitioning_mismatch)."""
    recorded = (schema.metadata or {}).get(PARTITION_COLUMNS_KEY)
    problem = None if recorded is None else partitioning_mismatch(name, json.loads(recorded), configured)
    if problem is not None:
        problems.append(f"{where}: {problem}")


def _entities(manifest: dict[str, Any], problems: list[str]) -> dict[str, Entity]:
    found: dict[str, Entity] = {}
    for node in [*manifest.get("sources", {}).values(), *manifest.get("nodes", {}).values()]:
        declared = ((node.get("meta") or {}).get("hindsight") or {}).get("entity")
        if not declared:
            continue
        where = f"{node.get('unique_id')} ({node.get('original_file_path')})"
        name = declared.get("name")
        keys = declared.get("join_keys") or []
        if isinstance(keys, str):
            keys = [keys]
        if not name:
            problems.append(f"{where}: meta.hindsight.entity needs a name")
            continue
        if not keys:
            problems.append(f"entity {name} in {where} has no join_keys")
            continue
        if name in found:
            problems.append(f"entity {name} is declared twice: {found[name].original_file_path} and {where}")
            continue
        found[name] = Entity(
            name=name,
            join_keys=tuple(keys),
            description=declared.get("description") or node.get("description", ""),
            original_file_path=node.get("original_file_path", ""),
        )
    return found


def _feature_view_nodes(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = manifest.get("nodes", {}).values()
    return [
        n for n in nodes
        if n.get("resource_type") == "model" and n.get("config", {}).get("materialized") == "feature_view"
        and n.get("config", {}).get("enabled", True)
    ]


def _feature_view(
    node: dict[str, Any],
    entities: dict[str, Entity],
    read_schema: SchemaReader,
    problems: list[str],
    uri_of: Callable[[dict[str, Any]], str],
    stream_sources: dict[str, StreamSource] | None = None,
) -> FeatureView | None:
    config = node["config"]
    name = node["name"]
    where = f"feature view {name} ({node['original_file_path']})"
    keys = config.get("entities") or []
    keys = [keys] if isinstance(keys, str) else list(keys)
    timestamp_field = config.get("timestamp_field")
    if not keys or not timestamp_field:
        problems.append(f"{where}: config needs entities and timestamp_field")
        return None
    if aggregations.is_aggregation_config(config):
        spec = aggregations.parse_spec(config, where, problems)
        if spec is None:
            return None
    elif not aggregations.check_batch_config(config, where, problems):
        return None
    else:
        spec = None
    push, push_partial = _push_config(config, spec is not None, where, problems)
    stream_source = None if spec is None else streams.stream_source_of(node, stream_sources or {}, where, problems)
    ttl_seconds = _ttl_seconds(config.get("ttl"), where, problems)
    freshness_seconds, freshness_source = expected_freshness(config, ttl_seconds, where, problems)
    view_entities = _entities_of(keys, entities, where, problems)
    uri = uri_of(node)
    schema = read_schema(uri)
    if schema is None:
        problems.append(f"{where}: no Delta table at {uri}; run `dbt build --select {name}` first")
        return None
    created_field = config.get("created_field")
    partition_columns = partition_columns_of(config.get("partition_by"), schema.names)
    _check_partitioning(schema, partition_columns, name, where, problems)
    for column in [*keys, timestamp_field, *([created_field] if created_field else [])]:
        if column not in schema.names:
            problems.append(f"{where}: column {column} (from its config) is not in the Delta table ({', '.join(schema.names)})")
    # PUSHED_AT marks a push view's pushed rows (offline_store.pushed_rows): a column, not a feature.
    not_features = {*keys, timestamp_field, created_field, *partition_columns, PUSHED_AT}
    docs = node.get("columns") or {}
    if spec is not None:
        rebuild = f"rebuild it: `dbt build --select {name} --full-refresh`"
        features = aggregations.features(spec, schema, docs, where, rebuild, problems)
    else:
        features = tuple(
            Feature(name=f.name, dtype=arrow_type_name(f.type), description=(docs.get(f.name) or {}).get("description", ""))
            for f in schema
            if f.name not in not_features
        )
    return FeatureView(
        name=name,
        kind="batch" if spec is None else "aggregation",
        entities=view_entities,
        join_keys=tuple(keys),
        join_key_dtypes=tuple(arrow_type_name(schema.field(k).type) if k in schema.names else "" for k in keys),
        timestamp_field=timestamp_field,
        created_field=created_field,
        ttl_seconds=ttl_seconds,
        expected_freshness_seconds=freshness_seconds,
        expected_freshness_source=freshness_source,
        online=bool(config.get("online", False)),
        delta_uri=uri,
        features=features,
        description=(node.get("description") or "").strip(),
        owner=str((config.get("meta") or {}).get("owner") or ""),
        tags=tuple(config.get("tags") or ()),
        partition_columns=tuple(partition_columns),
        upstream=tuple(node.get("depends_on", {}).get("nodes", ())),
        unique_id=node["unique_id"],
        original_file_path=node["original_file_path"],
        aggregation_interval_seconds=None if spec is None else spec.interval_seconds,
        aggregations=() if spec is None else spec.aggregations,
        expectations=expectations_of(config, schema.names, where, problems),
        stream_source=stream_source,
        push=push,
        push_partial=push_partial,
    )


def _push_config(config: dict[str, Any], is_aggregation: bool, where: str, problems: list[str]) -> tuple[bool, bool]:
    """The `push` and `push_partial` config keys: booleans; push only on batch views."""
    values = {}
    for key in ("push", "push_partial"):
        value = config.get(key, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            problems.append(f"{where}: config '{key}' must be true or false, got {value!r}")
            value = False
        values[key] = value
    push, push_partial = values["push"], values["push_partial"]
    if push and is_aggregation:
        problems.append(
            f"{where}: config push=true is not accepted on an aggregation view (its rows are tiles of events); "
            "declare a stream source for its events (meta.hindsight.stream) and ingest them, or remove push"
        )
        return False, False
    if push_partial and not push:
        problems.append(f"{where}: config push_partial=true needs push=true (it lets a push carry a subset of the features)")
        return push, False
    return push, push_partial


def without_processing_range(sql: str) -> str:
    """`sql` with every processing-range predicate (between its marker comments) made `(1 = 1)`.

    The range is a property of one dbt run, not of the view: without it, the stored SQL is the
    same after every build, so a registry version changes only when the model does.

    >>> without_processing_range("where /* hindsight:processing_range */ (ts >= x) /* hindsight:processing_range_end */")
    'where /* hindsight:processing_range */ (1 = 1) /* hindsight:processing_range_end */'
    """
    span = re.compile(re.escape(PROCESSING_RANGE_START) + ".*?" + re.escape(PROCESSING_RANGE_END), re.DOTALL)
    return span.sub(f"{PROCESSING_RANGE_START} (1 = 1) {PROCESSING_RANGE_END}", sql)


def _with_stream_sql(
    views: list[FeatureView], manifest: dict[str, Any], compile_models: ModelCompiler | None, problems: list[str]
) -> list[FeatureView]:
    """Stream-fed views with their model's compiled SQL, and the dialect (the adapter) it is in.

    The manifest has it after `dbt build`/`dbt compile`; after `dbt parse` it has not, and the
    views that need it are compiled in one call to `compile_models`.
    """
    fed = [v for v in views if v.stream_source is not None]
    if not fed:
        return views
    nodes = manifest.get("nodes", {})
    compiled = {v.unique_id: code for v in fed if (code := (nodes.get(v.unique_id) or {}).get("compiled_code"))}
    missing = [v.unique_id for v in fed if v.unique_id not in compiled]
    if missing and compile_models is not None:
        compiled.update(compile_models(missing))
    dialect = str(manifest["metadata"].get("adapter_type") or "duckdb")
    out = []
    for view in views:
        if view.stream_source is not None:
            code = compiled.get(view.unique_id)
            if not code:
                problems.append(
                    f"feature view {view.name} ({view.original_file_path}): no compiled SQL for this stream-fed view; "
                    f"run `dbt compile --select {view.name}` (or `dbt build`) first"
                )
                continue
            view = dataclasses.replace(view, stream_sql=without_processing_range(code), stream_sql_dialect=dialect)
        out.append(view)
    return out


def _ttl_seconds(ttl: Any, where: str, problems: list[str]) -> int | None:
    if ttl in (None, ""):
        return None
    try:
        return int(parse_duration(str(ttl)).total_seconds())
    except ValueError as error:
        problems.append(f"{where}: ttl {error}")
        return None


#: dbt's model freshness periods (config freshness.build_after.period), in seconds.
_PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def expected_freshness(config: dict[str, Any], ttl_seconds: int | None, where: str, problems: list[str]) -> tuple[int | None, str]:
    """(seconds, source) of a view's freshness expectation.

    The `expected_freshness` config wins; else twice dbt's own `freshness.build_after` (the
    schedule the view is built on: one missed run is tolerated, two are not); else the ttl (beyond
    it every online value of the view is EXPIRED); else none.

    >>> expected_freshness({"freshness": {"build_after": {"count": 6, "period": "hour"}}}, 86400, "v", [])
    (43200, 'schedule')
    >>> expected_freshness({"expected_freshness": "1d"}, None, "v", [])
    (86400, 'config')
    >>> expected_freshness({}, 172800, "v", [])
    (172800, 'ttl')
    """
    declared = config.get("expected_freshness")
    if declared not in (None, ""):
        try:
            return int(parse_duration(str(declared)).total_seconds()), "config"
        except ValueError as error:
            problems.append(f"{where}: expected_freshness {error}")
            return None, ""
    build_after = (config.get("freshness") or {}).get("build_after") or {}
    count, period = build_after.get("count"), build_after.get("period")
    if isinstance(count, int) and count > 0 and period in _PERIOD_SECONDS:
        return 2 * count * _PERIOD_SECONDS[period], "schedule"
    if ttl_seconds is not None:
        return ttl_seconds, "ttl"
    return None, ""


def _entities_of(keys: list[str], entities: dict[str, Entity], where: str, problems: list[str]) -> tuple[str, ...]:
    """The declared entities whose join keys the view carries; every key must belong to one."""
    matched = [e for e in entities.values() if set(e.join_keys) <= set(keys)]
    covered = {k for e in matched for k in e.join_keys}
    for key in keys:
        if key not in covered:
            declared = ", ".join(f"{e.name} [{', '.join(e.join_keys)}]" for e in entities.values()) or "none"
            problems.append(
                f"{where}: entity column {key} is not a join key of any declared entity (declared: "
                f"{declared}); declare one in the meta.hindsight.entity of a source or a seed"
            )
    return tuple(e.name for e in sorted(matched, key=lambda e: keys.index(e.join_keys[0])))


def _delta_uri(node: dict[str, Any], offline_store: str, project_dir: Path) -> str:
    """Where the feature_view materialization wrote the view: its location, else <root>/<alias>,
    the root being `location_root` or the project's offline store (feature_view_config.sql)."""
    config = node["config"]
    location = delta_location(config.get("location"), config.get("location_root") or offline_store,
                              node.get("alias") or node["name"])
    # dbt runs in the project folder, so the plugin that wrote the table resolved it from there.
    return absolute_uri(location, base=project_dir)


def delta_location(location: str | None, location_root: str | None, identifier: str) -> str:
    """Where the materialization wrote a view's Delta table (macros/.../feature_view_location.sql).

    >>> delta_location(None, "data/offline_store/", "user_profile")
    'data/offline_store/user_profile'

    Raises:
        ValueError: neither `location` nor `location_root` is set.
    """
    if location:
        return location
    if not location_root:
        raise ValueError("no Delta location: set location_root (dbt_project.yml sets it for models/features) or location.")
    return f"{location_root.rstrip('/')}/{identifier}"


def partition_columns_of(partition_by: str | list[str] | None, columns: Iterable[str] = ()) -> list[str]:
    """A view's Delta partition columns (macros/.../feature_view_partition_by.sql): not features.

    Without partition_by, the column derived from the event time: the one the table has
    (`columns`; its grain is chosen at a full build, offline_store.derived_partition), else the default.

    >>> partition_columns_of(None)
    ['_partition_date']
    >>> partition_columns_of(None, ["user_id", "ts", "_partition_month"])
    ['_partition_month']
    """
    if partition_by is None:
        return [derived_partition_in(columns) or DEFAULT_PARTITION]
    return [partition_by] if isinstance(partition_by, str) else list(partition_by)


def _check_on_demand_inputs(odfvs: tuple[OnDemandFeatureView, ...], views: list[FeatureView], problems: list[str]) -> None:
    by_name = {v.name: v for v in views}
    for odfv in odfvs:
        for ref in odfv.feature_inputs:
            parsed = FeatureRef.parse(ref)
            view = by_name.get(parsed.view)
            if view is None or parsed.feature not in {f.name for f in view.features}:
                problems.append(f"on-demand view {odfv.name} ({odfv.function}): input {ref} is not a feature of any feature view")


def _services(
    manifest: dict[str, Any],
    views: list[FeatureView],
    odfvs: tuple[OnDemandFeatureView, ...],
    problems: list[str],
    unreadable: AbstractSet[str] = frozenset(),
) -> list[FeatureService]:
    every: list[FeatureView | OnDemandFeatureView] = [*views, *odfvs]
    catalog = {v.name: [f.name for f in v.features] for v in every}
    services = []
    for exposure in manifest.get("exposures", {}).values():
        declared = (exposure.get("meta") or {}).get("hindsight")
        if declared is None:
            continue
        where = f"feature service {exposure['name']} ({exposure.get('original_file_path')})"
        if not _service_declaration_ok(exposure, declared, where, problems):
            continue
        listed = declared["features"]
        refs = _service_refs(listed, catalog, where, problems, unreadable, _other_models(manifest))
        _check_collisions(refs, where, problems)
        owner = exposure.get("owner") or {}
        services.append(
            FeatureService(
                name=exposure["name"],
                features=tuple(refs),
                description=(exposure.get("description") or "").strip(),
                owner=str(owner.get("email") or owner.get("name") or ""),
                tags=tuple(exposure.get("tags") or ()),
                original_file_path=exposure.get("original_file_path", ""),
            )
        )
    return services


#: The keys of an exposure's `meta.hindsight`, and of one entry of its `features` list.
SERVICE_KEYS = ("features",)
SERVICE_FEATURE_KEYS = ("feature", "alias")


def _service_declaration_ok(exposure: dict[str, Any], declared: Any, where: str, problems: list[str]) -> bool:
    """Whether `meta.hindsight` declares a feature service; every problem is recorded, none skipped."""
    if not isinstance(declared, dict):
        problems.append(f"{where}: meta.hindsight must be a mapping with the key features, got {declared!r}")
        return False
    unknown = [key for key in declared if key not in SERVICE_KEYS]
    for key in unknown:
        problems.append(
            f"{where}: unknown key '{key}' in meta.hindsight{did_you_mean(key, SERVICE_KEYS)}; accepted: {', '.join(SERVICE_KEYS)}"
        )
    if exposure.get("type") != "ml":
        problems.append(
            f"{where}: meta.hindsight declares a feature service, but the exposure's type is {exposure.get('type')!r}; "
            "feature services are exposures of type ml"
        )
        return False
    if unknown:
        return False
    if "features" not in declared:
        problems.append(f"{where}: meta.hindsight needs features: a list of view:feature, view:* or {{feature: view:feature, alias: name}}")
        return False
    return True


def _other_models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Models that are not feature views, by name: a service naming one gets told how to make it one."""
    return {
        node["name"]: node for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model" and (node.get("config") or {}).get("materialized") != "feature_view"
    }


def _not_a_feature_view(node: dict[str, Any]) -> str:
    """Why a model a service names is no feature view, and the fix."""
    materialized = (node.get("config") or {}).get("materialized")
    return (
        f": model {node['name']} ({node.get('original_file_path')}) is materialized as {materialized!r}, not "
        f"'feature_view'; set materialized='feature_view' in its config(), or +materialized: feature_view for "
        f"its folder in dbt_project.yml (with +on_schema_change: fail, as `hindsight init` sets for models/features)"
    )


def _service_refs(
    listed: Any, catalog: dict[str, list[str]], where: str, problems: list[str], unreadable: AbstractSet[str] = frozenset(),
    other_models: Mapping[str, dict[str, Any]] | None = None,
) -> list[FeatureRef]:
    refs: list[FeatureRef] = []
    for item in listed if isinstance(listed, list) else [listed]:
        if isinstance(item, dict) and (unknown := [k for k in item if k not in SERVICE_FEATURE_KEYS]):
            for key in unknown:
                problems.append(
                    f"{where}: unknown key '{key}' in the features entry {item}{did_you_mean(key, SERVICE_FEATURE_KEYS)}; "
                    f"accepted: {', '.join(SERVICE_FEATURE_KEYS)}"
                )
            continue
        text, alias = (item.get("feature"), item.get("alias")) if isinstance(item, dict) else (item, None)
        try:
            parsed = FeatureRef.parse(text)
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        view, feature = parsed.view, parsed.feature
        if view in unreadable:
            continue
        if view not in catalog:
            model = (other_models or {}).get(view)
            hint = _not_a_feature_view(model) if model is not None else did_you_mean(view, catalog)
            problems.append(f"{where}: unknown feature view {view}{hint}")
            continue
        if feature == "*":
            refs.extend(FeatureRef(view, f) for f in catalog[view])
        elif feature not in catalog[view]:
            problems.append(f"{where}: feature view {view} has no feature {feature}{did_you_mean(feature, catalog[view])}")
        else:
            refs.append(FeatureRef(view, feature, alias))
    return refs


def _check_collisions(refs: list[FeatureRef], where: str, problems: list[str]) -> None:
    seen: dict[str, FeatureRef] = {}
    for ref in refs:
        other = seen.get(ref.output_name)
        if other is not None and other != ref:
            problems.append(
                f"{where}: {other} and {ref} are both named {ref.output_name} in the output; give one an alias "
                f"({{feature: {ref}, alias: ...}})"
            )
        seen[ref.output_name] = ref
