"""A process that ingests events and flushes them in the background until it is killed (-9).

    python tests/integration/flush_crash_child.py ENDPOINT TABLE_PREFIX REGISTRY_JSON ACKS_FILE

After each acknowledged `ingest` call it appends the batch's event ids to ACKS_FILE (one per line,
flushed and fsynced), so the killer knows exactly which events were acknowledged before the kill.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.registry_sync.model import Registry
from hindsight.streams.flush import Flusher
from hindsight.streams.ingest import Ingestor


def main() -> None:
    endpoint, prefix, registry_file, acks_file = sys.argv[1:5]
    registry = Registry.from_dict(json.loads(Path(registry_file).read_text()))
    config = OnlineStoreConfig(endpoint_url=endpoint, table_prefix=prefix, region="us-east-1", lease_seconds=30)
    ingestor = Ingestor(registry, config)
    flusher = Flusher(registry, config, client=ingestor.client, batch_size=50)
    flusher.start(interval_s=0.05)
    base = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    with open(acks_file, "a") as acks:
        batch = 0
        while True:
            rows = [{"transaction_id": f"k{batch:05d}-{i}", "user_id": i % 4, "amount": float(i),
                     "ts": (base + dt.timedelta(milliseconds=batch * 10 + i)).isoformat()} for i in range(10)]
            ingestor.ingest("transactions", rows)
            acks.write("".join(f"{r['transaction_id']}\n" for r in rows))
            acks.flush()
            os.fsync(acks.fileno())
            batch += 1


if __name__ == "__main__":
    main()
