"""append_pushed_rows against a brute-force oracle: partial rows filled from the entity's newest
earlier row, one row per unique key (the newest push wins, a replay adds nothing), schema checks."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.offline_store.event_log import INGESTED_AT
from hindsight.offline_store.pushed_rows import PUSHED_AT, PushedRowsError, append_pushed_rows, entry_id
from tests.fixtures.dynamodb import make_view

UTC = dt.timezone.utc
DAY0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = ("a", "b")
SCHEMA = pa.schema([
    ("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("_partition_date", pa.date32()),
    ("a", pa.float64()), ("b", pa.string()), (PUSHED_AT, pa.timestamp("us", tz="UTC")),
])


def computed_table(path, rows):
    table = pa.Table.from_pylist(
        [{**r, "_partition_date": r["ts"].date(), PUSHED_AT: None} for r in rows], schema=SCHEMA)
    write_deltalake(str(path), table, mode="overwrite", partition_by=["_partition_date"])


def batch_table(rows, pushed_at):
    """A batch as the flusher builds it from journal rows (JSON values)."""
    table = pa.Table.from_pylist([
        {"user_id": r["user_id"], "ts": r["ts"].isoformat(), **{f: r.get(f) for f in FEATURES},
         "_hs_features": sorted(r["present"])} for r in rows
    ])
    return table.append_column(INGESTED_AT, pa.array([pushed_at] * len(rows), pa.timestamp("us", tz="UTC")))


class Oracle:
    """The append rules, one row at a time."""

    def __init__(self, rows):
        self.rows = [{**r, PUSHED_AT: None} for r in rows]

    @staticmethod
    def _order(row, seq):
        return (row["ts"], row[PUSHED_AT] or dt.datetime.min.replace(tzinfo=UTC), seq)

    def append(self, batch, pushed_at):
        before = list(self.rows)
        filled = []
        ordered = sorted(enumerate(batch), key=lambda e: (e[1]["ts"], e[0]))
        for seq, row in ordered:
            mine = (row["ts"], pushed_at, 1, seq)
            candidates = [((*self._order(r, -1)[:2], 0, -1), r) for r in before if r["user_id"] == row["user_id"]]
            candidates += [((f["ts"], pushed_at, 1, s), f) for s, f in filled if f["user_id"] == row["user_id"]]
            earlier = [c for c in candidates if c[0] < mine]
            base = max(earlier, key=lambda c: c[0])[1] if earlier else {}
            out = {"user_id": row["user_id"], "ts": row["ts"], PUSHED_AT: pushed_at}
            for f in FEATURES:
                out[f] = row.get(f) if f in row["present"] else base.get(f)
            filled.append((seq, out))
        last = {}
        for _seq, row in sorted(filled, key=lambda e: e[0]):
            last[(row["user_id"], row["ts"])] = row  # the last row of the batch per key
        written = 0
        for key, row in last.items():
            held = next((r for r in self.rows if (r["user_id"], r["ts"]) == key), None)
            if held is None:
                self.rows.append(row)
                written += 1
            elif any(held[f] != row[f] for f in FEATURES) and (held[PUSHED_AT] is None or pushed_at >= held[PUSHED_AT]):
                self.rows[self.rows.index(held)] = row
                written += 1
        return written

    def table(self):
        return sorted(((r["user_id"], r["ts"], r["a"], r["b"], r[PUSHED_AT]) for r in self.rows), key=str)


def stored(path):
    rows = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
    return sorted(((r["user_id"], r["ts"], r["a"], r["b"], r[PUSHED_AT]) for r in rows), key=str)


day = st.integers(0, 4).map(lambda d: DAY0 + dt.timedelta(days=d))
pushed_row = st.fixed_dictionaries({
    "user_id": st.integers(1, 2), "ts": day, "a": st.sampled_from([None, 1.5, 2.5]), "b": st.sampled_from([None, "x", "y"]),
    "present": st.sets(st.sampled_from(FEATURES), min_size=1),
})
# A step: a new batch of rows, or a replay of an earlier batch (a flush that crashed before mark_flushed).
step = st.one_of(st.lists(pushed_row, min_size=1, max_size=4), st.integers(0, 5))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=4))
def test_appends_equal_the_one_row_at_a_time_oracle(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("pushed") / "v"
    view = dataclasses.replace(make_view(path.parent, "v", {"a": "float64", "b": "string"}, created=False),
                               push=True, push_partial=True)
    computed = [{"user_id": 1, "ts": DAY0 + dt.timedelta(days=1), "a": 0.5, "b": "c"},
                {"user_id": 2, "ts": DAY0 + dt.timedelta(days=2), "a": None, "b": "d"}]
    computed_table(path, computed)
    oracle = Oracle(computed)
    done = []
    for n, item in enumerate(steps):
        if isinstance(item, int):
            if not done:
                continue
            batch, pushed_at = done[item % len(done)]
        else:
            batch, pushed_at = item, DAY0 + dt.timedelta(days=30, seconds=n)
            done.append((batch, pushed_at))
        expected = oracle.append(batch, pushed_at)
        assert append_pushed_rows(view, batch_table(batch, pushed_at)) == expected
        assert stored(path) == oracle.table()


def test_whole_rows_must_carry_every_feature_and_fit_the_table(tmp_path):
    view = dataclasses.replace(make_view(tmp_path, "v", {"a": "float64", "b": "string"}, created=False), push=True)
    computed_table(tmp_path / "v", [{"user_id": 1, "ts": DAY0, "a": 1.0, "b": "x"}])
    at = pa.array([DAY0], pa.timestamp("us", tz="UTC"))
    with pytest.raises(PushedRowsError, match=r"lack feature\(s\) \['b'\]; only a view with config push_partial=true"):
        append_pushed_rows(view, pa.table({"user_id": [1], "ts": [DAY0.isoformat()], "a": [2.0], INGESTED_AT: at}))
    with pytest.raises(PushedRowsError, match=r"column\(s\) \['bb'\] are not in its Delta table \(did you mean b\?\)"):
        append_pushed_rows(view, pa.table({"user_id": [1], "ts": [DAY0.isoformat()], "a": [2.0], "b": ["y"], "bb": [1],
                                           INGESTED_AT: at}))
    with pytest.raises(PushedRowsError, match=r"column a \(string\) does not fit the table's type double"):
        append_pushed_rows(view, pa.table({"user_id": [1], "ts": [DAY0.isoformat()], "a": ["high"], "b": ["y"],
                                           INGESTED_AT: at}))
    with pytest.raises(PushedRowsError, match="does not take pushed rows"):
        append_pushed_rows(dataclasses.replace(view, push=False), pa.table({"user_id": [1]}))
    assert DeltaTable(str(tmp_path / "v")).version() == 0  # nothing written


def test_a_missing_created_time_becomes_the_push_time(tmp_path):
    view = dataclasses.replace(make_view(tmp_path, "v", {"a": "float64"}, created=True), push=True)
    schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("created", pa.timestamp("us", tz="UTC")),
                        ("_partition_date", pa.date32()), ("a", pa.float64()), (PUSHED_AT, pa.timestamp("us", tz="UTC"))])
    write_deltalake(str(tmp_path / "v"), schema.empty_table(), partition_by=["_partition_date"])
    at = DAY0 + dt.timedelta(hours=5)
    rows = pa.table({"user_id": [1, 1], "ts": [DAY0.isoformat()] * 2, "created": [None, DAY0.isoformat()], "a": [1.0, 2.0],
                     INGESTED_AT: pa.array([at, at], pa.timestamp("us", tz="UTC"))})
    assert append_pushed_rows(view, rows) == 2
    got = sorted((r["created"], r["a"]) for r in DeltaTable(str(tmp_path / "v")).to_pyarrow_table().to_pylist())
    assert got == [(DAY0, 2.0), (at, 1.0)]


def test_entry_ids_depend_on_content_only():
    assert entry_id({"a": 1, "b": "x"}) == entry_id({"b": "x", "a": 1})
    assert entry_id({"a": 1, "b": "x"}) != entry_id({"a": 1, "b": "y"})
