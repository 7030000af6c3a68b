"""Store reads under a request's deadline: no resend of throttled keys past it."""

from __future__ import annotations

import time

import pytest

from hindsight.online_sync.batching import RetriesExhausted, get_batch
from hindsight.online_sync.store import OnlineStoreConfig, deadline_config


class ThrottledClient:
    """Answers every BatchGetItem with all keys unprocessed (a throttled table)."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_get_item(self, RequestItems):
        self.calls += 1
        return {"Responses": {}, "UnprocessedKeys": RequestItems}


REQUEST = {"t": {"Keys": [{"k": {"S": "1"}, "w": {"S": "s"}}]}}


def test_throttled_keys_are_not_resent_past_the_deadline():
    client = ThrottledClient()
    began = time.perf_counter()
    with pytest.raises(RetriesExhausted, match="deadline"):
        get_batch(client, REQUEST, deadline=began + 0.1)
    assert time.perf_counter() - began < 0.15  # without the deadline: 12 rounds, seconds of backoff
    assert 1 <= client.calls < 12


def test_a_deadline_already_passed_allows_the_first_call_only():
    client = ThrottledClient()
    with pytest.raises(RetriesExhausted):
        get_batch(client, REQUEST, deadline=time.perf_counter())
    assert client.calls == 1


def test_deadline_config_bounds_each_call_by_the_deadline_without_retries():
    config = deadline_config(OnlineStoreConfig(endpoint_url="http://127.0.0.1:1", table_prefix="p_"), 0.25)
    assert (config.connect_timeout_s, config.read_timeout_s, config.max_attempts) == (0.25, 0.25, 1)
    assert (config.endpoint_url, config.table_prefix) == ("http://127.0.0.1:1", "p_")
