"""Read plans: what one feature request needs, worked out once instead of on every request.

A plan names the output columns (with the service's aliases, `view__` prefixes on collisions), the
features to read per feature view (including on-demand views' inputs), the join keys and request
fields to validate, and the on-demand views to run. Plans for feature services are built when the
app starts; plans for ad-hoc feature lists are built on first use and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hindsight.registry_sync.model import FeatureRef, FeatureService, FeatureView, Registry, output_names
from hindsight.serving.errors import ApiError, unknown


class OnDemandViewLike(Protocol):
    """What serving uses of `on_demand.OnDemandView`."""

    # Read-only: OnDemandView is a frozen dataclass.
    @property
    def name(self) -> str: ...
    @property
    def feature_inputs(self) -> tuple[str, ...]: ...
    @property
    def request_fields(self) -> Mapping[str, str]: ...
    @property
    def outputs(self) -> Mapping[str, str]: ...

    def compute(self, columns: dict[str, list]) -> dict[str, list]: ...


@dataclass(frozen=True)
class JoinKey:
    """A join key the request must carry."""

    name: str
    #: Registry dtype of the key, or None when the registry does not record it (int or string).
    dtype: str | None
    #: The feature views that need it, for error messages.
    views: tuple[str, ...]


@dataclass(frozen=True)
class RequestFieldSpec:
    """A request-context value an on-demand view needs."""

    name: str
    dtype: str
    views: tuple[str, ...]


@dataclass(frozen=True)
class OutputColumn:
    """One feature in the response."""

    #: Name in the response: the alias, the feature name, or `view__feature` on a collision.
    name: str
    view: str
    feature: str
    dtype: str
    description: str
    on_demand: bool


@dataclass(frozen=True)
class OnDemandStep:
    """One on-demand view to run, and where its input columns come from."""

    view: OnDemandViewLike
    #: (column name passed to compute, feature view, feature) per feature input.
    inputs: tuple[tuple[str, str, str], ...]
    request_fields: tuple[str, ...]


@dataclass(frozen=True)
class ReadPlan:
    """Everything needed to answer a request for one service or feature list."""

    #: The service name, or "" for an ad-hoc feature list.
    service: str
    outputs: tuple[OutputColumn, ...]
    #: Features to read from the online store, per feature view.
    store_features: dict[str, list[str]]
    join_keys: tuple[JoinKey, ...]
    request_fields: tuple[RequestFieldSpec, ...]
    on_demand: tuple[OnDemandStep, ...]
    #: Entities the plan's feature views are keyed on, in first-use order.
    entities: tuple[str, ...]


def parse_feature_ref(text: Any) -> tuple[str, str]:
    """Split "view:feature" (or "view:*") into its parts.

    >>> parse_feature_ref("user_profile:home_country")
    ('user_profile', 'home_country')

    Raises:
        ApiError: 400 when the text is not of that form.
    """
    try:
        ref = FeatureRef.parse(text)
    except ValueError as error:
        raise ApiError(400, "invalid_feature_ref", f"feature {error}") from None
    return ref.view, ref.feature


class PlanBuilder:
    """Builds read plans against one registry and one set of on-demand view implementations."""

    def __init__(self, registry: Registry, on_demand_views: Mapping[str, OnDemandViewLike]) -> None:
        self._views: dict[str, FeatureView] = {v.name: v for v in registry.feature_views}
        self._on_demand = dict(on_demand_views)
        self._registered_on_demand = {v.name: v for v in registry.on_demand_views}

    def for_service(self, service: FeatureService) -> ReadPlan:
        """The plan for a feature service; raises ApiError when it names unknown or offline features."""
        refs = [self._checked_ref(ref) for ref in service.features]
        return self._plan(service.name, _dedupe(refs))

    def for_features(self, names: Sequence[Any]) -> ReadPlan:
        """The plan for a list of "view:feature" / "view:*" names."""
        refs: list[FeatureRef] = []
        for name in names:
            view, feature = parse_feature_ref(name)
            if feature == "*":
                refs.extend(FeatureRef(view, f) for f in self._feature_names(view))
            else:
                refs.append(self._checked_ref(FeatureRef(view, feature)))
        if not refs:
            raise ApiError(400, "no_features", "'features' must name at least one feature")
        return self._plan("", _dedupe(refs))

    # -- resolving names -------------------------------------------------------------------------

    def _feature_names(self, view: str) -> list[str]:
        if view in self._views:
            return [f.name for f in self._views[view].features]
        if view in self._on_demand:
            return list(self._on_demand[view].outputs)
        if view in self._registered_on_demand:
            raise _unloadable(view)
        raise unknown("feature view", view, [*self._views, *self._on_demand], "unknown_feature_view")

    def _checked_ref(self, ref: FeatureRef) -> FeatureRef:
        names = self._feature_names(ref.view)
        if ref.feature not in names:
            qualified = [f"{ref.view}:{name}" for name in names]
            raise unknown("feature", str(ref), qualified, "unknown_feature")
        return ref

    def _online_view(self, name: str, needed_by: str) -> FeatureView:
        view = self._views.get(name)
        if view is None:
            raise ApiError(
                500,
                "invalid_on_demand_view",
                f"on-demand view {needed_by!r} reads {name!r}, which is not a feature view in the registry",
            )
        if not view.online:
            raise ApiError(
                400,
                "view_not_online",
                f"feature view {name!r} is not synced to the online store (online: false)"
                + ("" if needed_by == name else f"; {needed_by!r} needs it"),
            )
        return view

    # -- building ----------------------------------------------------------------------------------

    def _plan(self, service: str, refs: list[FeatureRef]) -> ReadPlan:
        store: dict[str, list[str]] = {}
        outputs: list[OutputColumn] = []
        steps: dict[str, OnDemandStep] = {}
        names = output_names(refs)
        _check_unique(refs, names)
        for ref, name in zip(refs, names):
            if ref.view in self._on_demand:
                steps.setdefault(ref.view, self._step(ref.view, store))
                dtype = self._on_demand[ref.view].outputs[ref.feature]
                description = self._on_demand_description(ref)
                outputs.append(OutputColumn(name, ref.view, ref.feature, dtype, description, True))
            else:
                view = self._online_view(ref.view, ref.view)
                _add(store, ref.view, ref.feature)
                feature = view.feature(ref.feature)
                outputs.append(OutputColumn(name, ref.view, ref.feature, feature.dtype, feature.description, False))
        return ReadPlan(
            service=service,
            outputs=tuple(outputs),
            store_features=store,
            join_keys=self._join_keys(store),
            request_fields=_request_fields(steps.values()),
            on_demand=tuple(steps.values()),
            entities=tuple(dict.fromkeys(e for v in store for e in self._views[v].entities)),
        )

    def _step(self, name: str, store: dict[str, list[str]]) -> OnDemandStep:
        view = self._on_demand[name]
        inputs = []
        for text in view.feature_inputs:
            source, feature = parse_feature_ref(text)
            source_view = self._online_view(source, name)
            if feature not in {f.name for f in source_view.features}:
                raise ApiError(500, "invalid_on_demand_view", f"on-demand view {name!r} reads unknown feature {text!r}")
            _add(store, source, feature)
            inputs.append((feature, source, feature))
        return OnDemandStep(view, tuple(inputs), tuple(view.request_fields))

    def _on_demand_description(self, ref: FeatureRef) -> str:
        registered = self._registered_on_demand.get(ref.view)
        if registered is None:
            return ""
        return next((f.description for f in registered.features if f.name == ref.feature), "")

    def _join_keys(self, store: dict[str, list[str]]) -> tuple[JoinKey, ...]:
        keys: dict[str, tuple[str | None, list[str]]] = {}
        for name in store:
            view = self._views[name]
            dtypes = view.join_key_dtypes
            for i, key in enumerate(view.join_keys):
                dtype = dtypes[i] if len(dtypes) == len(view.join_keys) else None
                known, users = keys.setdefault(key, (dtype, []))
                users.append(name)
                if known is None and dtype is not None:
                    keys[key] = (dtype, users)
        return tuple(JoinKey(k, dtype, tuple(users)) for k, (dtype, users) in keys.items())


def _check_unique(refs: list[FeatureRef], names: list[str]) -> None:
    # An alias can still clash after prefixing (v:x next to v:y aliased x): refuse, naming both.
    seen: dict[str, FeatureRef] = {}
    for ref, name in zip(refs, names):
        if name in seen:
            raise ApiError(
                400,
                "ambiguous_feature_names",
                f"features {str(seen[name])!r} and {str(ref)!r} would both be answered as {name!r}; "
                "give one of them another alias",
            )
        seen[name] = ref


def _add(store: dict[str, list[str]], view: str, feature: str) -> None:
    features = store.setdefault(view, [])
    if feature not in features:
        features.append(feature)


def _dedupe(refs: list[FeatureRef]) -> list[FeatureRef]:
    return list(dict.fromkeys(refs))


def _request_fields(steps: Any) -> tuple[RequestFieldSpec, ...]:
    fields: dict[str, tuple[str, list[str]]] = {}
    for step in steps:
        for name, dtype in step.view.request_fields.items():
            fields.setdefault(name, (dtype, []))[1].append(step.view.name)
    return tuple(RequestFieldSpec(n, dtype, tuple(views)) for n, (dtype, views) in fields.items())


def _unloadable(view: str) -> ApiError:
    return ApiError(
        500,
        "on_demand_view_unavailable",
        f"on-demand view {view!r} is in the registry but its code was not loaded by on_demand.load_views()",
    )
