"""Registry versions: one immutable JSON file per applied version, in a local folder or on S3.

`apply` writes `v000001.json`, `v000002.json`, ... under the registry folder (HINDSIGHT_REGISTRY,
a path or an s3:// URI: hindsight.core.folders); every past version stays readable, so a training
set or a deploy can name the one it used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

from hindsight.core.folders import LocalFolder, open_folder
from hindsight.registry_sync.errors import RegistryError
from hindsight.registry_sync.model import Registry

_VERSION_FILE = re.compile(r"v(\d{6})\.json")


_USE_AN_APPLIED_FILE = "use a file `hindsight apply` wrote (a registry version such as v000001.json)"


def registry_from_bytes(data: bytes, where: str, fix: str = _USE_AN_APPLIED_FILE) -> Registry:
    """A registry from a file's bytes (a version file, or a pinned `--registry` file).

    Raises:
        RegistryError: naming `where`, what is wrong (not UTF-8 JSON, or not a registry) and `fix`.
    """
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise RegistryError(f"{where} is not a registry: not JSON ({error}); {fix}") from None
    try:
        return Registry.from_dict(parsed)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        missing = f"no {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
        raise RegistryError(f"{where} is not a registry ({missing}); {fix}") from None


def read_registry_file(path: str | os.PathLike[str]) -> Registry:
    """The registry in a local JSON file; RegistryError naming the file when it cannot be one."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RegistryError(f"cannot read the registry file {os.fspath(path)}: {error.strerror}") from None
    return registry_from_bytes(data, os.fspath(path))


class RegistryStore:
    """The applied registry versions in one folder (local, or an S3 prefix several machines share)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.folder = open_folder(directory)
        #: The local folder as a Path; an S3 registry's URI.
        self.directory: Path | str = self.folder.path if isinstance(self.folder, LocalFolder) else str(self.folder)

    def versions(self) -> list[int]:
        return sorted(int(m.group(1)) for name in self.folder.names() if (m := _VERSION_FILE.fullmatch(name)))

    def latest(self) -> Registry | None:
        versions = self.versions()
        return self.read(versions[-1]) if versions else None

    def read(self, version: int) -> Registry:
        data = self.folder.read(_name(version))
        if data is None:
            known = ", ".join(map(str, self.versions())) or "none"
            raise RegistryError(f"registry version {version} does not exist in {self.directory} (versions: {known})")
        return registry_from_bytes(data, f"{self.directory}/{_name(version)}",
                                   "the version file is damaged: `hindsight apply` writes a new version")

    def write(self, registry: Registry) -> Registry:
        """Store `registry` as the next version and return it with its version number set.

        Two writers at once (two `hindsight apply`, on one machine or two) get two distinct
        versions: each file is created only if its name is free (a hard link locally, a
        conditional PUT on S3), and a writer that finds its number taken retries with the next one.
        """
        version = (self.versions() or [0])[-1] + 1
        while True:
            stamped = dataclasses.replace(
                registry, version=version, applied_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            )
            if self.folder.create(_name(version), json.dumps(stamped.to_dict(), indent=2, sort_keys=True).encode()):
                return stamped
            version = max(version, *self.versions()) + 1


def _name(version: int) -> str:
    return f"v{version:06d}.json"


def same_definitions(a: Registry, b: Registry) -> bool:
    """True when two registries differ only in version stamps."""
    strip: dict[str, Any] = {"version": None, "applied_at": None, "manifest_generated_at": None}
    return dataclasses.replace(a, **strip) == dataclasses.replace(b, **strip)
