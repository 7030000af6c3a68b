"""Feature contracts: what applied feature services expect of each feature view's Delta table.

`hindsight apply` (registry_sync) writes `<registry>/contracts.jsonl` through `write_contracts`;
the `feature_view` materialization reads it before it writes (on DuckDB `delta_writer` through
`read_contract`; on Spark the engine reads the same file, see
macros/materializations/feature_view/spark_check_contract.sql) and refuses a write that would break a
contract, before anything is committed. This module owns the file's format, so the
materialization never imports the registry.

An aggregation view's contracted columns are the tile part columns its used features are computed
from (`amount__sum`, `_events`, ...; offline_store/tiles.py), each `used_by` naming the consumer and
those features ("feature service fraud (amount_sum_7d)"): the gate below needs no special case.

Types are Delta's own type names (`long`, `double`, `string`, `timestamp`, `decimal(10,2)`): the
table records them whatever Arrow spelling a writer used (`string`, `large_string` and
`string_view` are all Delta `string`), and Spark shows the same names.

JSON Lines, one flat record per contracted column, so Spark reads it as a table (the second record
is folded here to fit the page):

    {"format": 1, "registry_version": 3, "view": "user_profile", "column": "user_id", "role": "key", "type": "long", "used_by": []}
    {"format": 1, "registry_version": 3, "view": "user_profile", "column": "credit_limit", "role": "feature",
     "type": "double", "used_by": ["feature service fraud_detection"]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import Schema
from deltalake.schema import PrimitiveType

from hindsight.core.folders import open_folder
from hindsight.core.object_store import is_s3

FILE_NAME = "contracts.jsonl"
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


def contracts_path(registry_dir: str | os.PathLike) -> Path | str:
    """The contracts file of a registry folder: a Path, or a URI for a registry on S3."""
    if is_s3(registry_dir):
        return f"{str(registry_dir).rstrip('/')}/{FILE_NAME}"
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


def write_contracts(registry_dir: str | os.PathLike, views: dict[str, ViewContract], registry_version: int | None) -> Path | str:
    """Replace the contracts file atomically (a running dbt never reads half of it)."""
    head = {"format": FORMAT, "registry_version": registry_version}
    records: list[dict[str, Any]] = []
    for name, view in sorted(views.items()):
        for key, dtype in view.join_keys.items():
            records.append({**head, "view": name, "column": key, "role": "key", "type": dtype, "used_by": []})
        for feature, used in sorted(view.features.items()):
            records.append({**head, "view": name, "column": feature, "role": "feature", "type": used.dtype, "used_by": list(used.used_by)})
    # A whole-file replace (hindsight.core.folders): locally a rename, on S3 one PUT.
    open_folder(registry_dir).replace(FILE_NAME, "".join(json.dumps(record, sort_keys=True) + "\n" for record in records).encode())
    return contracts_path(registry_dir)


def read_contract(path: str | os.PathLike | None, view: str) -> ViewContract | None:
    """The contract of `view`, or None when nothing is applied or no consumer uses the view.

    Raises:
        ValueError: the file exists but is not a contracts file this version can read.
    """
    if not path:
        return None
    folder, _, name = str(path).rpartition("/")
    data = open_folder(folder or ".").read(name)
    if data is None:
        return None
    join_keys: dict[str, str] = {}
    features: dict[str, UsedFeature] = {}
    for number, line in enumerate(data.decode().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} line {number} is not valid JSON ({error}); rerun `hindsight apply` to rewrite it") from error
        if record.get("format") != FORMAT:
            raise ValueError(f"{path} has format {record.get('format')!r}, this Hindsight reads format {FORMAT}; rerun `hindsight apply`")
        if record["view"] != view:
            continue
        if record["role"] == "key":
            join_keys[record["column"]] = record["type"]
        else:
            features[record["column"]] = UsedFeature(dtype=record["type"], used_by=tuple(record.get("used_by") or ()))
    if not join_keys and not features:
        return None
    return ViewContract(join_keys=join_keys, features=features)


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
