"""Access control of the serving API: which API key may call which endpoint.

Every request but `/healthz` and `/readyz` (left open for load balancers' and Kubernetes' probes)
carries `Authorization: Bearer <key>`. A request without a valid key is answered 401 (with
`WWW-Authenticate: Bearer`), one whose key does not cover what it asks for 403, both in the API's
JSON error shape. Which scope each endpoint needs:

- `POST /v1/features`: read on the feature service, or on every view its features name; for a
  feature list, read on every view named (`authorize_feature_request`).
- `GET /v1/feature-services/<name>`: read on that service (or on all its views); the list shows
  only the services the key may read.
- `GET /metrics`: the `metrics` scope. `GET /openapi.json`: any valid key (it names the services).
- push/ingest endpoints: `require_write(target)`, one call.

Keys are looked up in the online store's key table (`online_sync.keys`) and cached per process
for hindsight.yml's `serving: key_cache_seconds:` (default 5): a revoked key stops working on every
server within that time. A lookup is bounded like a feature read: it runs on a small per-process
pool and is waited for until the store deadline (HINDSIGHT_SERVING_STORE_DEADLINE_MS) from the
request's arrival, through a client with that deadline as its timeouts and one attempt, so a hung
store gives a 503 within the deadline instead of botocore's default timeouts and retries.
`serving: auth: none` (or `hindsight serve --no-auth`) turns keys off, which `serve` allows on
loopback addresses only (`check_bind`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, request

from hindsight.online_sync.config import OnlineStoreUnavailable, is_timeout
from hindsight.online_sync.keys import ApiKey, KeyStore, parse_key
from hindsight.serving.deadlines import FutureTimeout, call_by
from hindsight.serving.errors import ApiError, error_response
from hindsight.serving.server import request_arrival

log = logging.getLogger(__name__)

EXTENSION = "hindsight_auth"
#: `keys`: every request but the probes needs a key; `none`: nobody is asked for one.
MODES = ("keys", "none")
#: Endpoints answered without a key: liveness and readiness probes.
OPEN_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz"})
_CACHE_MAX_ENTRIES = 10_000
#: Threads per process that run key lookups (only lookups the cache cannot answer).
_LOOKUP_THREADS = 4
_CHALLENGE = 'Bearer realm="hindsight"'


class AuthError(ApiError):
    """A 401: no key, or one that is not valid. Answered with a `WWW-Authenticate` challenge."""

    def __init__(self, message: str, invalid: bool) -> None:
        super().__init__(401, "unauthorized", message)
        # RFC 6750 section 3: error="invalid_token" when a key was sent but is not valid.
        self.challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")


@dataclass(frozen=True)
class AuthConfig:
    """Whether the API asks for keys, and how long a server trusts a key lookup."""

    #: "keys" (default) or "none" (hindsight.yml serving.auth, HINDSIGHT_SERVING_AUTH; `serve --no-auth`).
    mode: str = "keys"
    #: Seconds a key lookup is cached per process; a revocation takes effect within it
    #: (serving.key_cache_seconds, HINDSIGHT_SERVING_KEY_CACHE_SECONDS; 0 looks every request up).
    cache_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> AuthConfig:
        """From the `serving:` section of a project's `hindsight.core.settings.Settings`."""
        return cls(settings.serving.auth, settings.serving.key_cache_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthConfig:
        """From hindsight.yml (`serving: auth:`, `key_cache_seconds:`) with its environment overrides.

        >>> AuthConfig.from_env({"HINDSIGHT_SERVING_AUTH": "none"}).mode
        'none'

        Raises:
            hindsight.core.config.ConfigError: (a ValueError) naming the key or variable and what it accepts.
        """
        from hindsight.core.settings import Settings

        return cls.from_settings(Settings.load(environ=environ))

    def updated(self, overrides: Mapping[str, Any]) -> AuthConfig:
        """A copy with AUTH and KEY_CACHE_SECONDS from a Flask-style config applied."""
        mode = overrides.get("AUTH", self.mode)
        if mode not in MODES:
            raise ValueError(f"AUTH={mode!r} is not one of {', '.join(MODES)}")
        return AuthConfig(mode, float(overrides.get("KEY_CACHE_SECONDS", self.cache_seconds)))


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the API on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, mode: str) -> None:
    """Refuse to serve without keys on an address other machines can reach.

    Raises:
        ValueError: keyless mode on a non-loopback host, saying what to do instead.
    """
    if mode == "none" and not is_loopback(host):
        raise ValueError(
            f"refusing to serve without API keys on {host}: anyone who can reach it could read every "
            "feature. Serve keyless on 127.0.0.1 only, or drop --no-auth / HINDSIGHT_SERVING_AUTH=none "
            "and give clients keys from `hindsight keys create`"
        )


class KeyCache:
    """Key records by key id for `ttl` seconds, answers of "no such key" included; one per process.

    Args:
        lookup: key id -> record or None (`KeyStore.lookup`); may raise OnlineStoreUnavailable.
        ttl: seconds an answer is reused.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(self, lookup: Callable[[str], ApiKey | None], ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}

    def get(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        hit = self._entries.get(key_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = self._lookup(key_id)
        if len(self._entries) >= _CACHE_MAX_ENTRIES:
            self._entries.clear()  # made-up key ids must not grow the cache without bound
        if self._ttl > 0:
            self._entries[key_id] = (now + self._ttl, record)
        return record


def _key_store(deadline_s: float) -> KeyStore:
    """The key table of the project's online store, read through a client bounded by `deadline_s`."""
    from hindsight.online_sync.config import OnlineStoreConfig
    from hindsight.online_sync.store import deadline_config

    return KeyStore(deadline_config(OnlineStoreConfig.from_env(), deadline_s))


class Authenticator:
    """The key checks of one app; the key table client and lookup pool are created per process
    (after a fork).

    Args:
        config: keys on or off, and the cache's lifetime.
        key_source: an object with `lookup(key_id)` (default: the online store's key table).
        deadline_s: longest a request waits for a key lookup, from its arrival (the store deadline).
    """

    def __init__(self, config: AuthConfig, key_source: Any = None, deadline_s: float = 0.5) -> None:
        self.config = config
        self.deadline_s = deadline_s
        self._source = key_source
        self._cache: KeyCache | None = None
        self._store: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.config.mode == "keys"

    def _keys(self) -> KeyCache:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    source = self._source if self._source is not None else _key_store(self.deadline_s)
                    self._store = source
                    self._cache = KeyCache(source.lookup, self.config.cache_seconds)
                    self._pool = ThreadPoolExecutor(_LOOKUP_THREADS, thread_name_prefix="hindsight-keys")
                    self._pid = os.getpid()
        assert self._cache is not None
        return self._cache

    def warm(self) -> None:
        """Create this process's key table client and make its first GetItem (answered or not;
        never raises), so that the first request's lookup does not pay for them (gunicorn's post_fork)."""
        if not self.enabled:
            return
        self._keys()
        source = self._source if self._source is not None else self._store
        # Not through the cache: nothing is remembered. A store that is down is found by real lookups.
        with contextlib.suppress(Exception):
            source.lookup("0" * 12)

    def _lookup(self, key_id: str, started: float | None) -> ApiKey | None:
        """The key's record, waited for until `started` (default: now) plus the deadline.

        Raises:
            OnlineStoreUnavailable: the key table cannot be read.
            FutureTimeout: no answer by the deadline (the lookup finishes in the background,
                bounded by its client's timeouts; a late answer is cached for the next request).
        """
        keys = self._keys()
        assert self._pool is not None
        return call_by(self._pool, (time.perf_counter() if started is None else started) + self.deadline_s,
                       keys.get, key_id)

    def authenticate(self, header: str | None, started: float | None = None) -> ApiKey:
        """The active key an `Authorization` header carries.

        `started`: `time.perf_counter()` at the request's arrival; the lookup is waited for until it
        plus the deadline (default: from now).

        Raises:
            AuthError: no key, or not a valid one (unknown, revoked and mistyped keys are answered
                alike, so a caller cannot learn which key ids exist).
            ApiError: 503 when the key table cannot be read.
        """
        scheme, _, key = (header or "").strip().partition(" ")
        if not header or scheme.lower() != "bearer" or not key.strip():
            raise AuthError("this endpoint needs an API key: send 'Authorization: Bearer <key>' "
                            "(an operator creates keys with `hindsight keys create`)", invalid=False)
        key = key.strip()
        key_id = parse_key(key)
        try:
            record = self._lookup(key_id, started) if key_id else None
        except (FutureTimeout, OnlineStoreUnavailable) as error:
            # The client's timeout is the deadline too and may fire before the wait ends: same answer.
            if isinstance(error, FutureTimeout) or is_timeout(error):
                log.warning("cannot check an API key: the key table did not answer within %.0f ms",
                            self.deadline_s * 1000)
                raise ApiError(503, "online_store_unavailable",
                               f"cannot check the API key: the online store's key table did not answer within "
                               f"{self.deadline_s * 1000:.0f} ms of the request's arrival") from None
            log.warning("cannot check an API key: %s", error)
            raise ApiError(503, "online_store_unavailable",
                           "cannot check the API key: the online store's key table cannot be reached") from None
        if record is None or not record.active or not record.matches(key):
            raise AuthError("the API key is not valid (unknown, revoked or mistyped)", invalid=True)
        return record


def _authenticator() -> Authenticator:
    return current_app.extensions[EXTENSION]


def current_key() -> ApiKey | None:
    """The request's key; None when the app runs without keys.

    Raises:
        AuthError: keys are on but the request was not authenticated (an endpoint outside the hook).
    """
    if not _authenticator().enabled:
        return None
    key = g.get("hindsight_api_key")
    if key is None:
        raise AuthError("this endpoint needs an API key: send 'Authorization: Bearer <key>'", invalid=False)
    return key


def _forbidden(key: ApiKey, what: str, scope: str) -> ApiError:
    return ApiError(
        403, "forbidden",
        f"API key {key.name!r} (id {key.key_id}) may not {what}; its scopes: {key.scopes()}. "
        f"Ask for a key created with {scope}",
    )


def may_read_service(name: str, views: Iterable[str] | None) -> bool:
    """Whether the request's key may read a feature service (`views`: its views; None if unknown)."""
    key = current_key()
    if key is None or key.can_read(name):
        return True
    # A service the registry does not know has no views: only a read on its name (or '*') covers it.
    return views is not None and key.can_read_all(views)


def _service_views(name: str) -> tuple[str, ...] | None:
    from hindsight.serving.state import get_state

    service = get_state().services.get(name)
    return None if service is None else tuple(dict.fromkeys(ref.view for ref in service.features))


def require_read_service(name: str) -> None:
    """403 unless the request's key may read feature service `name` (checked before the name is
    looked up, so a key learns nothing about services it cannot read)."""
    if not may_read_service(name, _service_views(name)):
        raise _forbidden(current_key(), f"read feature service {name!r}", f"--read {name}")  # type: ignore[arg-type]


def authorize_feature_request(body: Mapping[str, Any]) -> None:
    """403 unless the key covers what a `POST /v1/features` body asks for.

    Values of the wrong type are left to the request parser, which answers them 400.
    """
    key = current_key()
    if key is None or key.can_read("*"):
        return
    service = body.get("feature_service")
    if isinstance(service, str):
        require_read_service(service)
        return
    features = body.get("features")
    if isinstance(features, list):
        views = dict.fromkeys(ref.partition(":")[0] for ref in features if isinstance(ref, str))
        denied = [view for view in views if not key.can_read(view)]
        if denied:
            raise _forbidden(key, "read feature view(s) " + ", ".join(map(repr, denied)),
                             " ".join(f"--read {view}" for view in denied))


def require_write(target: str) -> None:
    """403 unless the request's key may push or ingest into `target`: the one call such endpoints make."""
    key = current_key()
    if key is not None and not key.can_write(target):
        raise _forbidden(key, f"write to {target!r}", f"--write {target}")


def _check_request() -> None:
    authenticator = _authenticator()
    endpoint = request.endpoint
    # endpoint None: no route matched; the 404/405 that follows reveals nothing about features.
    if not authenticator.enabled or endpoint is None or endpoint in OPEN_ENDPOINTS:
        return
    key = authenticator.authenticate(request.headers.get("Authorization"), request_arrival())
    g.hindsight_api_key = key
    if endpoint == "ops.prometheus_metrics" and not key.metrics:
        raise _forbidden(key, "read /metrics", "--metrics")
    if endpoint == "feature_services.describe_service":
        require_read_service((request.view_args or {}).get("name", ""))


def init_app(app: Flask, test_config: Mapping[str, Any] | None = None) -> Authenticator:
    """Check every request's key before its handler runs.

    `test_config` may carry AUTH ("keys" or "none"), KEY_CACHE_SECONDS, API_KEYS (an object with
    `lookup(key_id)`, in place of the online store's key table) and STORE_DEADLINE_MS (the bound
    on a key lookup, as on a feature read).

    Raises:
        ValueError: HINDSIGHT_SERVING_AUTH or the cache setting is not valid.
    """
    from hindsight.serving.config import ServingConfig

    overrides = dict(test_config or {})
    deadline_ms = ServingConfig.from_env().updated(overrides).store_deadline_ms
    authenticator = Authenticator(AuthConfig.from_env().updated(overrides), overrides.get("API_KEYS"),
                                  deadline_ms / 1000)
    app.extensions[EXTENSION] = authenticator
    app.before_request(_check_request)

    @app.errorhandler(AuthError)
    def _unauthorized(error: AuthError) -> Response:
        response = error_response(error)
        response.headers["WWW-Authenticate"] = error.challenge
        return response

    return authenticator
