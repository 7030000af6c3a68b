"""The notebook SDK: `training_set` (point-in-time features for a spine) and `features_as_of`.

Every check runs before a query does; each failure is a `TrainingSetError` naming the problem.
Results are Arrow tables carrying the Delta version read per view in their schema metadata
(`hindsight.versions`), which `read_versions` returns and `versions=` replays exactly, and the
applied registry version they were planned from (`hindsight.registry_version`), which
`read_registry_version` returns and `registry_version=` replays.

Each function takes `project_dir=` (default: $HINDSIGHT_PROJECT_DIR, else the current folder or its
nearest parent with a dbt_project.yml), so a notebook in another folder finds its project.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from hindsight.registry_sync.model import FeatureRef, Registry
from hindsight.training_sets import as_of
from hindsight.training_sets.engine import Engine, PinnedTable, open_engine, pin_tables
from hindsight.training_sets.errors import TrainingSetError
from hindsight.training_sets.on_demand_step import run_on_demand
from hindsight.training_sets.plan import TrainingPlan, plan_training_set, stored_type
from hindsight.training_sets.selection import select_features
from hindsight.training_sets.spine import UTC_MICROS, load_spine, prepare_spine
from hindsight.training_sets.sql import SpineSpec, point_in_time_query
from hindsight.training_sets.sql_parts import ROW_ID

VERSIONS_KEY = b"hindsight.versions"
REGISTRY_VERSION_KEY = b"hindsight.registry_version"

Features = Sequence[str | FeatureRef] | str | None
ProjectDir = str | os.PathLike[str] | None


def training_set(
    spine: Any,
    *,
    service: str | None = None,
    features: Features = None,
    event_timestamp: str = "event_timestamp",
    registry: Registry | None = None,
    registry_version: int | None = None,
    versions: Mapping[str, int] | None = None,
    honor_created: bool = True,
    engine: str = "duckdb",
    spark_remote: str | None = None,
    project_dir: ProjectDir = None,
    validated_only: bool = False,
) -> pa.Table:
    """Point-in-time correct features for every spine row.

    For each spine row and requested view: the view's row with the same join keys, `ts <= event
    time` and, where the view has a created time and `honor_created`, `created <= event time`;
    the greatest `(ts, created)` wins; NULL when none matches or `event time - ts > ttl`.

    Args:
        spine: rows to label: a pyarrow Table, pandas DataFrame, Parquet path, DuckDB relation or
            (DuckDB engine) SQL query; it holds the join keys, the event time and any labels.
        service: a feature service name from the registry.
        features: "view:feature" / "view:*" references (instead of `service`).
        event_timestamp: the spine's event-time column (naive values are UTC).
        registry: defaults to the latest applied registry.
        registry_version: an applied registry version to plan from instead of the latest (e.g.
            `read_registry_version(an_earlier_result)`); with `versions=` it replays that result.
        versions: {view: Delta version} to read (e.g. `read_versions(an_earlier_result)`).
        honor_created: ignore rows not yet created at the event time (as-of-known-time).
        engine: "duckdb" (in process) or "spark" (Spark Connect).
        spark_remote: Spark Connect URL; default $HINDSIGHT_SPARK_REMOTE.
        project_dir: the dbt project whose registry to read (when `registry` is not given).
        validated_only: read each view that has expectations at its newest Delta version that
            passed `hindsight validate` (views without expectations: their newest version).

    Returns:
        The spine's columns unchanged and in order, then one column per feature, one row per spine
        row in the spine's order; `read_versions(result)` gives the Delta versions read and
        `read_registry_version(result)` the registry version used.

    Raises:
        TrainingSetError: on any invalid request, before a query runs.
        RegistryError: no registry is applied, or `registry_version` is not one (the message
            lists the applied versions).
    """
    registry = _registry(registry, project_dir, registry_version)
    plan = plan_training_set(registry, select_features(registry, features=features, service=service))
    _check_versions(registry, versions)
    versions = _validated(plan, versions, project_dir) if validated_only else versions
    runner = open_engine(engine, spark_remote)
    try:
        table = load_spine(spine, duckdb_connection=getattr(runner, "connection", None))
        pinned = pin_tables(plan.views, dict(versions or {}))
        result = run_plan(runner, plan, table, pinned, event_timestamp=event_timestamp, honor_created=honor_created)
    finally:
        runner.close()
    return _with_registry_version(result, registry)


def features_as_of(
    when: dt.datetime | dt.date | str,
    *,
    features: Features = None,
    service: str | None = None,
    entities: Any = None,
    registry: Registry | None = None,
    registry_version: int | None = None,
    versions: Mapping[str, int] | None = None,
    honor_created: bool = True,
    engine: str = "duckdb",
    spark_remote: str | None = None,
    project_dir: ProjectDir = None,
    validated_only: bool = False,
) -> pa.Table:
    """Every entity's feature values as of one instant, without a spine.

    Per view, the latest row per entity with `ts <= when` (and `created <= when`), NULL past the
    ttl; views are joined on their shared join keys. On-demand views that need request fields
    cannot run without a request: requested by name they are an error, via a service they are
    skipped with a warning.

    Args:
        when: the instant (naive = UTC; a date = its midnight UTC; or ISO text).
        features: as in `training_set`.
        service: as in `training_set`.
        entities: only these entities, in this order: {join key: values}, a DataFrame or an
            Arrow table of key columns. Default: every entity with a row visible at `when`,
            sorted by key.
        registry: defaults to the latest applied registry.
        registry_version: as in `training_set`.
        versions: {view: Delta version}.
        honor_created: as in `training_set`.
        engine: as in `training_set`.
        spark_remote: as in `training_set`.
        project_dir: as in `training_set`.
        validated_only: as in `training_set`.

    Returns:
        The join-key columns, then one column per feature; versions in the schema metadata.

    Raises:
        TrainingSetError: on an invalid request, or views keyed on different entities.
    """
    registry = _registry(registry, project_dir, registry_version)
    instant = as_of.instant(when)
    selected = as_of.without_request_fields(registry, select_features(registry, features=features, service=service))
    plan = plan_training_set(registry, selected)
    keys = as_of.shared_join_keys(plan)
    _check_versions(registry, versions)
    versions = _validated(plan, versions, project_dir) if validated_only else versions
    runner = open_engine(engine, spark_remote)
    try:
        pinned = pin_tables(plan.views, dict(versions or {}))
        if entities is None:
            for name, table in pinned.items():
                runner.register_delta(name, table, plan.columns_needed(name))
            known = runner.run(as_of.known_entities_query(plan, keys, instant, honor_created))
        else:
            known = as_of.entity_table(entities, keys)
        spine = known.append_column(as_of.EVENT_COLUMN, pa.array([instant] * known.num_rows, UTC_MICROS))
        result = run_plan(runner, plan, spine, pinned, event_timestamp=as_of.EVENT_COLUMN, honor_created=honor_created)
    finally:
        runner.close()
    return _with_registry_version(result.drop_columns([as_of.EVENT_COLUMN]), registry)


def read_versions(table: pa.Table) -> dict[str, int]:
    """The {view: Delta version} a training set was built from (empty if it carries none).

    >>> read_versions(pa.table({"x": [1]}).replace_schema_metadata({VERSIONS_KEY: b'{"v": 3}'}))
    {'v': 3}
    """
    raw = (table.schema.metadata or {}).get(VERSIONS_KEY)
    return json.loads(raw) if raw else {}


def read_registry_version(table: pa.Table) -> int | None:
    """The applied registry version a training set was planned from (None if it carries none).

    >>> read_registry_version(pa.table({"x": [1]}).replace_schema_metadata({REGISTRY_VERSION_KEY: b"2"}))
    2
    """
    raw = (table.schema.metadata or {}).get(REGISTRY_VERSION_KEY)
    return int(raw) if raw else None


def training_set_sql(
    spine_columns: Sequence[str] = (),
    *,
    service: str | None = None,
    features: Features = None,
    registry: Registry | None = None,
    registry_version: int | None = None,
    dialect: str = "duckdb",
    honor_created: bool = True,
    project_dir: ProjectDir = None,
) -> str:
    """The point-in-time SQL a training set runs, rendered for `dialect` (what `--print-sql` shows).

    The query reads the relations the engine registers: `spine` (row id, UTC event time, join
    keys) and one per view, named after the view.
    """
    registry = _registry(registry, project_dir, registry_version)
    plan = plan_training_set(registry, select_features(registry, features=features, service=service))
    missing = sorted({f for f in plan.request_fields() if spine_columns and f not in spine_columns})
    if missing:
        raise TrainingSetError(f"the spine lacks request field column(s) {missing}")
    if not plan.views:
        return ""
    query = point_in_time_query(SpineSpec(), plan.view_requests(), dialect, honor_created)
    return query.sql(dialect, pretty=True)


def run_plan(
    runner: Engine,
    plan: TrainingPlan,
    spine: pa.Table,
    pinned: dict[str, PinnedTable],
    *,
    event_timestamp: str,
    honor_created: bool,
    dialect: str | None = None,
) -> pa.Table:
    """Check, register, join, compute on-demand views and assemble the result.

    `dialect` picks the SQL form (default: the engine's); the tests run the Spark form on DuckDB.
    """
    _check_columns(plan, pinned)
    clashes = [item.output for item in plan.selected if item.output in spine.column_names]
    if clashes:
        raise TrainingSetError(
            f"feature output column(s) {clashes} have the name of a spine column; rename the spine column "
            "or request the feature through a service with an alias"
        )
    narrow = prepare_spine(
        spine, event_timestamp=event_timestamp, key_types=_key_types(plan, pinned), request_fields=plan.request_fields()
    )
    joined = pa.table({ROW_ID: narrow.column(ROW_ID)})
    if plan.views:
        for name, table in pinned.items():
            runner.register_delta(name, table, plan.columns_needed(name))
        runner.register_arrow(SpineSpec().relation, narrow)
        del narrow, joined  # the engine has its copy; freed before the join's peak
        query = point_in_time_query(SpineSpec(), plan.view_requests(), dialect or runner.dialect, honor_created)
        joined = _cast_to_stored_types(runner.run(query), plan, pinned)
    _check_order(joined, spine.num_rows)
    columns = {name: joined.column(name) for name in joined.column_names if name != ROW_ID}
    for step in plan.on_demand:
        columns.update(run_on_demand(step, columns, spine))
    result = spine
    for item in plan.selected:
        result = result.append_column(item.output, columns[item.output])
    versions = json.dumps({name: table.version for name, table in pinned.items()}, sort_keys=True)
    return result.replace_schema_metadata({VERSIONS_KEY: versions.encode()})


def _registry(registry: Registry | None, project_dir: ProjectDir, version: int | None = None) -> Registry:
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise TrainingSetError(f"registry_version must be an applied registry version (an integer >= 1); got {version!r}")
    if registry is not None:
        if version is not None and registry.version != version:
            raise TrainingSetError(
                f"registry= is version {registry.version} but registry_version={version}: pass one of them"
            )
        return registry
    from hindsight.core.config import ConfigError
    from hindsight.core.settings import Settings
    from hindsight.registry_sync import load_registry  # owned by registry_sync; imported late so tests need no registry on disk

    try:
        settings = Settings.load(project_dir, require=True)
    except ConfigError as error:
        raise TrainingSetError(str(error)) from None
    # The registry's on-demand views import from this project's folder, wherever the caller runs.
    from hindsight.on_demand import project_folder, use_folder

    if project_folder(settings).is_dir():
        use_folder(project_folder(settings))
    return load_registry(settings, version=version)


def _validated(plan: TrainingPlan, versions: Mapping[str, int] | None, project_dir: ProjectDir) -> dict[str, int]:
    """`versions` with each view that has expectations pinned to its newest passing version."""
    from hindsight.core.config import ConfigError
    from hindsight.core.settings import Settings
    from hindsight.quality.records import ValidationLog
    from hindsight.training_sets.validated import validated_versions

    try:
        settings = Settings.load(project_dir, require=True)
    except ConfigError as error:
        raise TrainingSetError(str(error)) from None
    return validated_versions(plan.views, dict(versions or {}), ValidationLog.in_registry(settings.registry_dir))


def _with_registry_version(table: pa.Table, registry: Registry) -> pa.Table:
    """Record the applied registry version next to the Delta versions (a registry built but never
    applied has none, and records none)."""
    if registry.version is None:
        return table
    metadata = {**(table.schema.metadata or {}), REGISTRY_VERSION_KEY: str(registry.version).encode()}
    return table.replace_schema_metadata(metadata)


def _check_versions(registry: Registry, versions: Mapping[str, int] | None) -> None:
    known = {v.name for v in registry.feature_views}
    unknown = sorted(set(versions or {}) - known)
    if unknown:
        raise TrainingSetError(f"versions= names view(s) {unknown} that are not feature views")
    bad = {k: v for k, v in (versions or {}).items() if not isinstance(v, int) or isinstance(v, bool) or v < 0}
    if bad:
        raise TrainingSetError(f"versions= must map views to Delta versions (integers >= 0); got {bad}")


def _check_columns(plan: TrainingPlan, pinned: dict[str, PinnedTable]) -> None:
    for name, table in pinned.items():
        missing = [c for c in plan.columns_needed(name) if c not in table.schema.names]
        if missing:
            raise TrainingSetError(
                f"view {name!r}: Delta table {table.uri!r} (version {table.version}) has no column(s) {missing}; "
                "the registry and the table disagree: rebuild the view or apply the registry again"
            )


def _key_types(plan: TrainingPlan, pinned: dict[str, PinnedTable]) -> dict[str, dict[str, pa.DataType]]:
    return {
        key: {view: pinned[view].schema.field(key).type for view in views} for key, views in plan.key_views().items()
    }


def _cast_to_stored_types(joined: pa.Table, plan: TrainingPlan, pinned: dict[str, PinnedTable]) -> pa.Table:
    """Give each feature column its Delta type, so DuckDB and Spark return identical schemas."""
    for view, reads in plan.reads.items():
        schema = pinned[view].schema
        for feature, name in reads:
            stored = stored_type(plan.views[view], feature, schema)
            index = joined.schema.get_field_index(name)
            if joined.schema.field(index).type != stored:
                joined = joined.set_column(index, name, joined.column(index).cast(stored))
    return joined


def _check_order(joined: pa.Table, rows: int) -> None:
    """The engine must hand back every spine row once, in order; anything else is a bug, not bad input."""
    ids = joined.column(ROW_ID).to_numpy()
    if len(ids) != rows or not np.array_equal(ids, np.arange(rows)):
        raise RuntimeError(f"point-in-time join returned {len(ids)} rows for {rows} spine rows, or out of order")
