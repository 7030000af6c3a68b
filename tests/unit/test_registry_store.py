"""Registry versions on disk: concurrent writers never share or lose a version."""

from __future__ import annotations

import json
import threading

from hindsight.registry_sync.model import Registry
from hindsight.registry_sync.store import RegistryStore


def test_concurrent_writers_get_distinct_versions(tmp_path):
    store = RegistryStore(tmp_path / "registry")
    writers = 8
    start = threading.Barrier(writers)
    written: list[int] = []

    def apply(n: int) -> None:
        start.wait()
        written.append(store.write(Registry(project=f"writer{n}")).version)

    threads = [threading.Thread(target=apply, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == list(range(1, writers + 1))
    assert store.versions() == list(range(1, writers + 1))
    # Every writer's registry is on disk under the version it was told, none overwritten.
    projects = {store.read(v).project for v in store.versions()}
    assert projects == {f"writer{n}" for n in range(writers)}
    for version in store.versions():
        assert json.loads((store.directory / f"v{version:06d}.json").read_text())["version"] == version
    assert not list(store.directory.glob("*.tmp"))


def test_a_writer_that_saw_a_stale_latest_takes_the_next_free_version(tmp_path, monkeypatch):
    store = RegistryStore(tmp_path)
    store.write(Registry(project="first"))
    store.write(Registry(project="second"))
    real_versions = store.versions
    stale = iter([[1]])  # the first call answers as if version 2 were not written yet
    monkeypatch.setattr(store, "versions", lambda: next(stale, None) or real_versions())
    third = store.write(Registry(project="third"))
    assert third.version == 3
    assert [store.read(v).project for v in (1, 2, 3)] == ["first", "second", "third"]
