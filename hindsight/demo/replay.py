"""Demo transactions as stream events: read from the raw demo data, re-timed to now for a replay.

`demo_events` selects raw transactions (data/raw/transactions, written by `hindsight demo-data`) and
keeps the stream source's declared columns; `retime` gives an event the current time as its event
time (the online windows are "the last 10 minutes": a six-month-old event would fall outside them)
and, unless the original ids are kept, a new event id `<id>-r<replay id>`, so each replay is a new
set of events and a second `make demo` moves the counts again. Keeping the ids (`keep_ids`) replays
the same events: the Ingestor counts them as duplicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from hindsight.registry_sync.model import StreamSource
from hindsight.registry_sync.types import ARROW_TYPES


class ReplayError(ValueError):
    """The demo data cannot feed this source (missing files or columns)."""


def demo_events(raw_dir: Path, source: StreamSource, *, users: Sequence[int] = (), since: dt.datetime | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Raw demo transactions as events of `source`, oldest first.

    Args:
        users: only these user ids (the first join key); empty: every user.
        since: only transactions at or after this event time.
        limit: at most this many (the oldest after `since`).

    Raises:
        ReplayError: no raw transactions, or a declared column they do not have.
    """
    folder = raw_dir / "transactions"
    if not folder.is_dir():
        raise ReplayError(f"no raw demo transactions in {folder}: run `hindsight demo-data` first")
    dataset = ds.dataset(folder, format="parquet")
    names = [c.name for c in source.columns]
    missing = [n for n in names if n not in dataset.schema.names]
    if missing:
        raise ReplayError(f"stream source {source.name}: the raw demo transactions have no column "
                          f"{', '.join(missing)} (they have {', '.join(dataset.schema.names)})")
    where = None
    if users:
        where = pc.field(source.join_keys[0]).isin(list(users))
    if since is not None:
        after = pc.field(source.timestamp_field) >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
        where = after if where is None else where & after
    table = dataset.to_table(columns=names, filter=where).sort_by([(source.timestamp_field, "ascending"),
                                                                  (source.event_id_field, "ascending")])
    if limit is not None:
        table = table.slice(0, limit)
    # The declared types: an int64 id in the raw data is a string id in a source that says so.
    columns = {c.name: c for c in source.columns}
    table = table.cast(pa.schema([pa.field(n, ARROW_TYPES[columns[n].dtype]) for n in names]))
    return table.to_pylist()


def retime(source: StreamSource, replay_id: str | None, *, keep_ids: bool = False,
           ) -> Callable[[dict[str, Any], float], dict[str, Any]]:
    """A function giving an event the put time as its event time (and a fresh id unless `keep_ids`).

    >>> from hindsight.registry_sync.model import StreamSource
    >>> s = StreamSource("streams.t", "transaction_id", "ts", ("user",), ("user_id",), (), "/x")
    >>> retime(s, "42")({"transaction_id": 7, "ts": None}, 0.0)
    {'transaction_id': 420000000007, 'ts': '1970-01-01T00:00:00+00:00'}
    >>> retime(s, "42")({"transaction_id": "t7", "ts": None}, 0.0)["transaction_id"]
    't7-r42'
    """
    event_id, timestamp = source.event_id_field, source.timestamp_field

    def apply(event: dict[str, Any], now: float) -> dict[str, Any]:
        out = dict(event)
        out[timestamp] = dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat()
        if not keep_ids and replay_id:
            # A string id gets a suffix; an integer id an offset of replay id x 10^10.
            original = event[event_id]
            out[event_id] = (original + int(replay_id) * 10**10 if isinstance(original, int)
                             else f"{original}-r{replay_id}")
        return out

    return apply
