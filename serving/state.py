"""The clients one serving app holds: registry, read plans, on-demand views and the online store.

`init_app` creates them once per app (like the flask tutorial's `flaskr/db.py`); handlers reach
them through `get_state()`, which reads `current_app`. The online store and the thread pool are
created lazily in each process: gunicorn forks workers from a preloaded app, and a boto3 client's
open connections must not be shared across a fork.

A `ServingState` serves one registry version. Serving the latest applied registry, each worker
follows the registry folder (`serving.reload`) and swaps in a `ServingState` for each newly
applied version; a request keeps the state `get_state()` gave it, so it never mixes two versions.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app

from hindsight.registry_sync.model import FeatureService, Registry
from hindsight.serving.config import ServingConfig
from hindsight.serving.errors import ApiError, unknown
from hindsight.serving.plans import OnDemandViewLike, PlanBuilder, ReadPlan
from hindsight.serving.reload import RegistryFollower

log = logging.getLogger(__name__)

EXTENSION = "hindsight_serving"
#: Seconds a process reuses its answer to "which served tables are missing" (readiness probes come
#: often; in between, a probe only pings the store).
TABLE_CHECK_TTL_S = 1.0


class ServingSetupError(RuntimeError):
    """The app cannot start: no registry, no on-demand code, bad configuration."""


class ServingState:
    """The serving state of one registry version; the store and thread pool are per process."""

    def __init__(
        self,
        registry: Registry,
        on_demand_views: Mapping[str, OnDemandViewLike],
        store_source: Any,
        config: ServingConfig,
        predecessor: ServingState | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.on_demand_views = dict(on_demand_views)
        self.services: dict[str, FeatureService] = {s.name: s for s in registry.feature_services}
        self._builder = PlanBuilder(registry, self.on_demand_views)
        self.plans: dict[str, ReadPlan | ApiError] = {name: self._service_plan(s) for name, s in self.services.items()}
        self._adhoc: dict[tuple[Any, ...], ReadPlan] = {}
        self._store_source = store_source
        self._store: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()
        #: The state this one replaces in this process: its read pool is reused.
        self._predecessor = predecessor
        #: (time.monotonic() of the check, tables missing) of the last table check in this process.
        self._tables_checked: tuple[float, tuple[str, ...]] | None = None
        self._missing_logged: tuple[str, ...] = ()

    def successor(self, registry: Registry) -> ServingState:
        """The state serving `registry` with this one's code, store source and settings.

        Builds its plans and (in this process) its store client now, so the first request after
        a swap does not pay for them.
        """
        state = ServingState(registry, self.on_demand_views, self._store_source, self.config, predecessor=self)
        state.ensure_clients()
        getattr(state._store, "client", None)  # OnlineStore creates its boto3 client on first use: now
        return state

    def close_store_unless_shared(self, successor: ServingState) -> None:
        """Close this state's store client if its successor made its own (requests have drained)."""
        if self._store is not None and self._store is not successor._store and hasattr(self._store, "close"):
            self._store.close()

    def _service_plan(self, service: FeatureService) -> ReadPlan | ApiError:
        try:
            return self._builder.for_service(service)
        except ApiError as error:
            # One broken service must not take the others down: its requests get this error.
            log.warning("feature service %r cannot be served: %s", service.name, error.message)
            return error

    def plan_for_service(self, name: Any) -> ReadPlan:
        """The precomputed plan of a service (ApiError 404 if unknown, its build error if broken)."""
        plan = self.plans.get(name) if isinstance(name, str) else None
        if plan is None:
            if not isinstance(name, str):
                raise ApiError(400, "invalid_request", "'feature_service' must be a string")
            raise unknown("feature service", name, self.services, "unknown_feature_service")
        if isinstance(plan, ApiError):
            raise plan
        return plan

    def plan_for_features(self, names: Sequence[Any]) -> ReadPlan:
        """The plan of an ad-hoc feature list, cached per process (the cache is bounded)."""
        if not all(type(name) is str for name in names):
            return self._builder.for_features(names)  # raises, naming the bad entry
        key = tuple(names)
        plan = self._adhoc.get(key)
        if plan is None:
            plan = self._builder.for_features(names)
            if len(self._adhoc) >= self.config.plan_cache_size:
                self._adhoc.clear()
            self._adhoc[key] = plan
        return plan

    def ensure_clients(self) -> None:
        """Create this process's store client and read pool unless they exist (after a fork, again)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            store = self._store_source
            if not hasattr(store, "read") and callable(store):
                store = store(self.registry)
            self._store = store
            previous = self._predecessor
            if previous is not None and previous._pid == os.getpid() and previous._pool is not None:
                self._pool = previous._pool
            else:
                self._pool = ThreadPoolExecutor(self.config.budget_threads, thread_name_prefix="hindsight-read")
            self._predecessor = None  # no chain of retired states kept alive
            self._pid = os.getpid()

    def check_store(self) -> tuple[str, ...] | None:
        """For readiness: None when the store does not answer, else the DynamoDB tables of this
        registry's online feature views that it lacks (empty when all exist).

        The tables are listed (ListTables, which also tells the store answers) at most once per
        TABLE_CHECK_TTL_S in this process; a probe in between only pings the store. A store
        without a boto3 client (a test's fake) is only pinged. Missing tables are logged by name
        when the set changes (the probe's answer does not name them).

        Raises:
            Exception: whatever the store's client raises (the caller answers "not ready").
        """
        store = self.store
        now = time.monotonic()
        checked = self._tables_checked
        if checked is not None and now - checked[0] < TABLE_CHECK_TTL_S:
            return checked[1] if store.ping() else None
        missing = missing_tables(store, self.registry)
        if missing is None:
            return () if store.ping() else None
        self._tables_checked = (now, missing)
        if missing != self._missing_logged:
            if missing:
                log.warning("the online store lacks the table(s) %s of served feature views: /readyz answers 503 "
                            "until `hindsight apply` creates them", ", ".join(missing))
            else:
                log.info("the online store has every served feature view's table again")
            self._missing_logged = missing
        return missing

    @property
    def store(self) -> Any:
        """This process's online store client (created on first use)."""
        self.ensure_clients()
        return self._store

    @property
    def pool(self) -> ThreadPoolExecutor:
        """This process's pool for store reads that run under a latency budget."""
        self.ensure_clients()
        assert self._pool is not None
        return self._pool


class ServingRuntime:
    """What an app holds: the current ServingState and, serving the latest registry, its follower."""

    #: Seconds a replaced state's store stays open for requests still using it (gunicorn's
    #: default request timeout is 30 s).
    RETIRE_AFTER_S = 60.0

    def __init__(self, state: ServingState, follower_store: Any = None) -> None:
        self.state = state
        self.follower: RegistryFollower | None = None
        if follower_store is not None:
            interval = state.config.reload_interval_ms / 1000
            self.follower = RegistryFollower(follower_store, state.registry.version, self._swap, interval)
        self._retired: list[tuple[float, ServingState, ServingState]] = []

    def current(self) -> ServingState:
        """The state to answer a request with (starts this process's follower on first use)."""
        if self.follower is not None:
            self.follower.start()
        return self.state

    def warm(self) -> None:
        """Create this process's clients and start its follower (gunicorn's post_fork)."""
        self.current().ensure_clients()

    def _swap(self, registry: Registry) -> None:
        new = self.state.successor(registry)
        old, self.state = self.state, new
        now = time.monotonic()
        self._retired.append((now, old, new))
        keep = []
        for retired_at, state, successor in self._retired:
            if now - retired_at >= self.RETIRE_AFTER_S:
                state.close_store_unless_shared(successor)
            else:
                keep.append((retired_at, state, successor))
        self._retired = keep


def missing_tables(store: Any, registry: Registry) -> tuple[str, ...] | None:
    """The tables of `registry`'s online feature views that the store's DynamoDB lacks, sorted;
    None when `store` has no boto3 client and config to list tables with.

    One ListTables page (100 names) per call, fewer when the names reach past the last wanted one
    (DynamoDB lists them in order).
    """
    client = getattr(store, "client", None)
    config = getattr(store, "config", None)
    if client is None or config is None or not hasattr(config, "table_name") or not hasattr(client, "list_tables"):
        return None
    wanted = {config.table_name(view.name) for view in registry.feature_views if view.online}
    if not wanted:
        client.list_tables(Limit=1)  # still tells whether the store answers
        return ()
    last = max(wanted)
    found: set[str] = set()
    arguments: dict[str, Any] = {"Limit": 100}
    while True:
        page = client.list_tables(**arguments)
        names = page.get("TableNames", [])
        found.update(names)
        start = page.get("LastEvaluatedTableName")
        if not start or (names and names[-1] >= last):
            break
        arguments["ExclusiveStartTableName"] = start
    return tuple(sorted(wanted - found))


def _load_registry(source: Any, config: ServingConfig) -> Registry:
    if isinstance(source, Registry):
        return source
    if callable(source):
        return source()
    if config.registry_file:
        from hindsight.registry_sync.errors import RegistryError
        from hindsight.registry_sync.store import read_registry_file

        try:
            return read_registry_file(config.registry_file)
        except RegistryError as error:
            raise ServingSetupError(str(error)) from error
    from hindsight.registry_sync import load_registry

    try:
        return load_registry()
    except Exception as error:  # its errors are user-facing (no registry applied yet, ...)
        raise ServingSetupError(f"cannot load the registry: {error}") from error


def _load_on_demand(source: Any) -> Mapping[str, OnDemandViewLike]:
    if source is not None:
        return source() if callable(source) else source
    from hindsight.on_demand import load_views

    return load_views()


def _default_store(registry: Registry, config: ServingConfig | None = None) -> Any:
    from hindsight.online_sync.store import OnlineStore, OnlineStoreConfig, deadline_config

    deadline_ms = (config or ServingConfig()).store_deadline_ms
    return OnlineStore(registry, deadline_config(OnlineStoreConfig.from_env(), deadline_ms / 1000))


def init_app(app: Flask, test_config: Mapping[str, Any] | None = None) -> ServingState:
    """Create the app's serving state.

    `test_config` may carry REGISTRY (a Registry or a function returning one), ONLINE_STORE (a
    store object, or a function of the registry returning one), ON_DEMAND_VIEWS (a mapping or a
    function returning one) and any ServingConfig field in upper case.

    Raises:
        ServingSetupError: the registry or the on-demand code cannot be loaded.
    """
    overrides = dict(test_config or {})
    config = ServingConfig.from_env().updated(overrides)
    registry = _load_registry(overrides.get("REGISTRY"), config)
    views = _load_on_demand(overrides.get("ON_DEMAND_VIEWS"))
    store: Callable[[Registry], Any] | Any = overrides.get("ONLINE_STORE") or functools.partial(
        _default_store, config=config
    )
    state = ServingState(registry, views, store, config)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    from hindsight.serving import sampling

    try:
        sampling.init_app(app, config.sample_log, config.sample_rate, config.sample_queue_rows,
                          config.sample_batch_rows, config.sample_flush_ms / 1000)
    except ValueError as error:
        raise ServingSetupError(str(error)) from None
    app.extensions[EXTENSION] = ServingRuntime(state, _followed_store(overrides, config))
    return state


def _followed_store(overrides: Mapping[str, Any], config: ServingConfig) -> Any:
    """The registry folder to follow: only when serving the latest applied registry (a pinned
    registry file, or a registry handed in by a test, is never replaced)."""
    if overrides.get("REGISTRY") is not None or config.registry_file:
        return None
    from hindsight.core.settings import Settings
    from hindsight.registry_sync.store import RegistryStore

    return RegistryStore(Settings.from_env().registry_dir)


def warm(app: Flask) -> None:
    """Create this process's store client and thread pool before the first request needs them, and
    the API-key and write clients (`serving.auth`, `serving.ingest`): building a boto3 client costs
    ~0.1 s of CPU (seconds on a busy machine), which would otherwise eat the first request's deadline."""
    app.extensions[EXTENSION].warm()
    for name in ("hindsight_auth", "hindsight_ingest"):
        warm_extension = getattr(app.extensions.get(name), "warm", None)
        if warm_extension is not None:
            warm_extension()


def get_runtime(app: Flask) -> ServingRuntime:
    """The app's runtime: current state and registry follower."""
    return app.extensions[EXTENSION]


def get_state() -> ServingState:
    """The serving state of the current app (only inside a request or app context)."""
    return current_app.extensions[EXTENSION].current()
