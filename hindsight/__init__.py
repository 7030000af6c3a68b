"""Hindsight: a SQL-first feature store for dbt teams.

The package holds what fronts the other components: the `hindsight` CLI (`hindsight.cli`), project
paths and settings (`hindsight.core.settings`), the demo data generator (`hindsight.demo_data`), the
HTTP client for models (`hindsight.client`) and the notebook SDK:

    import hindsight
    training = hindsight.training_set(spine, service="fraud_detection")
    snapshot = hindsight.features_as_of("2026-10-01", features=["user_profile:*"])
    hindsight.ingest("streams.transactions", events)   # events of a stream source
    hindsight.push("user_profile", rows)               # rows of a push feature view

Each SDK function takes `project_dir=` (a notebook outside the dbt project names it; default:
$HINDSIGHT_PROJECT_DIR, else the current folder or its nearest parent with a dbt_project.yml).
"""

from __future__ import annotations

from typing import Any

__all__ = ["features_as_of", "ingest", "push", "read_registry_version", "read_versions", "training_set"]
#: SDK functions defined in `hindsight.writes` (the others live in `hindsight.training_sets`).
_WRITES = ("ingest", "push")


def __getattr__(name: str) -> Any:
    # The SDK imports DuckDB, pyarrow and the registry: load them on first use, not with the CLI.
    if name in _WRITES:
        from hindsight import writes

        return getattr(writes, name)
    if name in __all__:
        from hindsight import training_sets

        return getattr(training_sets, name)
    raise AttributeError(f"module 'hindsight' has no attribute {name!r}")
