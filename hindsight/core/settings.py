"""Where Hindsight keeps things, read from the environment with in-repo defaults.

Relative paths resolve against the working directory, which is the repo root for `make`, `dbt` and
the CLI (dbt's profile uses the same variables and defaults: see profiles.yml, dbt_project.yml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default)


@dataclass(frozen=True)
class Settings:
    """Paths and endpoints of one Hindsight deployment."""

    #: The dbt project (dbt_project.yml, profiles.yml).
    project_dir: Path
    #: Raw demo data, read by the dbt source `raw` (HINDSIGHT_RAW_DATA).
    raw_data_dir: Path
    #: Root of the Delta offline store, a path or URI (HINDSIGHT_OFFLINE_STORE).
    offline_store: str
    #: dbt-duckdb's database file (HINDSIGHT_DUCKDB_PATH).
    duckdb_path: Path
    #: dbt's target folder, holding manifest.json (DBT_TARGET_PATH).
    dbt_target_dir: Path
    #: Versioned registry files (HINDSIGHT_REGISTRY).
    registry_dir: Path
    #: Downloaded tools: DynamoDB Local (HINDSIGHT_TOOLS).
    tools_dir: Path
    #: Local state of services Hindsight starts: pid files, DynamoDB Local data (HINDSIGHT_STATE).
    state_dir: Path

    @classmethod
    def from_env(cls, project_dir: Path | None = None) -> Settings:
        project = Path(project_dir or os.environ.get("HINDSIGHT_PROJECT_DIR") or Path.cwd())
        data = project / "data"
        return cls(
            project_dir=project,
            raw_data_dir=_env_path("HINDSIGHT_RAW_DATA", str(data / "raw")),
            offline_store=os.environ.get("HINDSIGHT_OFFLINE_STORE") or str(data / "offline_store"),
            duckdb_path=_env_path("HINDSIGHT_DUCKDB_PATH", str(data / "hindsight.duckdb")),
            dbt_target_dir=_env_path("DBT_TARGET_PATH", str(project / "target")),
            registry_dir=_env_path("HINDSIGHT_REGISTRY", str(data / "registry")),
            tools_dir=_env_path("HINDSIGHT_TOOLS", str(project / ".tools")),
            state_dir=_env_path("HINDSIGHT_STATE", str(data / "state")),
        )

    @property
    def manifest_path(self) -> Path:
        target = self.dbt_target_dir
        return (target if target.is_absolute() else self.project_dir / target) / "manifest.json"
