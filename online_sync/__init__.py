"""The online store: DynamoDB tables holding each online feature view's newest values per entity.

Owns: the DynamoDB tables (one per online feature view, `<prefix><view>`), `sync` (Delta -> DynamoDB),
`push` (rows -> DynamoDB), the read API `OnlineStore` that `serving` uses, `check_parity`, and the
local DynamoDB (`online_sync.local.DynamoDBLocal`).
Reads: the registry (`registry_sync.model.Registry`) and the views' Delta tables (deltalake, via
the change data feed when it can). Writes: DynamoDB only.

Table design (one table per view, on-demand capacity, TTL on `_hs_expires`):

    partition key  _hs_key     S  the entity's join-key values (`codec.entity_key`: "12", '["12","FR"]')
    sort key       _hs_writer  S  "sync": the entity's one item (other values: bookkeeping, below)
                   _hs_order   N  (event time, created time) packed into one sortable number
                   _hs_expires N  event time + ttl, epoch seconds (DynamoDB's TTL deletes it later)
                   <feature>   *  one attribute per non-null feature, typed by its dtype (`codec`)

One item per view and entity, newest event wins (`write_rule`): `sync` writes the items of a view
without push with fast unconditional BatchWriteItem (a lease per view serialises syncs, and an
incremental sync first reads the items' `_hs_order` to drop changed rows older than what is there);
a view with `push: true` takes pushes at any time, so both `push` and `sync` write its items with
conditional puts (`_hs_order <= :new`), and a sync row that loses is reported skipped. A read fetches
one key per (view, entity): up to 100 views per entity in one BatchGetItem. Older versions kept a
second "push" item per entity; `fold` moves those into the entity's item once, at apply or sync.

Each table also holds bookkeeping items under the key "_" (writers "state", "lock" and "layout"):
the last Delta version synced, kept in DynamoDB so a sync from another machine sees it, the sync
lease (`online_sync.state`), and the marker that the table's push items were folded (`fold`).

Modules: `config` (OnlineStoreConfig, clients), `codec` (attribute encoding), `tables`
(ensure_tables), `newest` (Delta/CDF -> newest row per entity, in DuckDB), `delta_sync` (sync),
`spark_sync` (sync's read, reduce and write on Spark executors: `sync(engine="spark")`),
`push`, `write_rule` (the write rule of synced rows), `fold` (old push items), `store`
(OnlineStore), `state` (sync state and lease), `batching` (batch calls, retries), `parity`
(check_parity), `local` (DynamoDB Local), `keys` (the serving API's keys, hashed, in
`<prefix>api_keys`), `tile_items` / `combine` (aggregation views' items, built by sync and combined
at read time), `tile_merge` (those items updated in place, event by event, for stream-fed views),
and `journal` (`<prefix>_hs_journal`: every ingested event and pushed row until flushed to Delta,
and the dedupe record of its id).

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
