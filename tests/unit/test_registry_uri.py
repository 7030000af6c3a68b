"""Where the registry looks for a view's Delta table: feature_view_config.sql's rule, in Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight.registry_sync.manifest import _delta_uri


def node(**config):
    return {"name": "orders", "alias": "orders", "config": {"materialized": "feature_view", **config}}


@pytest.mark.parametrize(
    ("config", "offline_store", "expected"),
    [
        ({}, "/p/data/offline_store", "/p/data/offline_store/orders"),  # hindsight.yml's root
        ({}, "data/offline_store", "/p/data/offline_store/orders"),  # relative: the project folder
        ({"location_root": "lake/"}, "/elsewhere", "/p/lake/orders"),  # a folder config wins
        ({"location_root": "s3://bucket/fv"}, "/elsewhere", "s3://bucket/fv/orders"),
        ({"location": "/abs/orders_v2", "location_root": "lake"}, "/elsewhere", "/abs/orders_v2"),
    ],
)
def test_delta_uri_follows_the_materialization(config, offline_store, expected) -> None:
    assert _delta_uri(node(**config), offline_store, Path("/p")) == expected
