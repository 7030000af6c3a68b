"""Keep dbt's manifest.json current with the project's files before a registry is built from it.

`plan` and `apply` must judge the project as it is now, not the last `dbt build`: `parse_project`
runs `dbt parse` in process (dbt's programmatic API, `dbtRunner`), and `stale_files` lists the
project files changed since the manifest was written, for callers told not to parse (a CI job
that has just run dbt). Reads the project's files and dbt_project.yml; writes target/ (dbt's).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hindsight.core.settings import Settings
from hindsight.registry_sync.errors import RegistryError

#: Files at the project root that change what dbt parses.
_ROOT_FILES = ("dbt_project.yml", "packages.yml", "dependencies.yml", "selectors.yml")
#: dbt_project.yml keys naming folders dbt reads, with dbt's defaults.
_PATH_KEYS = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
}
#: What dbt parses in those folders (docs blocks live in .md, seeds in .csv).
_SUFFIXES = {".sql", ".yml", ".yaml", ".py", ".md", ".csv"}


def parse_project(settings: Settings) -> float:
    """Run `dbt parse` on the project so manifest.json reflects its current files.

    Partial parsing makes a second parse of an unchanged project cheap.

    Returns:
        The seconds the parse took, importing dbt included.

    Raises:
        RegistryError: dbt could not parse the project; the message is dbt's.
    """
    started = time.perf_counter()
    # dbt's console log would mix into `plan --json`; its errors come back in the result instead.
    result = invoke_dbt(settings, ["parse", "--target-path", str(settings.manifest_path.parent.resolve()), "--log-level", "none"])
    if not result.success:
        reason = result.exception or "see logs/dbt.log"
        raise RegistryError(f"dbt could not parse the project in {settings.project_dir.resolve()}:\n{reason}")
    return time.perf_counter() - started


def compile_models(settings: Settings, unique_ids: list[str]) -> dict[str, str]:
    """The compiled SQL of the given models (`dbt compile --select`, in process), by unique id.

    The registry needs a stream-fed view's compiled SQL (its `stream_sql`), which `dbt parse` does
    not produce; `dbt compile` of just those models does, connecting to the project's engine (it
    runs no hooks and builds nothing).

    Raises:
        RegistryError: dbt could not compile them; the message is dbt's.
    """
    names = sorted({uid.split(".")[-1] for uid in unique_ids})
    result = invoke_dbt(settings, ["compile", "--target-path", str(settings.manifest_path.parent.resolve()),
                                   "--select", *names, "--log-level", "none"])
    if not result.success:
        reason = result.exception or "see logs/dbt.log"
        raise RegistryError(f"dbt could not compile {', '.join(names)} in {settings.project_dir.resolve()} "
                            f"(the SQL of stream-fed views):\n{reason}")
    compiled = {}
    for run in getattr(result.result, "results", None) or ():
        node = getattr(run, "node", None)
        if node is not None and node.unique_id in unique_ids and getattr(node, "compiled_code", None):
            compiled[node.unique_id] = node.compiled_code
    return compiled


def invoke_dbt(settings: Settings, args: list[str]) -> Any:
    """Run a dbt command in process (dbt's `dbtRunner`) on the project, as `dbt` run in its folder would.

    `args` is the command and its options; the project folder is added, and its profiles.yml unless
    DBT_PROFILES_DIR names another. The command runs from the project folder: a profile's relative
    paths (dbt-duckdb's `path: data/x.duckdb`) mean there what they mean to the user's own `dbt`
    runs, wherever the calling process is (a notebook, `hindsight --project-dir`).

    Returns:
        dbt's `dbtRunnerResult` (`success`, `exception`, `result`).
    """
    from dbt.cli.main import dbtRunner  # imported here: dbt takes seconds to import

    project = settings.project_dir.resolve()
    args = [*args, "--project-dir", str(project)]
    if not os.environ.get("DBT_PROFILES_DIR") and (project / "profiles.yml").exists():
        args += ["--profiles-dir", str(project)]
    try:
        with contextlib.chdir(project):
            return dbtRunner().invoke(args)
    finally:
        _close_dbt_duckdb()


def _close_dbt_duckdb() -> None:
    """Close the database dbt-duckdb keeps open in this process after a command.

    dbt-duckdb keeps its DuckDB connection in a class attribute for the next command, so the
    calling process (a notebook that built a registry, `hindsight apply`) would hold the file's
    lock until it exits, and the user's own `dbt run` would fail to open the file meanwhile.
    """
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    environment = manager._ENV
    manager.close_all_connections()
    if environment is not None:
        environment.close()


def stale_files(settings: Settings) -> list[Path]:
    """The project files modified after manifest.json was written (all of them if it is missing)."""
    manifest = settings.manifest_path
    written = manifest.stat().st_mtime_ns if manifest.exists() else -1
    return sorted(p for p in _project_files(settings.project_dir) if p.stat().st_mtime_ns > written)


def require_current_manifest(settings: Settings) -> None:
    """Refuse a manifest older than the project files (the `--no-parse` path).

    Raises:
        RegistryError: naming the newer files and how to refresh the manifest.
    """
    manifest = settings.manifest_path
    if not manifest.exists():
        raise RegistryError(f"no dbt manifest at {manifest}: run `dbt parse` (or drop --no-parse)")
    newer = stale_files(settings)
    if newer:
        shown = ", ".join(str(p.relative_to(settings.project_dir)) for p in newer[:5])
        more = f" and {len(newer) - 5} more" if len(newer) > 5 else ""
        raise RegistryError(
            f"{manifest} is older than {len(newer)} project file(s) changed since ({shown}{more}): "
            "run `dbt parse` (or `dbt build`) first, or drop --no-parse to let hindsight parse"
        )


def _project_files(project_dir: Path) -> Iterator[Path]:
    for name in _ROOT_FILES:
        if (project_dir / name).is_file():
            yield project_dir / name
    config_file = project_dir / "dbt_project.yml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    folders = {folder for key, default in _PATH_KEYS.items() for folder in (config.get(key) or default)}
    for folder in sorted(folders):
        root = project_dir / folder
        if root.is_dir():
            yield from (p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
