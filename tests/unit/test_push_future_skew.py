"""A push may not carry an event (or created) time beyond the allowed skew from now: newest wins
online, so one far-future row would pin its value until real time caught up."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.online_sync import OnlineStoreConfig, push
from hindsight.online_sync.push import FutureBound, FutureEventError, max_future_skew
from tests.fixtures.dynamodb import make_registry, make_view

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BOUND = FutureBound(NOW, dt.timedelta(minutes=5))


class NoStore:
    """Fails the test if push touched the store: a refused push writes nothing."""

    def __getattr__(self, name):
        raise AssertionError(f"the store was called ({name}) although a row was refused")


def rows(ts: dt.datetime, created: dt.datetime | None = None) -> list[dict]:
    good = {"user_id": 1, "ts": NOW, "created": None, "amount": 1.0, "count": 1, "country": "FR"}
    return [good, {**good, "user_id": 2, "ts": ts, "created": created}]


@pytest.fixture
def registry(tmp_path):
    return make_registry(make_view(tmp_path, push=True))


def test_an_event_time_beyond_the_skew_is_refused_naming_the_field_and_bound(registry):
    far = NOW + dt.timedelta(days=365)
    with pytest.raises(FutureEventError) as caught:
        push(registry, OnlineStoreConfig(), "user_stats", rows(far), client=NoStore(), bound=BOUND)
    error = caught.value
    assert (error.field, error.index) == ("ts", 1)
    message = str(error)
    assert "row 1: ts 2027-11-30T12:00:00+00:00 is more than 5m in the future" in message
    assert "latest accepted: 2026-11-30T12:05:00+00:00" in message
    assert "HINDSIGHT_PUSH_MAX_FUTURE_SKEW" in message


def test_a_created_time_beyond_the_skew_is_refused_too(registry):
    with pytest.raises(FutureEventError, match="row 1: created .* is more than 5m in the future"):
        push(registry, OnlineStoreConfig(), "user_stats", rows(NOW, NOW + dt.timedelta(hours=1)),
             client=NoStore(), bound=BOUND)


def test_times_within_the_skew_pass_the_check(registry):
    from hindsight.online_sync.push import push_item

    within = rows(NOW + dt.timedelta(minutes=4, seconds=59), NOW + dt.timedelta(minutes=5))[1]
    key, order, item = push_item(registry.view("user_stats"), within, 1, BOUND)
    assert item["amount"] == {"N": "1.0"} and order > 0


def test_the_skew_comes_from_the_environment():
    assert max_future_skew({}) == dt.timedelta(minutes=5)
    assert max_future_skew({"HINDSIGHT_PUSH_MAX_FUTURE_SKEW": "1h"}) == dt.timedelta(hours=1)
    with pytest.raises(ValueError, match="HINDSIGHT_PUSH_MAX_FUTURE_SKEW: cannot parse duration 'soon'"):
        max_future_skew({"HINDSIGHT_PUSH_MAX_FUTURE_SKEW": "soon"})


def test_the_cli_refuses_with_one_line_and_exit_1(registry, tmp_path, monkeypatch):
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict(), default=str))
    monkeypatch.setenv("HINDSIGHT_DYNAMODB_ENDPOINT", "http://127.0.0.1:9")  # never reached
    far = (dt.datetime.now(UTC) + dt.timedelta(days=30)).isoformat()
    line = json.dumps({"user_id": 1, "ts": far, "amount": 1.0, "count": 1, "country": "FR"})
    result = CliRunner().invoke(main, ["push", "user_stats", "--registry", str(registry_file)], input=line + "\n")
    assert result.exit_code == 1, result.output
    assert "row 0: ts" in result.output and "is more than 5m in the future" in result.output
    assert "Traceback" not in result.output
