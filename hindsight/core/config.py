"""hindsight.yml: where a project's feature store lives, validated, with environment overrides.

Owns the file's schema (`ProjectConfig` and its sections), how the project folder is found
(`find_project_dir`: like dbt, the current folder or its nearest parent with a dbt_project.yml) and
which environment variable overrides which key (`ENV_OVERRIDES`). Reads `hindsight.yml` beside
`dbt_project.yml` and the environment; writes nothing. `hindsight.core.settings.Settings` turns the
result into absolute paths.

Validation uses pydantic (already installed with dbt-core, pinned in pyproject.toml): typed models
with `extra="forbid"` at every level give each unknown or mistyped key with its location, which
`_explain` turns into one line naming the key, the file and the nearest valid key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hindsight.core.suggest import did_you_mean

CONFIG_FILE = "hindsight.yml"
PROJECT_FILE = "dbt_project.yml"
PROJECT_DIR_ENV = "HINDSIGHT_PROJECT_DIR"


class ConfigError(ValueError):
    """hindsight.yml or an environment override is invalid; the message names the key and the fix."""


class ProjectNotFound(ConfigError):
    """The project folder holds no dbt_project.yml."""


class _Section(BaseModel):
    # strict: YAML already gives typed values, so `port: true` or `workers: "2"` is a mistake to
    # report, not a value to coerce. Environment values (always text) are validated leniently.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


class OnlineStoreSection(_Section):
    """`online_store:`: which DynamoDB holds the online features."""

    endpoint: str | None = None
    """DynamoDB endpoint URL (DynamoDB Local); None: AWS through boto3's normal chain."""
    region: str | None = None
    """AWS region; None: boto3's chain (AWS_REGION, ~/.aws/config)."""
    table_prefix: str = Field("hindsight_", pattern=r"^[A-Za-z0-9_.-]*$")
    """Prepended to each feature view's table name; lets deployments share an account."""

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("should be an http:// or https:// URL such as http://127.0.0.1:8000")
        return value


class ServingSection(_Section):
    """`serving:`: where `hindsight serve` listens."""

    host: str = "127.0.0.1"
    """Interface to bind; 0.0.0.0 exposes the API to the network."""
    port: int = Field(8080, ge=1, le=65535)
    """TCP port of the API."""
    workers: int | None = Field(None, ge=1)
    """Worker processes; None: one per core, 2 to 8."""
    auth: Literal["keys", "none"] = "keys"
    """`keys`: every request but /healthz and /readyz needs an API key; `none`: loopback hosts only."""
    key_cache_seconds: float = Field(5.0, ge=0, le=3600)
    """Seconds a server trusts an API key lookup: a revoked key works at most this long."""
    sample_rate: float = Field(0.01, ge=0, le=1)
    """Share of served feature vectors logged to `sample_log` for `hindsight drift`; 0 logs none."""
    sample_log: str = "data/served_features"
    """Delta table of the sampled feature vectors: a path (relative to the project) or a URI."""


class StreamsSection(_Section):
    """`streams:`: where stream events come from (Kinesis) and how often they reach the event logs."""

    kinesis_endpoint: str | None = None
    """Kinesis endpoint URL (kinesalite); None: the one `hindsight stream up` recorded, else AWS
    through boto3's normal chain."""
    region: str | None = None
    """AWS region of the Kinesis streams; None: boto3's chain (AWS_REGION, ~/.aws/config)."""
    flush_interval: float = Field(1.0, gt=0, le=3600)
    """Seconds between two flushes of ingested events to the Delta event logs (`stream run`)."""
    poll_interval: float = Field(0.2, ge=0, le=60)
    """Seconds a consumer waits before polling an idle shard again (Kinesis allows 5 GetRecords/s per shard)."""
    lease_seconds: float = Field(20.0, gt=0, le=3600)
    """Seconds a consumer owns a shard without renewing its lease: a dead consumer's shards move then."""

    @field_validator("kinesis_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("should be an http:// or https:// URL such as http://127.0.0.1:4567")
        return value


class S3Section(_Section):
    """`s3:`: how Hindsight reaches S3 where a location is an s3:// URI (offline_store, registry,
    serving.sample_log). Credentials come from AWS's normal chains (environment, ~/.aws, roles)."""

    endpoint_url: str | None = None
    """Endpoint of an S3-compatible store (MinIO, Ceph, moto); None: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS."""
    region: str | None = None
    """The buckets' region; None: boto3's chain (AWS_REGION, ~/.aws/config), else us-east-1."""

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("should be an http:// or https:// URL such as http://127.0.0.1:9000")
        return value


class OptimizeSection(_Section):
    """`optimize:`: how `hindsight optimize` rewrites feature views' Delta tables into fewer, larger files."""

    target_file_size_mb: int = Field(256, ge=1, le=4096)
    """Size (MB) the rewritten Parquet files aim at; smaller files are merged up to it."""
    min_small_files: int = Field(2, ge=2)
    """A partition is rewritten only when it holds at least this many files below the target size."""
    z_order: bool = False
    """Also z-order rewritten files by the view's entity keys: reads of a few entities skip files,
    but a training set (which reads every row) measured slower, so it is off by default."""


class ProjectConfig(_Section):
    """The whole hindsight.yml; every key is optional."""

    offline_store: str = "data/offline_store"
    """Root of the Delta tables: a path (relative to the project) or a URI such as s3://bucket/x."""
    registry: str = "data/registry"
    """Folder of the versioned registry files: a path (relative to the project) or a URI such as s3://bucket/x."""
    state: str = "data/state"
    """Pid files, logs and data of the services Hindsight starts (DynamoDB Local, Sail, serve)."""
    on_demand: str = "on_demand"
    """Folder of on-demand feature view modules (*.py)."""
    online_store: OnlineStoreSection = OnlineStoreSection()
    """The online store."""
    serving: ServingSection = ServingSection()
    """The serving API."""
    streams: StreamsSection = StreamsSection()
    """Stream sources: Kinesis and the stream consumer."""
    s3: S3Section = S3Section()
    """S3 and S3-compatible object stores."""
    optimize: OptimizeSection = OptimizeSection()
    """`hindsight optimize`: file sizes and ordering of the feature views' Delta tables."""

    @field_validator("state", "on_demand")
    @classmethod
    def _local_path(cls, value: str) -> str:
        # Pid files and Python modules belong to one machine: only what machines share may be a URI.
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise ValueError(f"should be a local folder (a path relative to the project, such as data/state), not a URI: {value!r}")
        return value


#: Environment variable -> the key it overrides (an empty variable counts as unset).
ENV_OVERRIDES: dict[str, str] = {
    "HINDSIGHT_OFFLINE_STORE": "offline_store",
    "HINDSIGHT_REGISTRY": "registry",
    "HINDSIGHT_STATE": "state",
    "HINDSIGHT_ON_DEMAND": "on_demand",
    "HINDSIGHT_DYNAMODB_ENDPOINT": "online_store.endpoint",
    "HINDSIGHT_DYNAMODB_REGION": "online_store.region",
    "HINDSIGHT_DYNAMODB_TABLE_PREFIX": "online_store.table_prefix",
    "HINDSIGHT_HOST": "serving.host",
    "HINDSIGHT_PORT": "serving.port",
    "HINDSIGHT_WORKERS": "serving.workers",
    "HINDSIGHT_SERVING_AUTH": "serving.auth",
    "HINDSIGHT_SERVING_KEY_CACHE_SECONDS": "serving.key_cache_seconds",
    "HINDSIGHT_SERVING_SAMPLE_RATE": "serving.sample_rate",
    "HINDSIGHT_SERVING_SAMPLE_LOG": "serving.sample_log",
    "HINDSIGHT_KINESIS_ENDPOINT": "streams.kinesis_endpoint",
    "HINDSIGHT_KINESIS_REGION": "streams.region",
    "HINDSIGHT_STREAM_FLUSH_INTERVAL": "streams.flush_interval",
    "HINDSIGHT_STREAM_POLL_INTERVAL": "streams.poll_interval",
    "HINDSIGHT_STREAM_LEASE_SECONDS": "streams.lease_seconds",
    "HINDSIGHT_S3_ENDPOINT_URL": "s3.endpoint_url",
    "HINDSIGHT_S3_REGION": "s3.region",
    "HINDSIGHT_OPTIMIZE_TARGET_FILE_SIZE_MB": "optimize.target_file_size_mb",
}


def find_project_dir(project_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The project folder: `project_dir`, else $HINDSIGHT_PROJECT_DIR, else (as dbt does) the current
    folder or its nearest parent holding a dbt_project.yml, else the current folder. Absolute."""
    env = os.environ if environ is None else environ
    chosen = project_dir or env.get(PROJECT_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    cwd = Path.cwd()
    return next((p for p in (cwd, *cwd.parents) if (p / PROJECT_FILE).is_file()), cwd)


def require_project(project_dir: Path) -> None:
    """Raise ProjectNotFound unless `project_dir` holds a dbt_project.yml."""
    if not (project_dir / PROJECT_FILE).is_file():
        where = "does not exist" if not project_dir.exists() else f"has no {PROJECT_FILE}"
        raise ProjectNotFound(
            f"{project_dir} {where}: Hindsight works inside a dbt project; run it from the project's folder "
            f"or pass --project-dir (project_dir= in Python, or set {PROJECT_DIR_ENV})"
        )


def load_config(project_dir: Path, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """`project_dir/hindsight.yml` (all defaults if there is none), validated, with env overrides.

    Raises:
        ConfigError: unreadable YAML, an unknown key or a value of the wrong type, named.
    """
    path = project_dir / CONFIG_FILE
    data = _read_yaml(path)
    # `serving:` with every key under it commented out is YAML null: the section's defaults.
    data = {k: v for k, v in data.items() if not (v is None and _valid_keys(ProjectConfig).get(k))}
    try:
        from_file = ProjectConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_explain(error, f"in {path}")) from None
    env = os.environ if environ is None else environ
    overrides = {name: env[name] for name in ENV_OVERRIDES if env.get(name)}
    if not overrides:
        return from_file
    merged = from_file.model_dump()
    for name, value in overrides.items():
        section, _, key = ENV_OVERRIDES[name].rpartition(".")
        (merged[section] if section else merged)[key] = value
    try:
        # Lenient: "8080" from the environment is the integer 8080.
        return ProjectConfig.model_validate(merged, strict=False)
    except ValidationError as error:
        keys = {v: k for k, v in ENV_OVERRIDES.items() if k in overrides}
        raise ConfigError(_explain(error, "from the environment", env_names=keys)) from None


def sources(project_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each key's value comes from: the environment variable, the file, or the default.

    Call after `load_config` succeeded (it does not validate).
    """
    env = os.environ if environ is None else environ
    data = _read_yaml(project_dir / CONFIG_FILE)
    by_key = {key: name for name, key in ENV_OVERRIDES.items() if env.get(name)}
    found: dict[str, str] = {}
    for key, section in _valid_keys(ProjectConfig).items():
        if section is not None:
            continue
        head, _, leaf = key.rpartition(".")
        in_file = leaf in (data.get(head) or {}) if head else leaf in data
        found[key] = f"env {by_key[key]}" if key in by_key else CONFIG_FILE if in_file else "default"
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason}): "
                          "it should be YAML such as `offline_store: data/offline_store`") from None
    except OSError as error:
        raise ConfigError(f"{path} cannot be read: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} should be a mapping of keys ({', '.join(ProjectConfig.model_fields)}), "
                          f"got {type(data).__name__}")
    return data


def _valid_keys(model: type[BaseModel], prefix: str = "") -> dict[str, type[BaseModel] | None]:
    """Every dotted key of `model` -> its section model (None for a leaf)."""
    keys: dict[str, type[BaseModel] | None] = {}
    for name, field in model.model_fields.items():
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        keys[prefix + name] = sub
        if sub is not None:
            keys.update(_valid_keys(sub, f"{prefix}{name}."))
    return keys


def _explain(error: ValidationError, where: str, env_names: Mapping[str, str] | None = None) -> str:
    """One line per problem: the key (or env variable), where it came from, and the fix."""
    valid = _valid_keys(ProjectConfig)
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            parent, _, leaf = key.rpartition(".")
            siblings = [k for k in valid if k.rpartition(".")[0] == parent]
            # Compared by their last part: under `online_store.` every key shares the prefix.
            hint = did_you_mean(leaf, [k.rpartition(".")[2] for k in siblings])
            if hint and parent:
                hint = hint.replace("mean ", f"mean {parent}.").replace(", ", f", {parent}.")
            if not hint:
                # A key put in the wrong section (`port:` at the top level) points to its section.
                elsewhere = [k for k in valid if k.rpartition(".")[2] == leaf and k != key]
                hint = f" (did you mean {elsewhere[0]}?)" if elsewhere else f" (valid keys here: {', '.join(siblings)})"
            lines.append(f"unknown key '{key}' {where}{hint}")
            continue
        message = problem["msg"].removeprefix("Value error, ")
        message = message.replace("Input should be", "should be")
        if problem["type"] in ("model_type", "model_attributes_type", "dict_type"):
            fields = valid.get(key)
            names = ", ".join(fields.model_fields) if fields else ""
            message = f"should be a mapping of keys ({names})"
        name = (env_names or {}).get(key)
        subject = f"{name}={problem['input']!r} ('{key}')" if name else f"'{key}' {where}"
        got = "" if name else f", got {problem['input']!r}"
        lines.append(f"{subject} {message}{got}")
    return "\n".join(lines)
