"""Which DynamoDB the online store talks to, and the one boto3 client per store.

Read from the environment by `OnlineStoreConfig.from_env()`:
- `HINDSIGHT_DYNAMODB_ENDPOINT`: an endpoint override (DynamoDB Local). Unset means real AWS through
  boto3's normal credential and region chain, with nothing overridden.
- `HINDSIGHT_DYNAMODB_TABLE_PREFIX`: prepended to every table name (default `hindsight_`).
- `AWS_REGION` / `AWS_DEFAULT_REGION`: the region; `us-east-1` is the default only with an endpoint
  override (DynamoDB Local ignores it, but boto3 insists on one).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# Dummy credentials for an endpoint override: DynamoDB Local wants a signature, not a real key.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "hindsight", "aws_secret_access_key": "hindsight"}


class OnlineStoreUnavailable(RuntimeError):
    """The online store cannot be reached or used right now (serving answers 503)."""


@dataclass(frozen=True)
class OnlineStoreConfig:
    """Where the online store lives and how the client talks to it."""

    #: DynamoDB endpoint override (DynamoDB Local); None = AWS with boto3's default resolution.
    endpoint_url: str | None = None
    #: Prepended to each view's table name; lets several deployments share one account.
    table_prefix: str = "hindsight_"
    #: AWS region; None = boto3's own chain (AWS_REGION, ~/.aws/config, ...).
    region: str | None = None
    #: Threads that write batches in `sync` and `push`.
    write_threads: int = 4
    #: Seconds to wait for a TCP connection before the store counts as unavailable.
    connect_timeout_s: float = 2.0
    #: Seconds to wait for a response.
    read_timeout_s: float = 10.0
    #: botocore's attempts per request (throttling and 5xx are retried with backoff).
    max_attempts: int = 3
    #: Seconds a sync holds its per-view lease without renewing it (a killed sync frees it then).
    lease_seconds: int = 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> OnlineStoreConfig:
        """Build the config from environment variables (see the module docstring)."""
        env = os.environ if environ is None else environ
        endpoint = env.get("HINDSIGHT_DYNAMODB_ENDPOINT") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        if endpoint and not region:
            region = "us-east-1"
        values: dict[str, Any] = {
            "endpoint_url": endpoint,
            "table_prefix": env.get("HINDSIGHT_DYNAMODB_TABLE_PREFIX", "hindsight_"),
            "region": region,
        }
        return cls(**{**values, **overrides})

    def table_name(self, view_name: str) -> str:
        """The DynamoDB table of a feature view.

        >>> OnlineStoreConfig().table_name("user_profile")
        'hindsight_user_profile'
        """
        name = f"{self.table_prefix}{view_name}"
        if not _TABLE_NAME.fullmatch(name):
            raise ValueError(
                f"feature view {view_name!r}: table name {name!r} is not a valid DynamoDB table name "
                "(3-255 characters of letters, digits, '_', '-', '.'); change the view name or "
                "HINDSIGHT_DYNAMODB_TABLE_PREFIX"
            )
        return name


def _credentials_configured(env: Mapping[str, str]) -> bool:
    """Whether boto3 would find credentials without probing the network (instance metadata)."""
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"):
        return True
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    return Path(shared).expanduser().exists()


def make_client(config: OnlineStoreConfig, *, max_pool_connections: int = 16) -> Any:
    """A boto3 DynamoDB client (thread-safe: share one per store).

    Raises:
        OnlineStoreUnavailable: when boto3 cannot build a client (no region for AWS, ...).
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    client_config = Config(
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
        retries={"max_attempts": config.max_attempts, "mode": "standard"},
        max_pool_connections=max(max_pool_connections, config.write_threads * 2),
        # Requests are built by this package in the wire format; skipping client-side validation
        # saves a noticeable share of the per-request CPU on the read path.
        parameter_validation=False,
        tcp_keepalive=True,
    )
    kwargs: dict[str, Any] = {"config": client_config}
    if config.region:
        kwargs["region_name"] = config.region
    if config.endpoint_url:
        kwargs["endpoint_url"] = config.endpoint_url
        if not _credentials_configured(os.environ):
            kwargs.update(_LOCAL_CREDENTIALS)
    try:
        return boto3.session.Session().client("dynamodb", **kwargs)
    except BotoCoreError as err:
        raise OnlineStoreUnavailable(f"cannot create a DynamoDB client: {err}") from err


_shared_clients: dict[tuple[OnlineStoreConfig, int], Any] = {}
_shared_lock = threading.Lock()


def shared_client(config: OnlineStoreConfig) -> Any:
    """One client per config and process, reused by `sync`, `push` and `ensure_tables` calls.

    Building a client costs ~0.1 s, more than a small push. Keyed by pid too: a client must not
    cross a fork (its connection pool would be shared by two processes).
    """
    key = (config, os.getpid())
    with _shared_lock:
        if key not in _shared_clients:
            _shared_clients[key] = make_client(config)
        return _shared_clients[key]


def store_error(err: Exception, where: str) -> Exception:
    """The exception a DynamoDB failure becomes: OnlineStoreUnavailable or, for bad input, ValueError."""
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError):
        code = err.response["Error"]["Code"]
        message = err.response["Error"].get("Message", "")
        if code == "ResourceNotFoundException":
            return OnlineStoreUnavailable(f"{where}: a table does not exist ({message}); run `hindsight apply`")
        if code == "ValidationException":
            return ValueError(f"{where}: DynamoDB rejected the request: {message}")
        return OnlineStoreUnavailable(f"{where}: {code}: {message}")
    return OnlineStoreUnavailable(f"{where}: {err}")
