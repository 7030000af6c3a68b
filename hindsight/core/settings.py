"""Where one Hindsight project keeps things: hindsight.yml and the environment, as absolute paths.

`Settings.load(project_dir)` finds the project (hindsight.core.config.find_project_dir), reads its
hindsight.yml with environment overrides (hindsight.core.config.load_config) and resolves every
relative path against the project folder, never the working directory, so a notebook or a command
run from another folder sees the same store. A few development paths are environment-only:
HINDSIGHT_RAW_DATA, HINDSIGHT_DUCKDB_PATH, DBT_TARGET_PATH, HINDSIGHT_TOOLS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hindsight.core.config import (
    CONFIG_FILE,
    ConfigError,
    ENV_OVERRIDES,
    OnlineStoreSection,
    OptimizeSection,
    S3Section,
    ServingSection,
    StreamsSection,
    find_project_dir,
    load_config,
    require_project,
)
from hindsight.core.delta_paths import delta_path_problem

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _resolve(project: Path, value: str | os.PathLike[str]) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else project / path


def _resolve_uri(project: Path, value: str) -> str:
    """A URI (s3://...) unchanged; a path made absolute against the project.

    >>> _resolve_uri(Path("/p"), "s3://bucket/store"), _resolve_uri(Path("/p"), "data/store")
    ('s3://bucket/store', '/p/data/store')
    """
    return value if _URI.match(value) else str(_resolve(project, value))


@dataclass(frozen=True)
class Settings:
    """Paths and endpoints of one Hindsight project."""

    #: The dbt project (dbt_project.yml, hindsight.yml).
    project_dir: Path
    #: Raw demo data, read by the dbt source `raw` (HINDSIGHT_RAW_DATA).
    raw_data_dir: Path
    #: Root of the Delta offline store, an absolute path or a URI (offline_store, HINDSIGHT_OFFLINE_STORE).
    offline_store: str
    #: dbt-duckdb's database file (HINDSIGHT_DUCKDB_PATH).
    duckdb_path: Path
    #: dbt's target folder, holding manifest.json (DBT_TARGET_PATH).
    dbt_target_dir: Path
    #: Versioned registry files (registry, HINDSIGHT_REGISTRY): a local folder, or a URI (str) such
    #: as s3://bucket/registry that several machines share (hindsight.core.folders reads either).
    registry_dir: Path | str
    #: Downloaded tools: DynamoDB Local, kinesalite (HINDSIGHT_TOOLS).
    tools_dir: Path
    #: Local state of services Hindsight starts: pid files, DynamoDB Local data (state, HINDSIGHT_STATE).
    state_dir: Path
    #: Folder of on-demand view modules (on_demand, HINDSIGHT_ON_DEMAND); default project_dir/on_demand.
    on_demand_dir: Path | None = None
    #: The online store section of hindsight.yml, env overrides applied (endpoint not yet resolved:
    #: see hindsight.online_sync.config.OnlineStoreConfig.from_settings).
    online_store: OnlineStoreSection = field(default_factory=OnlineStoreSection)
    #: The serving section of hindsight.yml, env overrides applied.
    serving: ServingSection = field(default_factory=ServingSection)
    #: The streams section of hindsight.yml (Kinesis, the consumer), env overrides applied.
    streams: StreamsSection = field(default_factory=StreamsSection)
    #: The s3 section of hindsight.yml, env overrides applied (see hindsight.core.object_store).
    s3: S3Section = field(default_factory=S3Section)
    #: The optimize section of hindsight.yml, env overrides applied (see hindsight.offline_store.optimize).
    optimize: OptimizeSection = field(default_factory=OptimizeSection)
    #: The hindsight.yml read, or None when the project has none (all defaults).
    config_file: Path | None = None

    def __post_init__(self) -> None:
        if self.on_demand_dir is None:
            object.__setattr__(self, "on_demand_dir", self.project_dir / "on_demand")

    @classmethod
    def load(
        cls,
        project_dir: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        require: bool = False,
    ) -> Settings:
        """The settings of the project in `project_dir` (default: see `find_project_dir`).

        Args:
            project_dir: the dbt project folder.
            environ: the environment to read overrides from (default os.environ).
            require: raise ProjectNotFound unless the folder holds a dbt_project.yml.

        Raises:
            hindsight.core.config.ConfigError: hindsight.yml or an override is invalid, a Delta
                location is a local path delta-rs cannot open (hindsight.core.delta_paths), or,
                with `require`, there is no dbt project there (ProjectNotFound).
        """
        env = os.environ if environ is None else environ
        project = find_project_dir(project_dir, env)
        if require:
            require_project(project)
        config = load_config(project, env)
        data = project / "data"

        def env_path(name: str, default: Path) -> Path:
            return _resolve(project, env.get(name) or default)

        config_file = project / CONFIG_FILE
        offline_store = _resolve_uri(project, config.offline_store)
        for setting, location in (("offline_store", offline_store),
                                  ("serving.sample_log", _resolve_uri(project, config.serving.sample_log))):
            variable = next(v for v, key in ENV_OVERRIDES.items() if key == setting)
            if problem := delta_path_problem(location, setting, f"hindsight.yml (or {variable})"):
                raise ConfigError(problem)
        return cls(
            project_dir=project,
            raw_data_dir=env_path("HINDSIGHT_RAW_DATA", data / "raw"),
            offline_store=offline_store,
            duckdb_path=env_path("HINDSIGHT_DUCKDB_PATH", data / "hindsight.duckdb"),
            dbt_target_dir=env_path("DBT_TARGET_PATH", project / "target"),
            registry_dir=config.registry if _URI.match(config.registry) else _resolve(project, config.registry),
            tools_dir=env_path("HINDSIGHT_TOOLS", project / ".tools"),
            state_dir=_resolve(project, config.state),
            on_demand_dir=_resolve(project, config.on_demand),
            online_store=config.online_store,
            serving=config.serving,
            streams=config.streams,
            s3=config.s3,
            optimize=config.optimize,
            config_file=config_file if config_file.is_file() else None,
        )

    @classmethod
    def from_env(cls, project_dir: str | os.PathLike[str] | None = None) -> Settings:
        """The former name of `load` (hindsight.yml is read too); kept for existing callers."""
        return cls.load(project_dir)

    @property
    def sample_log(self) -> str:
        """The served-features Delta table (serving.sample_log), an absolute path or a URI."""
        return _resolve_uri(self.project_dir, self.serving.sample_log)

    @property
    def manifest_path(self) -> Path:
        target = self.dbt_target_dir
        return (target if target.is_absolute() else self.project_dir / target) / "manifest.json"
