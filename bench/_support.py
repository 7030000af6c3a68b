"""What the benchmarks share: the demo dbt project copied into a folder of its own, run with the venv's dbt.

Every path of a bench project lives under its folder (raw data, Delta tables, DuckDB file, registry,
target/), whatever the caller's environment says, so a benchmark never touches the repo's data/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from hindsight.core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
#: The dbt project's files, copied into each bench project.
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests/dbt")
BIN = Path(sys.executable).parent


class CommandFailed(RuntimeError):
    """A dbt (or hindsight) command of a bench project exited non-zero."""


@dataclass(frozen=True)
class BenchProject:
    """A dbt project folder with its own raw data, Delta tables, DuckDB file and registry."""

    root: Path
    #: The profile's output dbt runs against: "local" (DuckDB) or "spark".
    target: str = "local"
    #: Spark Connect URL of the spark target (HINDSIGHT_SPARK_REMOTE).
    spark_remote: str | None = None

    @property
    def settings(self) -> Settings:
        data = self.root / "data"
        return Settings(
            project_dir=self.root,
            raw_data_dir=data / "raw",
            offline_store=str(data / "offline_store"),
            duckdb_path=data / "hindsight.duckdb",
            dbt_target_dir=self.root / "target",
            registry_dir=data / "registry",
            tools_dir=REPO / ".tools",
            state_dir=data / "state",
        )

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {
            **os.environ,
            "HINDSIGHT_PROJECT_DIR": str(self.root),
            "HINDSIGHT_RAW_DATA": str(s.raw_data_dir),
            "HINDSIGHT_OFFLINE_STORE": s.offline_store,
            "HINDSIGHT_DUCKDB_PATH": str(s.duckdb_path),
            "HINDSIGHT_REGISTRY": str(s.registry_dir),
            "HINDSIGHT_STATE": str(s.state_dir),
            "DBT_TARGET_PATH": str(s.dbt_target_dir),
            "DBT_LOG_PATH": str(self.root / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "HINDSIGHT_TARGET": self.target,
        }
        if self.spark_remote is not None:
            # Sail keeps a catalog per Spark Connect session: one session per project folder.
            env["HINDSIGHT_SPARK_REMOTE"] = self.spark_remote
            env["HINDSIGHT_SPARK_SESSION_ID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, str(self.root)))
        return env

    def with_target(self, target: str, spark_remote: str | None = None) -> BenchProject:
        """The same folder, run against another profile output (e.g. "spark" at a Sail URL)."""
        return replace(self, target=target, spark_remote=spark_remote)

    def dbt(self, *args: str) -> None:
        """Run dbt in the project folder.

        Raises:
            CommandFailed: dbt exited non-zero; the message carries the end of its output.
        """
        result = subprocess.run([str(BIN / "dbt"), *args], cwd=self.root, env=self.env(), capture_output=True, text=True)
        if result.returncode != 0:
            raise CommandFailed(f"dbt {' '.join(args)} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")


def new_project(root: Path) -> BenchProject:
    """The repo's dbt project files copied into `root`, with no data yet."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    # The demo's on-demand views (its feature services name them) are the hindsight.on_demand
    # package's own modules: link the folder, as the tests' demo project does.
    (root / "on_demand").symlink_to(REPO / "on_demand", target_is_directory=True)
    (root / "data").mkdir(exist_ok=True)
    return BenchProject(root)
