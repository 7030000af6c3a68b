"""The online store: DynamoDB tables holding each online feature view's newest values per entity.

Owns: the DynamoDB tables (one per online feature view, `<prefix><view>`), `sync` (Delta -> DynamoDB),
`push` (rows -> DynamoDB), the read API `OnlineStore` that `serving` uses, `check_parity`, and the
local DynamoDB (`online_sync.local.DynamoDBLocal`).
Reads: the registry (`registry_sync.model.Registry`) and the views' Delta tables (deltalake, via
the change data feed when it can). Writes: DynamoDB only.

Table design (one table per view, on-demand capacity, TTL on `_hs_expires`):

    partition key  _hs_key     S  the entity's join-key values (`codec.entity_key`: "12", '["12","FR"]')
    sort key       _hs_writer  S  "sync" | "push": which writer owns the item (its "slot")
                   _hs_order   N  (event time, created time) packed into one sortable number
                   _hs_expires N  event time + ttl, epoch seconds (DynamoDB's TTL deletes it later)
                   <feature>   *  one attribute per non-null feature, typed by its dtype (`codec`)

Newest event wins without a condition on BatchWriteItem: each writer has its own item per entity.
`sync` alone writes the "sync" slot, with fast unconditional BatchWriteItem; a lease per view
serialises syncs, and an incremental sync first reads the slot's `_hs_order` to drop changed rows
older than what is there. `push` writes the "push" slot with a conditional PutItem
(`_hs_order <= :new`), safe under racing pushes. A read fetches both slots of every (view, entity)
in one BatchGetItem (2 keys each: up to 50 views per entity in one call) and keeps the newer one,
so the value served is always the newest of everything written, whatever order things ran in.

Each table also holds two bookkeeping items under the key "_" (writers "state" and "lock"): the last
Delta version synced, kept in DynamoDB so a sync from another machine sees it, and the sync lease
(`online_sync.state`).

Modules: `config` (OnlineStoreConfig, clients), `codec` (attribute encoding), `tables`
(ensure_tables), `newest` (Delta/CDF -> newest row per entity, in DuckDB), `delta_sync` (sync),
`push`, `store` (OnlineStore), `state` (sync state and lease), `batching` (batch calls, retries),
`parity` (check_parity), `local` (DynamoDB Local), `keys` (the serving API's keys, hashed, in
`<prefix>api_keys`), `tile_items` / `combine` (aggregation views' items, built by sync and combined at
read time), `tile_merge` (those items updated in place, event by event, for stream-fed views), and
`journal` (`<prefix>_hs_journal`: every ingested event and pushed row until flushed to Delta, and
the dedupe record of its id).

Deleted Delta rows are not retracted: the online store only moves forward in event time, and the
TTL ages old values out.
"""

from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable
from hindsight.online_sync.parity import ParityReport, check_parity
from hindsight.online_sync.push import PushReport, push
from hindsight.online_sync.store import OnlineStore, ViewRead
from hindsight.online_sync.delta_sync import SyncReport, ViewSyncReport, sync
from hindsight.online_sync.tables import ensure_tables

__all__ = [
    "OnlineStore",
    "OnlineStoreConfig",
    "OnlineStoreUnavailable",
    "ParityReport",
    "PushReport",
    "SyncReport",
    "ViewRead",
    "ViewSyncReport",
    "check_parity",
    "ensure_tables",
    "push",
    "sync",
]
