"""Finding on-demand views: import the package's modules, convert views to and from registry entries."""

from __future__ import annotations

import importlib
import pkgutil

from hindsight.on_demand.view import OnDemandError, OnDemandView
from hindsight.registry_sync.model import Feature, OnDemandFeatureView, RequestField

# Modules of the package that hold machinery, not views.
_INFRASTRUCTURE = {"view", "discovery"}


def load_views(package: str = "hindsight.on_demand") -> dict[str, OnDemandView]:
    """Import every module of `package` and collect the on-demand views defined at top level.

    Args:
        package: a package name; its modules (not subpackages) are imported.

    Returns:
        View name -> view, in module then definition order.

    Raises:
        OnDemandError: when two views share a name.
    """
    root = importlib.import_module(package)
    views: dict[str, OnDemandView] = {}
    where: dict[str, str] = {}
    for info in pkgutil.iter_modules(root.__path__):
        if info.ispkg or info.name in _INFRASTRUCTURE or info.name.startswith("_"):
            continue
        module_name = f"{package}.{info.name}"
        module = importlib.import_module(module_name)
        for attribute, value in vars(module).items():
            if not isinstance(value, OnDemandView) or value.function.__module__ != module_name:
                continue  # imported from elsewhere: counted where it is defined
            if value.name in views and views[value.name] is not value:
                raise OnDemandError(
                    f"two on-demand views are named {value.name!r}: {where[value.name]} and {module_name}.{attribute}"
                )
            views[value.name] = value
            where[value.name] = f"{module_name}.{attribute}"
    return views


def function_path(view: OnDemandView) -> str:
    """Where the view's function lives, as "module:qualname" (what the registry stores).

    Raises:
        OnDemandError: when the function is not importable by that path (defined in a function).
    """
    function = view.function
    qualname = getattr(function, "__qualname__", "")
    if not qualname or "<" in qualname:
        raise OnDemandError(
            f"on-demand view {view.name!r}: its function must be defined at a module's top level "
            f"to be importable, got {qualname or function!r}"
        )
    return f"{function.__module__}:{qualname}"


def to_registry(view: OnDemandView) -> OnDemandFeatureView:
    """The registry's description of an on-demand view (its function stored as "module:qualname")."""
    return OnDemandFeatureView(
        name=view.name,
        feature_inputs=tuple(view.feature_inputs),
        request_fields=tuple(RequestField(n, t) for n, t in view.request_fields.items()),
        features=tuple(Feature(n, t) for n, t in view.outputs.items()),
        function=function_path(view),
        description=view.description,
        owner=view.owner,
        tags=tuple(view.tags),
    )


def from_registry(entry: OnDemandFeatureView) -> OnDemandView:
    """Import the view a registry entry points to.

    The module attribute is normally the `OnDemandView` the decorator made; a bare function is
    wrapped with the registry's declaration instead.

    Raises:
        OnDemandError: when the function cannot be imported.
    """
    module_name, _, qualname = entry.function.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise OnDemandError(
            f"on-demand view {entry.name!r}: cannot import its function {entry.function!r}: {error}"
        ) from error
    if isinstance(target, OnDemandView):
        return target
    return OnDemandView(
        name=entry.name,
        function=target,  # type: ignore[arg-type]
        feature_inputs=entry.feature_inputs,
        request_fields={f.name: f.dtype for f in entry.request_fields},
        outputs={f.name: f.dtype for f in entry.features},
        description=entry.description,
        owner=entry.owner,
        tags=entry.tags,
    )
