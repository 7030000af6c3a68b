"""Spark Connect URLs: parsed, refused with the rule, and an unreachable server refused at once."""

from __future__ import annotations

import time

import pytest

from hindsight.core.ports import free_port
from hindsight.offline_store.sail import SparkConnectError, connect_address, open_session


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("sc://127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("sc://127.0.0.1:50051/;session_id=0f6e;user_id=me", ("127.0.0.1", 50051)),
        ("sc://spark.internal", ("spark.internal", 15002)),
        ("sc://spark.internal/;token=abc", ("spark.internal", 15002)),
    ],
)
def test_the_address_of_a_url(url, address):
    assert connect_address(url) == address


@pytest.mark.parametrize("url", ["http://127.0.0.1:50051", "127.0.0.1:50051", "sc://", "sc://host:0", "sc://host:port"])
def test_a_url_that_is_not_spark_connect_is_refused_with_an_example(url):
    with pytest.raises(SparkConnectError, match=r"not a Spark Connect URL: .* \(expected sc://host:port, e\.g\. sc://127\.0\.0\.1:50051\)"):
        connect_address(url)


@pytest.mark.parametrize("url", ["sc://host:0", "sc://host:99999", "sc://host:port"])
def test_a_bad_port_is_named(url):
    with pytest.raises(SparkConnectError, match=r"the port must be a number from 1 to 65535"):
        connect_address(url)


def test_nothing_listening_fails_at_once_not_after_pysparks_retries():
    url = f"sc://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(SparkConnectError, match=r"cannot reach Spark Connect at .*nothing accepts connections.*hindsight spark up"):
        open_session(url)
    assert time.monotonic() - started < 10
