"""Which features a request names, checked against the registry, and what each output column is called.

Features come as "view:feature" / "view:*" strings or from a feature service. An output column is
named after its feature, prefixed `view__` only when two requested features share a name, or takes
the alias a service gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hindsight.registry_sync.model import (
    FeatureRef,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    Registry,
    output_names,
)
from hindsight.training_sets.errors import TrainingSetError, near_names


@dataclass(frozen=True)
class Selected:
    """One requested feature and the name of its output column."""

    view: str
    feature: str
    output: str
    #: Named in `features=` (a wildcard counts), not brought in by a service.
    explicit: bool = True

    @property
    def ref(self) -> str:
        return f"{self.view}:{self.feature}"


def select_features(
    registry: Registry,
    *,
    features: Sequence[str | FeatureRef] | str | None = None,
    service: str | None = None,
) -> list[Selected]:
    """Resolve a request to features that exist, in request order, with their output names.

    Args:
        registry: where views and services are looked up.
        features: "view:feature" or "view:*" references (a string may hold several, comma-separated).
        service: a feature service name; exclusive with `features`.

    Returns:
        One entry per distinct requested feature.

    Raises:
        TrainingSetError: for unknown services, views or features (with near names), an empty
            request, both arguments at once, or two outputs with one name.
    """
    if features is not None and service is not None:
        raise TrainingSetError("pass either service= or features=, not both")
    if service is not None:
        refs, explicit = list(_service(registry, service).features), False
    else:
        refs, explicit = _parse_refs(features), True
    if not refs:
        raise TrainingSetError("the feature list is empty: name features as 'view:feature' or 'view:*', or a service")
    chosen: list[tuple[FeatureRef, bool]] = []
    for ref in refs:
        view = _view(registry, ref.view)
        if ref.feature == "*":
            chosen += [(FeatureRef(view.name, f.name), explicit) for f in view.features]
            continue
        if ref.feature not in {f.name for f in view.features}:
            raise TrainingSetError(
                f"view {view.name!r} has no feature {ref.feature!r}"
                f"{near_names(ref.feature, (f.name for f in view.features))}"
            )
        chosen.append((ref, explicit))
    return _named(_distinct(chosen))


def _parse_refs(features: Sequence[str | FeatureRef] | str | None) -> list[FeatureRef]:
    if features is None:
        return []
    items: Iterable[str | FeatureRef] = features.split(",") if isinstance(features, str) else features
    refs = []
    for item in items:
        if isinstance(item, FeatureRef):
            refs.append(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            refs.append(FeatureRef.parse(text))
        except ValueError as error:
            raise TrainingSetError(f"feature reference {error}") from None
    return refs


def _service(registry: Registry, name: str) -> FeatureService:
    try:
        return registry.service(name)
    except KeyError:
        known = (s.name for s in registry.feature_services)
        raise TrainingSetError(f"unknown feature service {name!r}{near_names(name, known)}") from None


def _view(registry: Registry, name: str) -> FeatureView | OnDemandFeatureView:
    try:
        return registry.view(name)
    except KeyError:
        known = [v.name for v in registry.feature_views] + [v.name for v in registry.on_demand_views]
        raise TrainingSetError(f"unknown feature view {name!r}{near_names(name, known)}") from None


def _distinct(chosen: list[tuple[FeatureRef, bool]]) -> list[tuple[FeatureRef, bool]]:
    """Drop repeats (e.g. 'v:*' and 'v:f'), keeping the first place and the explicit flag if any."""
    order: dict[tuple[str, str, str | None], bool] = {}
    for ref, explicit in chosen:
        key = (ref.view, ref.feature, ref.alias)
        order[key] = order.get(key, False) or explicit
    return [(FeatureRef(v, f, a), explicit) for (v, f, a), explicit in order.items()]


def _named(chosen: list[tuple[FeatureRef, bool]]) -> list[Selected]:
    outputs = output_names([ref for ref, _ in chosen])
    selected = [Selected(ref.view, ref.feature, output, explicit) for (ref, explicit), output in zip(chosen, outputs)]
    names = Counter(s.output for s in selected)
    clashes = sorted(n for n, count in names.items() if count > 1)
    if clashes:
        raise TrainingSetError(f"two requested features would both be output as {clashes}; give them distinct aliases")
    return selected
