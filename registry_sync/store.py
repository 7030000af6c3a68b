"""Registry versions on disk: one immutable JSON file per applied version.

`apply` writes `v000001.json`, `v000002.json`, ... under the registry folder (HINDSIGHT_REGISTRY);
every past version stays readable, so a training set or a deploy can name the one it used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from hindsight.registry_sync.errors import RegistryError
from hindsight.registry_sync.model import Registry

_VERSION_FILE = re.compile(r"v(\d{6})\.json")


class RegistryStore:
    """The applied registry versions in one folder."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def versions(self) -> list[int]:
        if not self.directory.exists():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _VERSION_FILE.fullmatch(p.name)))

    def latest(self) -> Registry | None:
        versions = self.versions()
        return self.read(versions[-1]) if versions else None

    def read(self, version: int) -> Registry:
        path = self._path(version)
        if not path.exists():
            known = ", ".join(map(str, self.versions())) or "none"
            raise RegistryError(f"registry version {version} does not exist in {self.directory} (versions: {known})")
        return Registry.from_dict(json.loads(path.read_text()))

    def write(self, registry: Registry) -> Registry:
        """Store `registry` as the next version and return it with its version number set.

        Two writers at once (two `hindsight apply`) get two distinct versions: each file is created
        exclusively, and a writer that finds its number taken retries with the next one.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        version = (self.versions() or [0])[-1] + 1
        while True:
            stamped = dataclasses.replace(
                registry, version=version, applied_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            )
            # Written in full to a temporary file, then hard-linked to its final name: the link
            # fails if the name exists (unlike a rename, which would replace another writer's
            # version), and a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(stamped.to_dict(), out, indent=2, sort_keys=True)
                os.link(tmp, self._path(version))
                return stamped
            except FileExistsError:
                version = max(version, *self.versions()) + 1
            finally:
                os.unlink(tmp)

    def _path(self, version: int) -> Path:
        return self.directory / f"v{version:06d}.json"


def same_definitions(a: Registry, b: Registry) -> bool:
    """True when two registries differ only in version stamps."""
    strip: dict[str, Any] = {"version": None, "applied_at": None, "manifest_generated_at": None}
    return dataclasses.replace(a, **strip) == dataclasses.replace(b, **strip)
