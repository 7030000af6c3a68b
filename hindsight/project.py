"""The registry a project declares now: dbt's manifest plus the on-demand views found in its code.

`registry_sync` describes on-demand views but never imports user code; this module, above both,
discovers the views (`hindsight.on_demand`) and hands them to `registry_sync.build_registry`. The
CLI (`hindsight plan`, `hindsight apply`) and the tests build registries through it.
"""

from __future__ import annotations

from hindsight import on_demand
from hindsight.core.settings import Settings
from hindsight.registry_sync import RegistryError, build_registry
from hindsight.registry_sync.model import Registry


def project_registry(settings: Settings | None = None) -> Registry:
    """The registry the project declares now (manifest, Delta schemas, on-demand views).

    Raises:
        RegistryError: the manifest is missing or a definition is invalid (every problem listed).
        RegistryError: also when an on-demand view cannot be imported or is declared wrongly.
    """
    settings = settings or Settings.load()
    try:
        # The project's own folder (hindsight.yml's on_demand): never the demo's, unless this is the demo.
        found = on_demand.load_views(on_demand.project_folder(settings))
    except on_demand.OnDemandError as error:
        raise RegistryError(str(error)) from error
    return build_registry(settings, on_demand_views=[on_demand.to_registry(view) for view in found.values()])
