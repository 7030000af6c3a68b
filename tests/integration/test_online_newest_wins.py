"""Property: whatever order syncs and pushes run in, racing or not, the online value of an entity is
the newest row of everything written to it (pushed, or in Delta as of a sync)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.online_sync import OnlineStore, ensure_tables, push, sync
from tests.fixtures.dynamodb import make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
ENTITIES = (1, 2, 3)

# A row: (entity, event hour, created minute or None). Unique, so no two rows of an entity tie.
row_keys = st.tuples(st.sampled_from(ENTITIES), st.integers(0, 12), st.none() | st.integers(0, 3))
#: An operation: ("delta", n) appends the next n rows to Delta; ("push", [n, ...]) pushes the next
#: rows in that many concurrent pushes; ("sync", full) syncs; ("race", [n, ...]) pushes concurrently
#: with a sync.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("delta"), st.integers(1, 6)),
        st.tuples(st.just("push"), st.lists(st.integers(1, 3), min_size=1, max_size=3)),
        st.tuples(st.just("sync"), st.booleans()),
        st.tuples(st.just("race"), st.lists(st.integers(1, 3), min_size=1, max_size=2)),
    ),
    min_size=2,
    max_size=7,
)


def order(row: dict) -> tuple:
    return (row["ts"], row["created"] or dt.datetime.min.replace(tzinfo=UTC))


def to_row(index: int, key: tuple) -> dict:
    entity, hour, minute = key
    created = None if minute is None else T0 + dt.timedelta(hours=hour, minutes=minute)
    return {"user_id": entity, "ts": T0 + dt.timedelta(hours=hour), "created": created, "row_id": index}


class Scenario:
    """Runs operations and tracks what must be online: the newest of pushed rows and synced Delta rows."""

    def __init__(self, config, client, keys: list[tuple], base: Path):
        self.client = client
        self.config = dataclasses.replace(config, table_prefix=f"p{uuid.uuid4().hex[:10]}_")
        self.view = make_view(base, "prop", {"row_id": "int64"}, push=True)
        self.registry = make_registry(self.view)
        self.rows = [to_row(i, k) for i, k in enumerate(keys)]
        self.next = 0
        self.in_delta: list[dict] = []
        self.visible: list[dict] = []  # rows that must be reflected online
        write_rows(self.view, [])  # the empty table dbt would have created
        ensure_tables(self.registry, self.config, client=client)

    def take(self, n: int) -> list[dict]:
        taken = self.rows[self.next:self.next + n]
        self.next += len(taken)
        return taken

    def run(self, op: tuple) -> None:
        kind, arg = op
        if kind == "delta":
            rows = self.take(arg)
            if rows:
                write_rows(self.view, rows)
                self.in_delta += rows
        elif kind == "sync":
            self._sync(full=arg)
        else:
            groups = [g for g in (self.take(n) for n in arg) if g]
            with ThreadPoolExecutor(len(groups) + 1) as pool:
                futures = [pool.submit(push, self.registry, self.config, "prop", g, client=self.client) for g in groups]
                if kind == "race":
                    futures.append(pool.submit(self._sync, False))
                for future in futures:
                    future.result()
            self.visible += [r for g in groups for r in g]

    def _sync(self, full: bool) -> None:
        delta_now = list(self.in_delta)
        sync(self.registry, self.config, full=full, progress=False, client=self.client)
        self.visible += delta_now

    def check(self) -> None:
        store = OnlineStore(self.registry, self.config, self.client)
        reads = store.read([{"user_id": e} for e in ENTITIES], {"prop": ["row_id"]})
        for entity, read in zip(ENTITIES, reads):
            candidates = [r for r in self.visible if r["user_id"] == entity]
            if not candidates:
                assert read["prop"].status == "NOT_FOUND"
                continue
            newest = max(candidates, key=order)
            assert read["prop"].status == "PRESENT"
            assert (read["prop"].values["row_id"], read["prop"].event_timestamp) == (newest["row_id"], newest["ts"]), (
                entity, sorted(candidates, key=order)
            )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(row_keys, min_size=4, max_size=30, unique=True), ops=operations)
def test_online_value_is_the_newest_of_everything_written(online_config, dynamodb_client, keys, ops):
    with tempfile.TemporaryDirectory() as base:
        scenario = Scenario(online_config, dynamodb_client, keys, Path(base))
        for op in ops:
            scenario.run(op)
            if op[0] != "delta":
                scenario.check()
        scenario.run(("sync", False))
        scenario.check()
