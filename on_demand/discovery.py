"""Finding on-demand views in the project's on-demand folder; converting them to and from registry entries.

A project keeps its on-demand views as Python files in one folder (`on_demand` of hindsight.yml,
default `<project>/on_demand`). The folder is imported as the package `hindsight_on_demand`, so a
view in `on_demand/orders.py` is recorded in the registry as "hindsight_on_demand.orders:qualname",
and serving and training sets import it back by that name from the same project's folder, wherever
the project lives. Files in the folder may import each other relatively (`from . import helpers`).
The demo's views are this package's own modules (`on_demand/fraud.py`): when the project's folder
is this package's folder (Hindsight's own checkout), they keep their `hindsight.on_demand` names.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from hindsight.on_demand.view import OnDemandError, OnDemandView
from hindsight.registry_sync.model import Feature, OnDemandFeatureView, RequestField

#: The package name a project's on-demand folder is imported as (what the registry records).
PROJECT_PACKAGE = "hindsight_on_demand"
#: This package: the demo's views and the machinery below.
_OWN_PACKAGE = "hindsight.on_demand"
# Modules of this package that hold machinery, not views.
_INFRASTRUCTURE = {"view", "discovery"}


def project_folder(settings: object | None = None) -> Path:
    """The project's on-demand folder: hindsight.yml `on_demand` (HINDSIGHT_ON_DEMAND), default `on_demand`.

    Args:
        settings: the project's `Settings` (default: the current project's).
    """
    from hindsight.core.settings import Settings

    settings = settings or Settings.from_env()
    configured = getattr(settings, "on_demand_dir", None)  # set from hindsight.yml by hindsight.core.config
    folder = Path(configured or os.environ.get("HINDSIGHT_ON_DEMAND") or "on_demand")
    return folder if folder.is_absolute() else Path(settings.project_dir) / folder  # type: ignore[attr-defined]


def use_folder(folder: Path) -> str:
    """Make `folder` importable as a package and return the package's name.

    Another folder registered before (another project in the same process) is forgotten, with the
    modules imported from it.
    """
    folder = folder.resolve()
    own = importlib.import_module(_OWN_PACKAGE)
    if folder in {Path(p).resolve() for p in own.__path__}:
        return _OWN_PACKAGE
    current = sys.modules.get(PROJECT_PACKAGE)
    if current is not None and list(getattr(current, "__path__", [])) == [str(folder)]:
        return PROJECT_PACKAGE
    for name in [n for n in sys.modules if n == PROJECT_PACKAGE or n.startswith(PROJECT_PACKAGE + ".")]:
        del sys.modules[name]
    spec = importlib.machinery.ModuleSpec(PROJECT_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(folder)]
    package.__doc__ = f"On-demand views of the project folder {folder} (imported by Hindsight)."
    sys.modules[PROJECT_PACKAGE] = package
    importlib.invalidate_caches()
    return PROJECT_PACKAGE


def load_views(folder: Path | str | None = None) -> dict[str, OnDemandView]:
    """Import every module of the on-demand folder and collect the views defined at top level.

    Args:
        folder: the folder of view modules (default: the current project's, see `project_folder`).
            A missing folder holds no views.

    Returns:
        View name -> view, in module then definition order.

    Raises:
        OnDemandError: when a module cannot be imported or two views share a name.
    """
    folder = Path(folder) if folder is not None else project_folder()
    if not folder.is_dir():
        return {}
    package = use_folder(folder)
    views: dict[str, OnDemandView] = {}
    where: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name):
        if info.ispkg or info.name.startswith("_") or (package == _OWN_PACKAGE and info.name in _INFRASTRUCTURE):
            continue
        module_name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # user code: name the file, not a traceback
            raise OnDemandError(
                f"cannot import on-demand module {folder / (info.name + '.py')}: {type(error).__name__}: {error}"
            ) from error
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


def from_registry(entry: OnDemandFeatureView, folder: Path | str | None = None) -> OnDemandView:
    """Import the view a registry entry points to.

    The module attribute is normally the `OnDemandView` the decorator made; a bare function is
    wrapped with the registry's declaration instead.

    Args:
        entry: the registry's description of the view.
        folder: the project's on-demand folder, for views recorded under `hindsight_on_demand`
            (default: the folder `load_views`/`use_folder` registered last, else the current
            project's, see `project_folder`).

    Raises:
        OnDemandError: when the function cannot be imported.
    """
    module_name, _, qualname = entry.function.partition(":")
    if module_name == PROJECT_PACKAGE or module_name.startswith(PROJECT_PACKAGE + "."):
        if folder is not None:
            use_folder(Path(folder))
        elif PROJECT_PACKAGE not in sys.modules:
            use_folder(project_folder())
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
