"""Feature contracts: what applied feature services expect of each feature view's Delta table.

`hindsight apply` (registry_sync) writes `<registry>/contracts.json` through `write_contracts`;
the `feature_view` materialization's writer (`delta_writer`) reads it with `read_contracts` and
refuses a write that would break a contract, before anything is committed. This module owns the
file's format, so the materialization never imports the registry.

Types are Delta's own type names (`long`, `double`, `string`, `timestamp`, `decimal(10,2)`): the
table records them whatever Arrow spelling a writer used (`string`, `large_string` and
`string_view` are all Delta `string`), and Spark shows the same names.

    {"format": 1, "registry_version": 3, "views": {"user_profile": {
        "join_keys": {"user_id": "long"},
        "features": {"credit_limit": {"type": "double", "used_by": ["feature service fraud_detection"]}}}}}
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import Schema
from deltalake.schema import PrimitiveType

FILE_NAME = "contracts.json"
FORMAT = 1


@dataclass(frozen=True)
class UsedFeature:
    """A feature some consumer reads: its Delta type and who reads it."""

    dtype: str
    #: e.g. "feature service fraud_detection", "on-demand view transaction_context".
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class ViewContract:
    """What consumers of one feature view rely on."""

    #: Join-key column -> Delta type, in the view's order.
    join_keys: dict[str, str]
    features: dict[str, UsedFeature] = field(default_factory=dict)

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(sorted({u for f in self.features.values() for u in f.used_by}))


@dataclass(frozen=True)
class Breach:
    """One way a new schema breaks a contract."""

    column: str
    #: "removed", "changed type" or "changed keys".
    kind: str
    old: str
    new: str
    used_by: tuple[str, ...]

    def __str__(self) -> str:
        users = f" (used by {', '.join(self.used_by)})"
        if self.kind == "removed":
            return f"{self.column} ({self.old}) is removed{users}"
        if self.kind == "changed keys":
            return f"join keys change {self.old} -> {self.new}{users}"
        return f"{self.column} changes type {self.old} -> {self.new}{users}"


def contracts_path(registry_dir: str | os.PathLike) -> Path:
    return Path(registry_dir) / FILE_NAME


def delta_type_names(schema: pa.Schema) -> dict[str, str]:
    """Column -> Delta type name of an Arrow schema, as delta-rs would record it.

    >>> delta_type_names(pa.schema([("n", pa.int64()), ("s", pa.large_string())]))
    {'n': 'long', 's': 'string'}
    """
    return {f.name: _type_name(f.type) for f in Schema.from_arrow(schema).fields}


def _type_name(dtype: Any) -> str:
    # Primitive types carry their name in `.type`; nested ones (array, map, struct) spell their parts.
    return dtype.type if isinstance(dtype, PrimitiveType) else str(dtype)


def write_contracts(registry_dir: str | os.PathLike, views: dict[str, ViewContract], registry_version: int | None) -> Path:
    """Replace the contracts file atomically (a running dbt never reads half of it)."""
    path = contracts_path(registry_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT,
        "registry_version": registry_version,
        "views": {
            name: {
                "join_keys": dict(view.join_keys),
                "features": {
                    feature: {"type": used.dtype, "used_by": list(used.used_by)}
                    for feature, used in sorted(view.features.items())
                },
            }
            for name, view in sorted(views.items())
        },
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(document, out, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def read_contract(path: str | os.PathLike | None, view: str) -> ViewContract | None:
    """The contract of `view`, or None when nothing is applied or no consumer uses the view.

    Raises:
        ValueError: the file exists but is not a contracts file this version can read.
    """
    if not path or not os.path.exists(path):
        return None
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); rerun `hindsight apply` to rewrite it") from error
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} has format {document.get('format')!r}, this Hindsight reads format {FORMAT}; rerun `hindsight apply`")
    found = (document.get("views") or {}).get(view)
    if not found:
        return None
    return ViewContract(
        join_keys=dict(found.get("join_keys") or {}),
        features={
            name: UsedFeature(dtype=spec["type"], used_by=tuple(spec.get("used_by") or ()))
            for name, spec in (found.get("features") or {}).items()
        },
    )


def breaches(contract: ViewContract, schema: pa.Schema, join_keys: tuple[str, ...]) -> list[Breach]:
    """How a table with `schema` and `join_keys` would break `contract` (empty: it would not)."""
    types = delta_type_names(schema)
    found: list[Breach] = []
    everyone = contract.users
    if tuple(contract.join_keys) != tuple(join_keys):
        found.append(Breach("", "changed keys", str(list(contract.join_keys)), str(list(join_keys)), everyone))
    for name, dtype in contract.join_keys.items():
        if name in types and types[name] != dtype:
            found.append(Breach(name, "changed type", dtype, types[name], everyone))
    for name, used in sorted(contract.features.items()):
        if name not in types:
            found.append(Breach(name, "removed", used.dtype, "", used.used_by))
        elif types[name] != used.dtype:
            found.append(Breach(name, "changed type", used.dtype, types[name], used.used_by))
    return found
