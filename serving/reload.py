"""Hot reload: each serving worker follows the registry folder and serves a newly applied version.

`hindsight apply` adds one file per version to the registry folder (HINDSIGHT_REGISTRY). Each
worker process runs one daemon thread that stats the folder (lists it, when the registry is on S3:
one LIST request per tick) every `reload_interval_ms` and, when
the latest version differs from the one served, reads it and hands it to `swap` (which builds the
new read plans and store client, then replaces the served state in one assignment). Requests
never wait on this: they keep the state they started with. If a version cannot be loaded the
worker keeps serving the one it has, logs why once, and reports it (`/readyz`, `/metrics`), and
tries again on the next tick.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hindsight.core.folders import LocalFolder
from hindsight.registry_sync.model import Registry
from hindsight.registry_sync.store import RegistryStore
from hindsight.serving import metrics

log = logging.getLogger(__name__)

#: A folder modified this recently is listed even if its mtime looks unchanged: on a filesystem
#: with coarse timestamps, two applies within one tick would otherwise look like one.
_RECENT_NS = 2_000_000_000


@dataclass(frozen=True)
class ReloadFailure:
    """A registry version this worker could not serve."""

    version: int
    error: str

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "error": self.error}


class RegistryFollower:
    """Polls one registry folder and swaps in each newly applied version."""

    def __init__(
        self,
        store: RegistryStore,
        served_version: int | None,
        swap: Callable[[Registry], None],
        interval_s: float,
    ) -> None:
        self.store = store
        self.served_version = served_version
        self.interval_s = interval_s
        #: The newest version that failed to load, while it is the latest one.
        self.failure: ReloadFailure | None = None
        self._swap = swap
        self._seen_mtime_ns: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._stop = threading.Event()

    def start(self) -> None:
        """Start this process's polling thread (again after a fork: threads do not survive one)."""
        if self._thread_pid == os.getpid():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hindsight-registry-follower", daemon=True)
        self._thread_pid = os.getpid()
        metrics.set_registry_version(self.served_version)  # in workers only (see metrics)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # the follower must outlive any surprise
                log.exception("registry follower: unexpected error")

    def check(self) -> bool:
        """Look once; swap in the latest version if it is new. True if a version was swapped in."""
        mtime_ns = self.store.folder.changed_ns()
        if mtime_ns is not None:
            recent = time.time_ns() - mtime_ns < _RECENT_NS
            if mtime_ns == self._seen_mtime_ns and not recent and self.failure is None:
                return False
        elif isinstance(self.store.folder, LocalFolder):
            return False  # no folder (yet, or any more): keep serving what we have
        # else a registry on S3: no cheap change check, so the prefix is listed every tick.
        versions = self.store.versions()
        latest = versions[-1] if versions else None
        if latest is None or latest == self.served_version:
            self._seen_mtime_ns, self.failure = mtime_ns, None
            return False
        try:
            self._swap(self.store.read(latest))
        except Exception as error:  # noqa: BLE001 - any failure keeps the old registry serving
            reason = f"{type(error).__name__}: {error}"
            if self.failure is None or self.failure.version != latest:
                log.warning("registry version %s cannot be served (still serving version %s): %s",
                            latest, self.served_version, reason)
                metrics.count_reload_failure()
            self.failure = ReloadFailure(latest, reason)
            return False
        log.info("now serving registry version %s (was %s)", latest, self.served_version)
        self.served_version, self._seen_mtime_ns, self.failure = latest, mtime_ns, None
        metrics.set_registry_version(latest)
        return True
