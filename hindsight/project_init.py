"""`hindsight init`: add Hindsight to an existing dbt project, the way a dbt user adds dbt-utils.

Reads and edits, in the dbt project folder: dbt_project.yml (the `dispatch` search order that lets
the package's `is_incremental` override apply; `+materialized: feature_view` for models/features/),
packages.yml (a `local:` entry for the dbt package shipped in this distribution), the project's
profile in the profiles.yml dbt would use (the Delta plugin and UTC for dbt-duckdb outputs), and
hindsight.yml (written with the documented defaults if absent).

Every edit only adds what is missing: YAML is edited round-trip (ruamel.yaml keeps comments, key
order and quoting) and a file is written only when something was added, so a second run changes
nothing. A value the user set differently is left alone and reported as a note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from hindsight.dbt_package_dir import PACKAGE_NAME, package_dir

PLUGIN_MODULE = "hindsight.offline_store.dbt_plugin"

#: hindsight.yml as `hindsight init` writes it: every key at its documented default.
HINDSIGHT_YML = """\
# hindsight.yml: where this project's feature store lives. Environment variables override each key.
offline_store: data/offline_store   # HINDSIGHT_OFFLINE_STORE: root of the Delta tables (path or s3://... URI)
registry: data/registry             # HINDSIGHT_REGISTRY: versioned registry files
state: data/state                   # HINDSIGHT_STATE: pid files and data of services Hindsight starts
on_demand: on_demand                # HINDSIGHT_ON_DEMAND: folder of on-demand view modules (*.py)
online_store:
  endpoint: null                    # HINDSIGHT_DYNAMODB_ENDPOINT; null: AWS through boto3's normal chain
  region: null                      # HINDSIGHT_DYNAMODB_REGION; null: boto3's chain (AWS_REGION, ~/.aws)
  table_prefix: hindsight_          # HINDSIGHT_DYNAMODB_TABLE_PREFIX
serving:
  host: 127.0.0.1                   # HINDSIGHT_HOST
  port: 8080                        # HINDSIGHT_PORT
  workers: 2                        # HINDSIGHT_WORKERS
"""


class InitError(ValueError):
    """The folder is not a dbt project `hindsight init` can set up (the message says why)."""


@dataclass
class InitResult:
    """What `init_project` did: one line per change, and notes on what it left alone."""

    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def init_project(project_dir: Path, profiles_dir: Path | None = None) -> InitResult:
    """Set up the dbt project in `project_dir` to use Hindsight; idempotent.

    Args:
        project_dir: the folder holding the user's dbt_project.yml.
        profiles_dir: the folder of the profiles.yml to edit (default: where dbt looks:
            DBT_PROFILES_DIR, then the project folder, then ~/.dbt).

    Raises:
        InitError: no dbt_project.yml there, it cannot be read, or it is Hindsight's own project.
    """
    project_dir = project_dir.resolve()
    project_file = project_dir / "dbt_project.yml"
    if not project_file.is_file():
        raise InitError(
            f"no dbt_project.yml in {project_dir}: run `hindsight init` inside an existing dbt project "
            "(or pass --project-dir); `dbt init` creates one"
        )
    result = InitResult()
    project = _YamlFile(project_file)
    name = project.data.get("name") if isinstance(project.data, dict) else None
    if not name:
        raise InitError(f"{project_file} has no project name (the `name:` key)")
    if name == PACKAGE_NAME:
        raise InitError(f"{project_dir} is Hindsight's own dbt project: it needs no `hindsight init`")

    _edit_dbt_project(project, name, result)
    project.save(result)
    _ensure_features_folder(project_dir, project.data, name, result)
    _edit_packages(project_dir, result)
    _edit_profile(project_dir, profiles_dir, project.data.get("profile") or name, result)
    _write_hindsight_yml(project_dir, result)
    return result


class _YamlFile:
    """A YAML file edited round-trip; `save` writes it only if an edit was made."""

    def __init__(self, path: Path, default: Any = None) -> None:
        self.path = path
        self.yaml = YAML()  # round-trip: comments, order and quotes survive
        self.yaml.preserve_quotes = True
        self.yaml.width = 4096
        self.yaml.indent(mapping=2, sequence=4, offset=2)
        self.existed = path.exists()
        try:
            loaded = self.yaml.load(path.read_text()) if self.existed else None
        except Exception as error:  # ruamel raises several error types; all mean "not valid YAML"
            raise InitError(f"cannot read {path}: {error}") from error
        self.data = loaded if loaded is not None else (default if default is not None else CommentedMap())
        self.edits: list[str] = []

    def changed(self, message: str) -> None:
        self.edits.append(message)

    def save(self, result: InitResult) -> None:
        if not self.edits:
            return
        with self.path.open("w") as out:
            self.yaml.dump(self.data, out)
        verb = "updated" if self.existed else "created"
        result.changes.extend(f"{verb} {self.path}: {edit}" for edit in self.edits)


def _mapping(parent: CommentedMap, key: str) -> CommentedMap:
    if not isinstance(parent.get(key), dict):
        parent[key] = CommentedMap()
    return parent[key]


def _edit_dbt_project(project: _YamlFile, name: str, result: InitResult) -> None:
    data = project.data
    # The package overrides dbt's is_incremental() (a custom materialization is not "incremental"
    # to dbt): dbt only finds a package's override of a dbt macro through this search order.
    dispatch = data.get("dispatch")
    if dispatch is None:
        dispatch = data["dispatch"] = CommentedSeq()
    entry = next((d for d in dispatch if isinstance(d, dict) and d.get("macro_namespace") == "dbt"), None)
    if entry is None:
        new_order = CommentedSeq([str(name), PACKAGE_NAME, "dbt"])
        new_order.fa.set_flow_style()
        dispatch.append(CommentedMap([("macro_namespace", "dbt"), ("search_order", new_order)]))
        if len(dispatch) == 1:
            data.yaml_set_comment_before_after_key(
                "dispatch", before="Hindsight's package overrides dbt's is_incremental() for feature views"
            )
        project.changed(f"dispatch: macro_namespace dbt searches [{name}, {PACKAGE_NAME}, dbt]")
    else:
        order: Any = entry.get("search_order")
        if order is None:
            order = entry["search_order"] = CommentedSeq([name, "dbt"])
        if PACKAGE_NAME not in order:
            order.insert(order.index("dbt") if "dbt" in order else len(order), PACKAGE_NAME)
            project.changed(f"dispatch: added {PACKAGE_NAME} to the search order of macro_namespace dbt")

    folder = _mapping(_mapping(_mapping(data, "models"), name), "features")
    for key, value in (("materialized", "feature_view"), ("on_schema_change", "fail")):
        current = folder.get(f"+{key}", folder.get(key))
        if current is None:
            folder[f"+{key}"] = value
            project.changed(f"models.{name}.features: +{key}: {value}")
        elif current != value:
            result.notes.append(
                f"{project.path}: models.{name}.features sets {key} to {current!r}, left as is "
                f"(feature views under models/features need {value!r})"
            )


def _ensure_features_folder(project_dir: Path, data: Any, name: str, result: InitResult) -> None:
    paths = data.get("model-paths") or data.get("source-paths") or ["models"]
    folder = project_dir / str(paths[0]) / "features"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        result.changes.append(f"created {folder}/ (models here are feature views: models.{name}.features)")


def _is_hindsight_local(path_text: str, project_dir: Path) -> bool:
    path = Path(path_text)
    path = path if path.is_absolute() else project_dir / path
    project_file = path / "dbt_project.yml"
    if project_file.is_file():
        try:
            return (YAML(typ="safe").load(project_file.read_text()) or {}).get("name") == PACKAGE_NAME
        except Exception:  # noqa: BLE001 - an unreadable dbt_project.yml is simply not ours
            return False
    # A path that no longer exists (an old virtualenv, a moved checkout) that init wrote before.
    return not path.exists() and path.parts[-2:] == ("hindsight", "dbt_package")


def _edit_packages(project_dir: Path, result: InitResult) -> None:
    # dbt reads dependencies.yml when there is no packages.yml.
    path = project_dir / "packages.yml"
    if not path.exists() and (project_dir / "dependencies.yml").exists():
        path = project_dir / "dependencies.yml"
    target = str(package_dir())
    packages = _YamlFile(path)
    entries = packages.data.get("packages")
    if entries is None:
        entries = packages.data["packages"] = CommentedSeq()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if "local" in entry and _is_hindsight_local(str(entry["local"]), project_dir):
            if str(entry["local"]) != target:
                old = entry["local"]
                entry["local"] = target
                packages.changed(f"the hindsight package now points at {target} (was {old})")
            break
        source = str(entry.get("git") or entry.get("package") or entry.get("tarball") or "")
        if "hindsight" in source.lower():
            result.notes.append(f"{path}: hindsight comes from {source}, left as is")
            break
    else:
        entries.append(CommentedMap([("local", target)]))
        packages.changed(f"added the hindsight dbt package (local: {target}); run `dbt deps`")
    packages.save(result)


def _profiles_file(project_dir: Path, profiles_dir: Path | None) -> Path:
    if profiles_dir is not None:
        return profiles_dir / "profiles.yml"
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"]) / "profiles.yml"
    if (project_dir / "profiles.yml").exists():
        return project_dir / "profiles.yml"
    return Path.home() / ".dbt" / "profiles.yml"


def _edit_profile(project_dir: Path, profiles_dir: Path | None, profile_name: str, result: InitResult) -> None:
    path = _profiles_file(project_dir, profiles_dir)
    if not path.exists():
        result.notes.append(f"no {path}: create the profile {profile_name!r} (dbt-duckdb), then rerun `hindsight init`")
        return
    profiles = _YamlFile(path)
    profile = profiles.data.get(profile_name) if isinstance(profiles.data, dict) else None
    outputs = profile.get("outputs") if isinstance(profile, dict) else None
    if not isinstance(outputs, dict):
        result.notes.append(f"{path} has no profile {profile_name!r} with outputs: add one, then rerun `hindsight init`")
        return
    for output_name, output in outputs.items():
        if not isinstance(output, dict) or output.get("type") != "duckdb":
            continue  # Spark and other engines read and write Delta themselves
        where = f"{profile_name}.outputs.{output_name}"
        plugins = output.get("plugins")
        if plugins is None:
            plugins = output["plugins"] = CommentedSeq()
        if not any(isinstance(p, dict) and p.get("module") == PLUGIN_MODULE for p in plugins):
            # The plugin writes feature views to Delta and loads DuckDB's delta extension from its
            # wheel, so the profile needs no `extensions:` entry (DuckDB cannot always download one).
            plugins.append(CommentedMap([("module", PLUGIN_MODULE), ("alias", PACKAGE_NAME)]))
            profiles.changed(f"{where}: plugin {PLUGIN_MODULE} (alias {PACKAGE_NAME})")
        settings = output.get("settings")
        if settings is None:
            settings = output["settings"] = CommentedMap()
        zone = settings.get("TimeZone", settings.get("timezone"))
        if zone is None:
            settings["TimeZone"] = "UTC"
            profiles.changed(f"{where}: settings TimeZone: UTC (feature timestamps are UTC)")
        elif str(zone).upper() != "UTC":
            result.notes.append(f"{path}: {where} sets TimeZone {zone}, left as is (Hindsight's windows assume UTC)")
    profiles.save(result)


def _write_hindsight_yml(project_dir: Path, result: InitResult) -> None:
    path = project_dir / "hindsight.yml"
    if not path.exists():
        path.write_text(HINDSIGHT_YML)
        result.changes.append(f"created {path} (the documented defaults)")
