"""Which DynamoDB the online store talks to, and the one boto3 client per store.

`OnlineStoreConfig.from_settings(settings)` (or `from_env()`, for the project found from the working
directory) takes `online_store:` of hindsight.yml with its environment overrides
(HINDSIGHT_DYNAMODB_ENDPOINT, HINDSIGHT_DYNAMODB_REGION, HINDSIGHT_DYNAMODB_TABLE_PREFIX). The
endpoint is, in order: the environment, hindsight.yml, the DynamoDB Local that `hindsight online up`
recorded in the state folder if it still runs, else none: AWS through boto3's normal credential and
region chain, with nothing overridden. A recorded DynamoDB Local that is gone is an error, never a
silent switch to AWS.

Dummy credentials are given to the client only for an emulator on a loopback address (DynamoDB
Local wants a signature, not a real key) and only when no credentials are configured; a remote
endpoint (a VPC endpoint, a proxy) always uses boto3's own chain, instance roles included.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hindsight.core.settings import Settings

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_LOCAL_CREDENTIALS = {"aws_access_key_id": "hindsight", "aws_secret_access_key": "hindsight"}
#: DynamoDB Local ignores the region, but boto3 insists on one.
_LOCAL_REGION = "us-east-1"


class OnlineStoreUnavailable(RuntimeError):
    """The online store cannot be reached or used right now (serving answers 503)."""


class OnlineTableMissing(OnlineStoreUnavailable):
    """The store answered, but a table the call needs does not exist (`hindsight apply` creates it)."""


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
    #: Attempts per call, the first included (botocore's `total_max_attempts`: throttling, 5xx and
    #: timeouts are retried with backoff); 1 makes one attempt, no retry.
    max_attempts: int = 3
    #: Seconds a sync holds its per-view lease without renewing it (a killed sync frees it then).
    lease_seconds: int = 60

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OnlineStoreConfig:
        """The config of a project's online store (see the module docstring for the endpoint).

        Raises:
            OnlineStoreUnavailable: the DynamoDB Local recorded by `hindsight online up` is gone.
        """
        section = settings.online_store
        values: dict[str, Any] = {
            "endpoint_url": section.endpoint or _recorded_endpoint(settings.state_dir),
            "table_prefix": section.table_prefix,
            "region": section.region,
        }
        return cls(**{**values, **overrides})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> OnlineStoreConfig:
        """`from_settings` for the project found from the environment and working directory."""
        return cls.from_settings(Settings.load(environ=environ), **overrides)

    def describe(self) -> str:
        """Where this config points, for messages.

        >>> OnlineStoreConfig().describe(), OnlineStoreConfig(endpoint_url="http://127.0.0.1:8000").describe()
        ('AWS DynamoDB (region from boto3: AWS_REGION or ~/.aws/config)', 'http://127.0.0.1:8000')
        """
        if self.endpoint_url:
            return self.endpoint_url
        return f"AWS DynamoDB ({self.region or 'region from boto3: AWS_REGION or ~/.aws/config'})"

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
                "online_store.table_prefix in hindsight.yml (HINDSIGHT_DYNAMODB_TABLE_PREFIX)"
            )
        return name


def _recorded_endpoint(state_dir: Path) -> str | None:
    from hindsight.online_sync.local import recorded_endpoint

    record = recorded_endpoint(state_dir)
    if record is None:
        return None
    if not record.alive:
        raise OnlineStoreUnavailable(
            f"the DynamoDB Local recorded in {record.path} ({record.endpoint}) is not running: start it again "
            "with `hindsight online up`, or forget it with `hindsight online down` (the online store is then "
            "AWS unless hindsight.yml's online_store.endpoint or HINDSIGHT_DYNAMODB_ENDPOINT names one)"
        )
    return record.endpoint


def is_local_endpoint(url: str | None) -> bool:
    """Whether `url` points at this machine (a loopback address or localhost).

    >>> [is_local_endpoint(u) for u in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000")]
    [True, True, True]
    >>> [is_local_endpoint(u) for u in (None, "https://dynamodb.eu-west-1.amazonaws.com", "http://10.0.0.5:8000")]
    [False, False, False]
    """
    host = urlsplit(url).hostname if url else None
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials_configured(env: Mapping[str, str]) -> bool:
    """Whether credentials are configured without probing the network (instance metadata)."""
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"):
        return True
    shared = env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    return Path(shared).expanduser().exists()


def client_arguments(config: OnlineStoreConfig, env: Mapping[str, str], session_region: str | None) -> dict[str, Any]:
    """Endpoint, region and (for a local emulator only) dummy credentials for boto3's client().

    >>> client_arguments(OnlineStoreConfig(endpoint_url="http://127.0.0.1:8000"), {}, None)["aws_access_key_id"]
    'hindsight'
    >>> "aws_access_key_id" in client_arguments(OnlineStoreConfig(endpoint_url="https://vpce.example.com"), {}, None)
    False
    >>> client_arguments(OnlineStoreConfig(), {"AWS_REGION": "eu-west-3"}, "us-west-2")
    {'region_name': 'eu-west-3'}
    """
    arguments: dict[str, Any] = {}
    local = is_local_endpoint(config.endpoint_url)
    # boto3 itself reads AWS_DEFAULT_REGION and ~/.aws/config (session_region) but not AWS_REGION,
    # which the AWS CLI and the other SDKs honour first.
    region = config.region or env.get("AWS_REGION") or session_region or (_LOCAL_REGION if local else None)
    if region:
        arguments["region_name"] = region
    if config.endpoint_url:
        arguments["endpoint_url"] = config.endpoint_url
    if local and not _credentials_configured(env):
        arguments.update(_LOCAL_CREDENTIALS)
    return arguments


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
        # total_max_attempts counts the first attempt; botocore's `max_attempts` counts retries only
        # (max_attempts=1 would make two attempts, doubling how long a hung store holds a caller).
        retries={"total_max_attempts": config.max_attempts, "mode": "standard"},
        max_pool_connections=max(max_pool_connections, config.write_threads * 2),
        # Requests are built by this package in the wire format; skipping client-side validation
        # saves a noticeable share of the per-request CPU on the read path.
        parameter_validation=False,
        tcp_keepalive=True,
    )
    try:
        session = boto3.session.Session()
        arguments = client_arguments(config, os.environ, session.region_name)
        return session.client("dynamodb", config=client_config, **arguments)
    except BotoCoreError as err:
        raise OnlineStoreUnavailable(
            f"cannot create a DynamoDB client for {config.describe()}: {err} (set online_store.region in "
            "hindsight.yml or AWS_REGION; for local development run `hindsight online up`)"
        ) from err


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


def is_timeout(err: BaseException) -> bool:
    """Whether `err`, or an exception it was raised from, is a botocore connect or read timeout
    (the store did not answer in time, as opposed to refusing or failing)."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    seen: BaseException | None = err
    for _ in range(10):  # a chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, (ConnectTimeoutError, ReadTimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def store_error(err: Exception, where: str) -> Exception:
    """The exception a DynamoDB failure becomes: OnlineStoreUnavailable (OnlineTableMissing for a
    table that does not exist) or, for bad input, ValueError."""
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError):
        code = err.response["Error"]["Code"]
        message = err.response["Error"].get("Message", "")
        if code == "ResourceNotFoundException":
            return OnlineTableMissing(f"{where}: a table does not exist ({message}); run `hindsight apply`")
        if code == "ValidationException":
            return ValueError(f"{where}: DynamoDB rejected the request: {message}")
        return OnlineStoreUnavailable(f"{where}: {code}: {message}")
    return OnlineStoreUnavailable(f"{where}: {err}")
