"""The feature registry's data model: entities, feature views, on-demand views, feature services.

Plain frozen dataclasses with a JSON round trip. `registry_sync.manifest` builds them from dbt's
manifest; training sets, online sync and serving only ever read them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hindsight.core.suggest import did_you_mean

#: Feature value types, as the registry names them (Arrow-like, engine-neutral).
FEATURE_TYPES = ("bool", "int32", "int64", "float32", "float64", "string", "date", "timestamp", "decimal")


@dataclass(frozen=True)
class Feature:
    """One column of a feature view."""

    name: str
    #: One of FEATURE_TYPES.
    dtype: str
    description: str = ""


@dataclass(frozen=True)
class Entity:
    """A thing features describe (a user, a merchant), identified by its join keys."""

    name: str
    #: Columns that identify one instance; every feature view of this entity carries them.
    join_keys: tuple[str, ...]
    description: str = ""
    #: Where it was declared, for error messages: "models/sources.yml".
    original_file_path: str = ""


@dataclass(frozen=True)
class Aggregation:
    """One feature of an aggregation feature view: a function over an input column in a sliding window.

    Its value at time t aggregates the entity's events with event time in
    [floor(t, interval) + interval - window, t] (offline_store/tiles.py describes the tiles).
    """

    #: The feature it produces, e.g. "amount_sum_7d".
    name: str
    #: One of offline_store.tiles.FUNCTIONS.
    function: str
    #: The input column, or "*" (every event; count only).
    column: str
    window_seconds: int


@dataclass(frozen=True)
class Expectation:
    """A Great Expectations expectation declared on a feature view (`config.meta.hindsight.expectations`).

    `hindsight validate` runs it on the rows a Delta version added; `hindsight.quality` owns that.
    """

    #: Great Expectations' snake-case name, e.g. "expect_column_values_to_not_be_null".
    type: str
    #: Its arguments as declared, e.g. {"column": "user_id"}; JSON values only.
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class FeatureView:
    """A dbt model materialized as a `feature_view`: one Delta table of feature values over time."""

    name: str
    #: "batch": one row per entity and time holds the features; "aggregation": the Delta table
    #: holds tiles and the features are `aggregations` combined at the time of use.
    kind: str
    #: Names of the entities this view is keyed on.
    entities: tuple[str, ...]
    #: The join-key columns, in the order the model's `entities` config lists them.
    join_keys: tuple[str, ...]
    #: Event time of each row: the value holds from this instant on.
    timestamp_field: str
    #: When the row became known (late corrections); None if not declared.
    created_field: str | None
    #: Rows older than this are stale (training: NULL; serving: EXPIRED). None = never stale.
    ttl_seconds: int | None
    #: Synced to the online store.
    online: bool
    #: The Delta table, as a local path or a URI deltalake accepts.
    delta_uri: str
    features: tuple[Feature, ...]
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    #: Columns the Delta table is partitioned by (not features).
    partition_columns: tuple[str, ...] = ()
    #: dbt unique ids of upstream sources and models (lineage).
    upstream: tuple[str, ...] = ()
    unique_id: str = ""
    original_file_path: str = ""
    #: dtype (one of FEATURE_TYPES) of each join key, parallel to join_keys; () if not recorded.
    #: Serving checks request join keys against it.
    join_key_dtypes: tuple[str, ...] = ()
    #: Aggregation views only: the interval tiles are aligned to, in seconds (None otherwise).
    aggregation_interval_seconds: int | None = None
    #: Aggregation views only: one per feature, in the order of `features`.
    aggregations: tuple[Aggregation, ...] = ()
    #: Data quality expectations on the view's Delta rows (`hindsight validate`); () = none, and
    #: then `hindsight sync` publishes without asking for a validation.
    expectations: tuple[Expectation, ...] = ()
    #: How old the newest feature value may grow before `hindsight status` reports the view stale,
    #: in seconds; None: not checked. The `expected_freshness` config, else a default (manifest).
    expected_freshness_seconds: int | None = None
    #: Where expected_freshness_seconds came from: "config", "schedule" (2 x dbt's
    #: freshness.build_after), "ttl", or "" (none).
    expected_freshness_source: str = ""
    #: Aggregation views whose model reads a stream source: its name ("streams.transactions");
    #: ingested events update the view's online tiles as they arrive. None otherwise.
    stream_source: str | None = None
    #: Stream-fed views only: the model's compiled SQL, which the per-batch stream transform runs
    #: (its processing-range span between /* hindsight:processing_range */ comments replaced).
    stream_sql: str | None = None
    #: The dialect stream_sql is written in: the dbt adapter that compiled it ("duckdb" | "spark").
    stream_sql_dialect: str | None = None
    #: Config `push: true`: the view takes pushed rows (batch views only).
    push: bool = False
    #: Config `push_partial: true`: a push may carry a subset of the view's features.
    push_partial: bool = False

    @property
    def is_aggregation(self) -> bool:
        return self.aggregation_interval_seconds is not None

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def ttl(self) -> dt.timedelta | None:
        return None if self.ttl_seconds is None else dt.timedelta(seconds=self.ttl_seconds)


@dataclass(frozen=True)
class StreamSource:
    """A dbt source table whose rows are events that arrive one by one (Kinesis, the ingest API).

    Declared by `meta.hindsight.stream` on the source table (registry_sync.streams); its events
    are kept in a Delta table, the event log (offline_store.event_log), that dbt models read with
    `source(...)` like any source.
    """

    #: "<source>.<table>", e.g. "streams.transactions".
    name: str
    #: The column unique per event: redelivered events with an id seen before are dropped.
    event_id_field: str
    #: The event time column.
    timestamp_field: str
    #: Names of the entities an event belongs to.
    entities: tuple[str, ...]
    #: The join keys of those entities, in order (each a declared column).
    join_keys: tuple[str, ...]
    #: Every declared column (name, dtype, description), in declared order.
    columns: tuple[Feature, ...]
    #: The event log: a local absolute path or a URI deltalake accepts.
    delta_uri: str
    #: The Kinesis stream `hindsight stream run` consumes; None: not read from Kinesis.
    kinesis_stream: str | None = None
    description: str = ""
    #: "source.<project>.<source>.<table>".
    unique_id: str = ""
    original_file_path: str = ""

    @property
    def source_name(self) -> str:
        """The dbt source name: "streams" of "streams.transactions"."""
        return self.name.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        """The dbt source's table name: "transactions" of "streams.transactions"."""
        return self.name.split(".", 1)[1]

    def column(self, name: str) -> Feature:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class RequestField:
    """A value that arrives with the request (serving) or as a spine column (training)."""

    name: str
    dtype: str


@dataclass(frozen=True)
class OnDemandFeatureView:
    """A Python function over request fields and other views' features, run at read time."""

    name: str
    #: Features it reads, as "view:feature".
    feature_inputs: tuple[str, ...]
    request_fields: tuple[RequestField, ...]
    features: tuple[Feature, ...]
    #: "module:qualname" of the function, imported by training sets and serving.
    function: str
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    kind: str = "on_demand"


@dataclass(frozen=True)
class FeatureRef:
    """One feature of a service: `view:feature`, optionally renamed in the output."""

    view: str
    feature: str
    alias: str | None = None

    @property
    def output_name(self) -> str:
        return self.alias or self.feature

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"

    @classmethod
    def parse(cls, text: Any, alias: str | None = None) -> FeatureRef:
        """The one reading of "view:feature" (or "view:*") everywhere a feature is named.

        >>> FeatureRef.parse(" user_profile : home_country ")
        FeatureRef(view='user_profile', feature='home_country', alias=None)

        Raises:
            ValueError: naming the text and the accepted form, when it has not exactly one colon
                with a name on each side.
        """
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"{text!r} is not of the form 'view:feature' or 'view:*'")
        return cls(parts[0].strip(), parts[1].strip(), alias)


def output_names(refs: Sequence[FeatureRef]) -> list[str]:
    """The column each feature gets in a training set or a served response (one rule for both).

    An alias is kept as given; a feature name that two references share, or that an alias takes,
    becomes `view__feature`. Callers refuse the result if two names are still equal (two equal
    aliases).

    >>> output_names([FeatureRef("a", "x"), FeatureRef("b", "x"), FeatureRef("b", "y", "z")])
    ['a__x', 'b__x', 'z']
    >>> output_names([FeatureRef("users", "count"), FeatureRef("merchants", "count", "merchant_count")])
    ['count', 'merchant_count']
    """
    bare = Counter(ref.feature for ref in refs if not ref.alias)
    aliases = {ref.alias for ref in refs if ref.alias}
    return [
        ref.alias or (f"{ref.view}__{ref.feature}" if bare[ref.feature] > 1 or ref.feature in aliases else ref.feature)
        for ref in refs
    ]


@dataclass(frozen=True)
class FeatureService:
    """A named set of features that one model consumes (a dbt exposure of type `ml`)."""

    name: str
    features: tuple[FeatureRef, ...]
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    original_file_path: str = ""


@dataclass(frozen=True)
class Registry:
    """Everything Hindsight knows about the project's features at one point."""

    project: str
    entities: tuple[Entity, ...] = ()
    feature_views: tuple[FeatureView, ...] = ()
    on_demand_views: tuple[OnDemandFeatureView, ...] = ()
    feature_services: tuple[FeatureService, ...] = ()
    stream_sources: tuple[StreamSource, ...] = ()
    #: Set by `registry_sync.store` when a version is applied.
    version: int | None = None
    applied_at: str | None = None
    manifest_generated_at: str | None = None

    def view(self, name: str) -> FeatureView | OnDemandFeatureView:
        for v in self.feature_views:
            if v.name == name:
                return v
        for odfv in self.on_demand_views:
            if odfv.name == name:
                return odfv
        raise KeyError(name)

    def entity(self, name: str) -> Entity:
        for e in self.entities:
            if e.name == name:
                return e
        raise KeyError(name)

    def service(self, name: str) -> FeatureService:
        for s in self.feature_services:
            if s.name == name:
                return s
        raise KeyError(name)

    def stream_source(self, name: str) -> StreamSource:
        """A stream source by its full name ("streams.transactions") or its table name when unique.

        Raises:
            KeyError: naming the known stream sources and the nearest one.
        """
        for s in self.stream_sources:
            if s.name == name:
                return s
        by_table = [s for s in self.stream_sources if s.table_name == name]
        if len(by_table) == 1:
            return by_table[0]
        known = [s.name for s in self.stream_sources]
        if len(by_table) > 1:
            raise KeyError(f"stream source {name!r} is ambiguous: name one of {', '.join(s.name for s in by_table)}")
        options = [*known, *(s.table_name for s in self.stream_sources)]
        raise KeyError(
            f"no stream source {name!r}{did_you_mean(name, options)}; known: {', '.join(known) or 'none'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Registry:
        return cls(
            project=data["project"],
            entities=tuple(Entity(**{**e, "join_keys": tuple(e["join_keys"])}) for e in data.get("entities", ())),
            feature_views=tuple(_view_from_dict(v) for v in data.get("feature_views", ())),
            on_demand_views=tuple(_odfv_from_dict(v) for v in data.get("on_demand_views", ())),
            feature_services=tuple(_service_from_dict(s) for s in data.get("feature_services", ())),
            stream_sources=tuple(_stream_source_from_dict(s) for s in data.get("stream_sources", ())),
            version=data.get("version"),
            applied_at=data.get("applied_at"),
            manifest_generated_at=data.get("manifest_generated_at"),
        )


def _features(items: Any) -> tuple[Feature, ...]:
    return tuple(Feature(**f) for f in items)


def _view_from_dict(v: dict[str, Any]) -> FeatureView:
    tuples = ("entities", "join_keys", "tags", "partition_columns", "upstream", "join_key_dtypes")
    return FeatureView(**{
        **v,
        **{k: tuple(v.get(k, ())) for k in tuples},
        "features": _features(v["features"]),
        "aggregations": tuple(Aggregation(**a) for a in v.get("aggregations", ())),
        "expectations": tuple(Expectation(**e) for e in v.get("expectations", ())),
    })


def _stream_source_from_dict(s: dict[str, Any]) -> StreamSource:
    return StreamSource(**{
        **s,
        "entities": tuple(s.get("entities", ())),
        "join_keys": tuple(s.get("join_keys", ())),
        "columns": _features(s.get("columns", ())),
    })


def _odfv_from_dict(v: dict[str, Any]) -> OnDemandFeatureView:
    return OnDemandFeatureView(
        **{
            **v,
            "feature_inputs": tuple(v.get("feature_inputs", ())),
            "request_fields": tuple(RequestField(**r) for r in v.get("request_fields", ())),
            "features": _features(v["features"]),
            "tags": tuple(v.get("tags", ())),
        }
    )


def _service_from_dict(s: dict[str, Any]) -> FeatureService:
    return FeatureService(
        **{**s, "features": tuple(FeatureRef(**f) for f in s["features"]), "tags": tuple(s.get("tags", ()))}
    )
