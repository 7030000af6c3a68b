"""Create the online store's DynamoDB tables: one per online feature view, idempotently."""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.online_sync.codec import EXPIRES_ATTR, KEY_ATTR, RESERVED_PREFIX, WRITER_ATTR
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, shared_client
from hindsight.online_sync.fold import fold_push_items, mark_folded
from hindsight.registry_sync.model import FeatureView, Registry

log = logging.getLogger(__name__)

_ACTIVE_TIMEOUT_S = 300.0


def online_views(registry: Registry, select: list[str] | tuple[str, ...] | None = None) -> list[FeatureView]:
    """The registry's online feature views, optionally only those named in `select`.

    Raises:
        ValueError: a selected name is not a feature view, or is not online.
    """
    views = [v for v in registry.feature_views if v.online]
    if not select:
        return views
    by_name = {v.name: v for v in registry.feature_views}
    chosen = []
    for name in dict.fromkeys(select):
        if name not in by_name:
            raise ValueError(f"no feature view named {name!r}; known views: {sorted(by_name)}")
        if not by_name[name].online:
            raise ValueError(f"feature view {name!r} is not online (set online: true in its config)")
        chosen.append(by_name[name])
    return chosen


#: Table names after the prefix that the online store keeps for itself (the API keys' table).
KEY_TABLE_SUFFIX = "api_keys"


def check_view_fits(view: FeatureView) -> None:
    """Reject views whose table or column names collide with the online store's own."""
    if view.name == KEY_TABLE_SUFFIX:
        raise ValueError(
            f"feature view {view.name!r}: its online table would be the API keys' table "
            f"(<table_prefix>{KEY_TABLE_SUFFIX}); rename the model"
        )
    clashes = [n for n in (*view.join_keys, *(f.name for f in view.features)) if n.startswith(RESERVED_PREFIX)]
    if clashes:
        raise ValueError(
            f"feature view {view.name!r}: column names {clashes} start with {RESERVED_PREFIX!r}, "
            "which the online store reserves for its own attributes; rename them"
        )


def _describe(client: Any, table: str) -> dict[str, Any] | None:
    try:
        return client.describe_table(TableName=table)["Table"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def _create(client: Any, table: str, view: FeatureView) -> bool:
    """Create the table; False when someone else created it first."""
    try:
        client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": KEY_ATTR, "AttributeType": "S"},
                {"AttributeName": WRITER_ATTR, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": KEY_ATTR, "KeyType": "HASH"},
                {"AttributeName": WRITER_ATTR, "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "hindsight:feature_view", "Value": view.name}],
        )
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceInUseException":
            return False
        raise


def _wait_active(client: Any, table: str) -> None:
    deadline = time.monotonic() + _ACTIVE_TIMEOUT_S
    while True:
        status = (_describe(client, table) or {}).get("TableStatus")
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise OnlineStoreUnavailable(f"table {table} is still {status} after {_ACTIVE_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def _ensure_ttl(client: Any, table: str) -> bool:
    """Enable TTL on the expiry attribute; False if it already was."""
    description = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    status = description.get("TimeToLiveStatus")
    if status in ("ENABLED", "ENABLING"):
        if description.get("AttributeName") != EXPIRES_ATTR:
            log.warning("table %s: TTL is on attribute %s, not %s", table, description.get("AttributeName"), EXPIRES_ATTR)
        return False
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_ATTR}
    )
    return True


def ensure_table(client: Any, config: OnlineStoreConfig, view: FeatureView) -> str:
    """Make one view's table exist, be ACTIVE and expire items by TTL, and fold old push items.

    Returns:
        "created", "updated" (TTL switched on), "folded N push items" (`online_sync.fold`: the
        push items of an older version, moved into their entities' items) or "exists".
    """
    state, folded = prepare_table(client, config, view)
    return f"folded {folded} push item{'' if folded == 1 else 's'}" if folded and state == "exists" else state


def prepare_table(client: Any, config: OnlineStoreConfig, view: FeatureView) -> tuple[str, int]:
    """`ensure_table`, returning ("created" | "updated" | "exists", push items folded)."""
    check_view_fits(view)
    table = config.table_name(view.name)
    created = False
    if _describe(client, table) is None:
        created = _create(client, table, view)
        if created:
            log.info("created DynamoDB table %s for feature view %s", table, view.name)
    _wait_active(client, table)
    ttl_changed = _ensure_ttl(client, table)
    if created:
        mark_folded(client, table, 0)  # a new table never held push items
        folded = 0
    else:
        folded = fold_push_items(client, table)
    return ("created" if created else ("updated" if ttl_changed else "exists")), folded


def needs_journal(registry: Registry) -> bool:
    """Whether the registry has stream sources or push views, whose rows go through the journal."""
    return bool(registry.stream_sources) or any(v.push for v in registry.feature_views)


def ensure_tables(
    registry: Registry,
    config: OnlineStoreConfig | None = None,
    *,
    select: list[str] | None = None,
    client: Any = None,
) -> dict[str, str]:
    """Create the table of every online feature view if missing; a second call changes nothing.

    With stream sources or push views (and no `select`), the journal table too (online_sync.journal).

    Args:
        registry: the views to create tables for (only `online=True` ones get one).
        config: endpoint and table prefix; default `OnlineStoreConfig.from_env()`.
        select: only these view names.
        client: a boto3 DynamoDB client to reuse.

    Returns:
        Table name -> "created", "updated" or "exists".

    Raises:
        OnlineStoreUnavailable: DynamoDB cannot be reached.
        ValueError: a view's name or columns cannot be stored.
    """
    config = config or OnlineStoreConfig.from_env()
    client = client or shared_client(config)
    try:
        result = {config.table_name(v.name): ensure_table(client, config, v) for v in online_views(registry, select)}
        if not select and needs_journal(registry):
            from hindsight.online_sync.journal import Journal

            journal = Journal(config, client)
            result[journal.table] = journal.ensure_table()
        return result
    except BotoCoreError as err:
        raise OnlineStoreUnavailable(f"DynamoDB at {config.endpoint_url or 'AWS'} is unreachable: {err}") from err
