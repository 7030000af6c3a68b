"""`sync(engine=...)`: engine names checked before anything runs, and the report naming views that stay in process."""

from __future__ import annotations

import pytest

from hindsight.online_sync.delta_sync import SyncReport, ViewSyncReport, _spark_remote


def test_engine_names_and_the_spark_url_are_checked_first(monkeypatch):
    monkeypatch.delenv("HINDSIGHT_SPARK_REMOTE", raising=False)
    assert _spark_remote("duckdb", None) is None
    with pytest.raises(ValueError, match=r"unknown sync engine 'duckbd'; expected 'duckdb' or 'spark' \(did you mean duckdb\?\)"):
        _spark_remote("duckbd", None)
    with pytest.raises(ValueError, match=r"needs a Spark Connect URL \(sc://host:port\): pass --spark-remote .* or set HINDSIGHT_SPARK_REMOTE"):
        _spark_remote("spark", None)
    monkeypatch.setenv("HINDSIGHT_SPARK_REMOTE", "sc://127.0.0.1:1")
    assert _spark_remote("spark", None) == "sc://127.0.0.1:1"
    assert _spark_remote("spark", "sc://h:2") == "sc://h:2"


def test_the_report_names_views_synced_in_process_under_engine_spark():
    report = SyncReport((
        ViewSyncReport("users", "full", 10, 5, 0, None, 3, 0.5, engine="spark"),
        ViewSyncReport("txns", "full", 8, 4, 0, None, 1, 0.2, not_on_spark="aggregation view"),
    ))
    lines = str(report).splitlines()
    assert lines[-1] == "txns: synced in this process, not on Spark: aggregation view"
    assert not any(line.startswith("users:") for line in lines)
