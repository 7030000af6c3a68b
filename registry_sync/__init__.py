"""The feature registry: built from dbt's manifest.json, versioned on disk, read by everything else.

Reads `target/manifest.json` (and the Delta tables' schemas for column types); writes registry
versions under the registry folder. `registry_sync.model` is the data model;
`registry_sync.dbt_project` keeps the manifest current (`dbt parse`) before plan and apply.
"""

from __future__ import annotations

from collections.abc import Iterable

from hindsight.core.settings import Settings
from hindsight.registry_sync.errors import DefinitionErrors, RegistryError
from hindsight.registry_sync.model import OnDemandFeatureView, Registry
from hindsight.registry_sync.store import RegistryStore

__all__ = ["DefinitionErrors", "Registry", "RegistryError", "RegistryStore", "build_registry", "load_registry"]


def load_registry(settings: Settings | None = None, version: int | None = None) -> Registry:
    """The applied registry (the latest, or `version`), as training sets, sync and serving read it.

    Raises:
        RegistryError: nothing has been applied yet, or the version does not exist.
    """
    settings = settings or Settings.from_env()
    store = RegistryStore(settings.registry_dir)
    if version is not None:
        return store.read(version)
    registry = store.latest()
    if registry is None:
        raise RegistryError(f"no registry applied yet in {settings.registry_dir}: run `hindsight apply`")
    return registry


def build_registry(settings: Settings | None = None, on_demand_views: Iterable[OnDemandFeatureView] = ()) -> Registry:
    """The registry the dbt project declares now: manifest, Delta schemas and `on_demand_views`.

    On-demand views are user code: the caller discovers them (`hindsight.project.project_registry`
    does) and hands in their registry entries; this package never imports them.
    """
    from hindsight.registry_sync.dbt_project import compile_models
    from hindsight.registry_sync.manifest import load_manifest, registry_from_manifest

    settings = settings or Settings.from_env()
    manifest = load_manifest(settings.manifest_path)
    resolved = settings  # bound for the closure below (mypy: no longer Optional)
    return registry_from_manifest(
        manifest,
        on_demand_views=on_demand_views,
        offline_store=settings.offline_store,
        project_dir=settings.project_dir,
        # Stream-fed views need their compiled SQL, which a manifest from `dbt parse` lacks.
        compile_models=lambda unique_ids: compile_models(resolved, unique_ids),
    )
