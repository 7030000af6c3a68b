"""push against DynamoDB Local: what goes online, what is journaled, in which cases (no dbt here)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from hindsight.online_sync import OnlineStore, ensure_tables, push, sync
from hindsight.online_sync.journal import Journal, view_target
from hindsight.online_sync.push import PushRefused
from tests.fixtures.dynamodb import make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def pending_rows(config, view: str) -> list[dict]:
    """The view's journaled rows not flushed yet, in push order."""
    entries = Journal(config).pending(view_target(view), 10_000)
    return [e.row for e in sorted(entries, key=lambda e: (e.seq_us, str(e.row)))]


def read(registry, config, view, features, user=1):
    return OnlineStore(registry, config).read([{"user_id": user}], {view: features})[0][view]


def test_every_row_is_journaled_once_and_only_the_newest_goes_online(tmp_path, online_config):
    view = make_view(tmp_path, "whole", {"x": "int64"}, created=False, push=True)
    registry = make_registry(view)
    ensure_tables(registry, online_config)
    rows = [{"user_id": 1, "ts": at(h), "x": h} for h in (2, 1, 3)] + [{"user_id": 1, "ts": at(2), "x": 2}]
    report = push(registry, online_config, "whole", rows)
    assert (report.rows, report.written, report.stale, report.journaled, report.duplicates) == (4, 1, 3, 3, 1)
    assert read(registry, online_config, "whole", ["x"]).values == {"x": 3}
    assert sorted(r["x"] for r in pending_rows(online_config, "whole")) == [1, 2, 3]
    journaled = min(pending_rows(online_config, "whole"), key=lambda r: r["x"])
    assert journaled == {"user_id": 1, "ts": at(1).isoformat(), "x": 1}

    # Older than online: not written online, journaled all the same (history for training sets).
    late = push(registry, online_config, "whole", [{"user_id": 1, "ts": at(0), "x": 0}])
    assert (late.written, late.stale, late.journaled) == (0, 1, 1)
    assert read(registry, online_config, "whole", ["x"]).values == {"x": 3}
    assert len(pending_rows(online_config, "whole")) == 4


def test_a_push_over_one_transaction_of_rows_is_journaled_whole(tmp_path, online_config):
    view = make_view(tmp_path, "many", {"x": "int64"}, created=False, push=True)
    registry = make_registry(view)
    ensure_tables(registry, online_config)
    rows = [{"user_id": u % 3, "ts": at(i / 10), "x": i} for u in range(3) for i in range(u * 1000, u * 1000 + 150)]
    report = push(registry, online_config, "many", rows)
    assert (report.journaled, report.written, report.duplicates) == (450, 3, 0)
    assert len(pending_rows(online_config, "many")) == 450


def test_partial_pushes_update_only_their_features_online(tmp_path, online_config):
    view = make_view(tmp_path, "partial", {"a": "int64", "b": "string", "c": "float64"}, created=False,
                     push=True, push_partial=True)
    write_rows(view, [{"user_id": 1, "ts": at(0), "a": 1, "b": "one", "c": 1.5}])
    registry = make_registry(view)
    ensure_tables(registry, online_config)
    sync(registry, online_config, progress=False)
    features = ["a", "b", "c"]

    assert push(registry, online_config, "partial", [{"user_id": 1, "ts": at(1), "b": "two"}]).written == 1
    assert read(registry, online_config, "partial", features).values == {"a": 1, "b": "two", "c": 1.5}
    # A carried null clears that feature only.
    push(registry, online_config, "partial", [{"user_id": 1, "ts": at(2), "a": None}])
    assert read(registry, online_config, "partial", features).values == {"a": None, "b": "two", "c": 1.5}
    # Older than the online item: nothing changes online; the row is still journaled.
    late = push(registry, online_config, "partial", [{"user_id": 1, "ts": at(0.5), "c": 9.0}])
    assert (late.written, late.stale, late.journaled) == (0, 1, 1)
    value = read(registry, online_config, "partial", features)
    assert (value.values, value.event_timestamp) == ({"a": None, "b": "two", "c": 1.5}, at(2))
    assert [r["_hs_features"] for r in pending_rows(online_config, "partial")] == [["b"], ["a"], ["c"]]

    with pytest.raises(ValueError, match="row 0 carries no feature"):
        push(registry, online_config, "partial", [{"user_id": 1, "ts": at(3)}])


def test_racing_partial_pushes_lose_no_feature(tmp_path, online_config):
    """Each push sets its own feature at its own time; whatever the interleaving, the newest item holds
    every feature that no newer push overwrote: the read-check-write transaction retries on conflicts."""
    names = [f"f{i}" for i in range(6)]
    view = make_view(tmp_path, "racing", dict.fromkeys(names, "int64"), created=False, push=True, push_partial=True)
    registry = make_registry(view)
    ensure_tables(registry, online_config)
    pushes = [[{"user_id": 1, "ts": at(1 + i), name: i}] for i, name in enumerate(names)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda rows: push(registry, online_config, "racing", rows), pushes))
    value = read(registry, online_config, "racing", names)
    assert value.event_timestamp == at(len(names))
    # A push that committed before a newer one is folded in; one that lost the race to a newer push
    # is stale online (journaled). The newest always lands, and no feature it did not carry is lost
    # unless an older push never reached the item.
    assert value.values[names[-1]] == len(names) - 1
    landed = {n for n, v in value.values.items() if v is not None}
    assert all(value.values[n] == int(n[1:]) for n in landed)
    assert len(pending_rows(online_config, "racing")) == len(names)


def test_an_offline_only_push_view_is_journaled_only(tmp_path, online_config):
    view = make_view(tmp_path, "offline", {"x": "int64"}, created=False, push=True, online=False)
    registry = make_registry(view)
    ensure_tables(registry, online_config)
    report = push(registry, online_config, "offline", [{"user_id": 1, "ts": at(1), "x": 1}])
    assert (report.written, report.journaled) == (0, 1)


def test_views_without_push_are_refused_naming_the_config(tmp_path, online_config):
    registry = make_registry(make_view(tmp_path, "plain", {"x": "int64"}))
    with pytest.raises(PushRefused, match="push to 'plain': the feature view does not take pushed rows: set config push=true"):
        push(registry, online_config, "plain", [{"user_id": 1, "ts": at(1), "x": 1}])
    with pytest.raises(ValueError, match="no feature view named 'plan' \\(did you mean plain\\?\\)"):
        push(registry, online_config, "plan", [{"user_id": 1, "ts": at(1), "x": 1}])
