"""API keys of the serving API: minting, hashing, scopes, and their DynamoDB table.

Keys live beside the feature tables, in `<table_prefix>api_keys`, because every server of a
deployment already reads that DynamoDB: a fleet shares one set of keys and a revocation reaches every
server. The table holds, per key, only a SHA-256 of the key, never the key itself.

A key reads `hsk_<key id>_<secret>`: the id (12 hex characters) is the table's hash key, so a server
finds a key with one GetItem; the secret is 32 random bytes from `secrets`. Why a fast hash and not
bcrypt or argon2: those slow hashes protect low-entropy passwords from guessing, while a 256-bit
random secret cannot be guessed at any hashing speed; a slow hash would instead cost milliseconds of
CPU on every request that is not in a server's cache (and would let anyone with made-up keys burn
the servers' CPU).

Scopes: `read` names feature services and views (`*` for all), `write` names push/ingest targets
(`*` for all), `metrics` allows `GET /metrics`. `ApiKey.can_read` and `ApiKey.can_write` are the one
check each endpoint calls.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.online_sync.config import OnlineStoreConfig, make_client, store_error
from hindsight.online_sync.tables import KEY_TABLE_SUFFIX, _describe, _wait_active

#: The table's name after the prefix: `hindsight_api_keys` with the default prefix.
TABLE_SUFFIX = KEY_TABLE_SUFFIX
#: Every key starts with this, so secret scanners and humans recognise one.
KEY_PREFIX = "hsk_"
#: The scope that covers every service, view or write target.
ALL = "*"
_KEY_ID = re.compile(r"[0-9a-f]{12}")
_KEY = re.compile(r"hsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_ID_ATTR = "key_id"


class ApiKeyError(ValueError):
    """A key operation the caller got wrong: unknown key id, bad name, no scope."""


@dataclass(frozen=True)
class ApiKey:
    """One API key's record, as stored (without the key itself)."""

    #: The public part of the key, `hsk_<key_id>_...`; names the key in `keys list` and `keys revoke`.
    key_id: str
    #: Who or what uses the key ("fraud-model", "grafana").
    name: str
    #: Feature services and views this key may read; "*" for all.
    read: frozenset[str]
    #: Push/ingest targets (feature views) this key may write; "*" for all.
    write: frozenset[str]
    #: Whether the key may read /metrics.
    metrics: bool
    #: When the key was created (UTC).
    created_at: dt.datetime
    #: When the key was revoked (UTC); None while it is active.
    revoked_at: dt.datetime | None = None
    #: The OS user who created it, for audits.
    created_by: str = ""
    #: Hex SHA-256 of the whole key.
    key_hash: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def can_read(self, name: str) -> bool:
        """Whether the key may read a feature service or view named `name`.

        >>> key = ApiKey("0" * 12, "m", frozenset({"fraud_detection"}), frozenset(), False, dt.datetime.now())
        >>> key.can_read("fraud_detection"), key.can_read("user_profile")
        (True, False)
        """
        return ALL in self.read or name in self.read

    def can_read_all(self, names: Iterable[str]) -> bool:
        """Whether the key may read every one of `names`."""
        return ALL in self.read or all(name in self.read for name in names)

    def can_write(self, target: str) -> bool:
        """Whether the key may push or ingest into `target` (the check push/ingest endpoints call).

        >>> key = ApiKey("0" * 12, "m", frozenset(), frozenset({"*"}), False, dt.datetime.now())
        >>> key.can_write("user_transaction_aggregates")
        True
        """
        return ALL in self.write or target in self.write

    def matches(self, key: str) -> bool:
        """Whether `key` is this record's key (constant-time comparison of the hashes)."""
        return bool(self.key_hash) and hmac.compare_digest(hash_key(key), self.key_hash)

    def scopes(self) -> str:
        """The scopes in the form `keys create` takes them, for listings.

        >>> ApiKey("0" * 12, "m", frozenset({"b", "a"}), frozenset({"t"}), True, dt.datetime.now()).scopes()
        'read a,b; write t; metrics'
        """
        parts = []
        if self.read:
            parts.append("read " + ",".join(sorted(self.read)))
        if self.write:
            parts.append("write " + ",".join(sorted(self.write)))
        if self.metrics:
            parts.append("metrics")
        return "; ".join(parts) or "none"


def new_key() -> tuple[str, str]:
    """A fresh random key and its id.

    >>> key, key_id = new_key()
    >>> parse_key(key) == key_id and len(key) == 60
    True
    """
    key_id = secrets.token_hex(6)
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, or None.

    >>> parse_key("hsk_0123456789ab_" + "x" * 43)
    '0123456789ab'
    >>> parse_key("Bearer nonsense") is None
    True
    """
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key: what the table stores (see the module docstring for why SHA-256).

    >>> hash_key("hsk_x")[:16]
    '8b7f7f07b3e51ef1'
    """
    return hashlib.sha256(key.encode()).hexdigest()


def _item(record: ApiKey) -> dict[str, Any]:
    item: dict[str, Any] = {
        _ID_ATTR: {"S": record.key_id},
        "key_hash": {"S": record.key_hash},
        "name": {"S": record.name},
        "read": {"L": [{"S": s} for s in sorted(record.read)]},
        "write": {"L": [{"S": s} for s in sorted(record.write)]},
        "metrics": {"BOOL": record.metrics},
        "created_at": {"S": record.created_at.isoformat()},
        "created_by": {"S": record.created_by},
    }
    if record.revoked_at is not None:
        item["revoked_at"] = {"S": record.revoked_at.isoformat()}
    return item


def _record(item: dict[str, Any]) -> ApiKey:
    revoked = item.get("revoked_at")
    return ApiKey(
        key_id=item[_ID_ATTR]["S"],
        name=item["name"]["S"],
        read=frozenset(v["S"] for v in item.get("read", {}).get("L", [])),
        write=frozenset(v["S"] for v in item.get("write", {}).get("L", [])),
        metrics=bool(item.get("metrics", {}).get("BOOL", False)),
        created_at=dt.datetime.fromisoformat(item["created_at"]["S"]),
        revoked_at=dt.datetime.fromisoformat(revoked["S"]) if revoked else None,
        created_by=item.get("created_by", {}).get("S", ""),
        key_hash=item["key_hash"]["S"],
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


class KeyStore:
    """The API key table of one online store: create, list, revoke and look up keys.

    Args:
        config: the online store (endpoint, region, table prefix); default from the environment.
        client: a boto3 DynamoDB client to reuse.
    """

    def __init__(self, config: OnlineStoreConfig | None = None, client: Any = None) -> None:
        self.config = config or OnlineStoreConfig.from_env()
        self.table = self.config.table_name(TABLE_SUFFIX)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.config)
        return self._client

    def _where(self) -> str:
        return f"the API key table {self.table} at {self.config.endpoint_url or 'AWS'}"

    def ensure_table(self) -> bool:
        """Create the key table unless it exists (idempotent); True if this call created it.

        Raises:
            OnlineStoreUnavailable: DynamoDB cannot be reached.
            ApiKeyError: a table of that name exists but is not a key table (a feature view named
                `api_keys` would take the name).
        """
        try:
            description = _describe(self.client, self.table)
            created = False
            if description is None:
                try:
                    self.client.create_table(
                        TableName=self.table,
                        AttributeDefinitions=[{"AttributeName": _ID_ATTR, "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": _ID_ATTR, "KeyType": "HASH"}],
                        BillingMode="PAY_PER_REQUEST",
                        Tags=[{"Key": "hindsight:api_keys", "Value": "true"}],
                    )
                    created = True
                except ClientError as err:
                    if err.response["Error"]["Code"] != "ResourceInUseException":
                        raise
                description = _describe(self.client, self.table) or {}
            schema = [(k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", [])]
            if schema and schema != [(_ID_ATTR, "HASH")]:
                raise ApiKeyError(
                    f"table {self.table} exists but is not an API key table (its key is {schema}); "
                    f"a feature view named {TABLE_SUFFIX!r} takes that name: rename the view"
                )
            _wait_active(self.client, self.table)
            return created
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"creating {self._where()}") from err

    def create(self, name: str, read: Iterable[str] = (), write: Iterable[str] = (),
               metrics: bool = False) -> tuple[str, ApiKey]:
        """Mint a key, store its hash and record, and return the key (the only time it exists in clear).

        Raises:
            ApiKeyError: an empty name, or no scope at all.
            OnlineStoreUnavailable: DynamoDB cannot be reached.
        """
        name = name.strip()
        if not name or len(name) > 128 or not name.isprintable():
            raise ApiKeyError(f"--name must be 1-128 printable characters, got {name!r}")
        read, write = frozenset(read), frozenset(write)
        if not (read or write or metrics):
            raise ApiKeyError("a key needs at least one scope: --read NAME, --write TARGET or --metrics")
        self.ensure_table()
        key, key_id = new_key()
        record = ApiKey(key_id, name, read, write, metrics, _now(), None, _user(), hash_key(key))
        try:
            # A new id never collides in practice (48 random bits); the condition makes sure.
            self.client.put_item(TableName=self.table, Item=_item(record),
                                 ConditionExpression="attribute_not_exists(key_id)")
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"writing {self._where()}") from err
        return key, record

    def list(self) -> list[ApiKey]:
        """Every key (active and revoked), oldest first; an absent table means no keys."""
        records: list[ApiKey] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        try:
            while True:
                page = self.client.scan(**kwargs)
                records.extend(_record(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return []
            raise store_error(err, f"reading {self._where()}") from err
        except BotoCoreError as err:
            raise store_error(err, f"reading {self._where()}") from err
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def revoke(self, key_or_id: str) -> tuple[ApiKey, bool]:
        """Revoke a key by its id (or by the whole key, say one that leaked).

        Returns:
            The key's record and whether this call revoked it (False: it already was).

        Raises:
            ApiKeyError: no key has that id (close ids suggested).
        """
        key_id = parse_key(key_or_id) or key_or_id.strip()
        record = self.lookup(key_id) if _KEY_ID.fullmatch(key_id) else None
        if record is None:
            from hindsight.core.suggest import did_you_mean

            known = [r.key_id for r in self.list()]
            raise ApiKeyError(f"no API key with id {key_or_id!r} in {self.table}{did_you_mean(key_id, known)}; "
                              "`hindsight keys list` shows the ids")
        if not record.active:
            return record, False
        revoked_at = _now()
        try:
            self.client.update_item(
                TableName=self.table,
                Key={_ID_ATTR: {"S": key_id}},
                UpdateExpression="SET revoked_at = :t",
                ConditionExpression="attribute_exists(key_id) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={":t": {"S": revoked_at.isoformat()}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return self.lookup(key_id) or record, False  # revoked by someone else meanwhile
            raise store_error(err, f"writing {self._where()}") from err
        except BotoCoreError as err:
            raise store_error(err, f"writing {self._where()}") from err
        return replace(record, revoked_at=revoked_at), True

    def lookup(self, key_id: str) -> ApiKey | None:
        """The record of a key id, or None (no such key, or no key table yet).

        A strongly consistent read: a revocation is seen by the next lookup, not seconds later.

        Raises:
            OnlineStoreUnavailable: DynamoDB cannot be reached.
        """
        try:
            item = self.client.get_item(TableName=self.table, Key={_ID_ATTR: {"S": key_id}}, ConsistentRead=True)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise store_error(err, f"reading {self._where()}") from err
        except BotoCoreError as err:
            raise store_error(err, f"reading {self._where()}") from err
        found = item.get("Item")
        return _record(found) if found else None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (some containers): the audit field stays empty
        return ""
