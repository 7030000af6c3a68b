"""`hindsight status` and the pipeline gauges on real Delta tables and DynamoDB Local.

Three views written by hand with event times relative to now: `fresh` (expected within 1d, newest
event 1 hour ago), `late` (expected within 2d, newest event 5 days ago) and `archive` (offline, no
expectation). Every figure the report prints is checked against what was written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest
from click.testing import CliRunner
from deltalake import CommitProperties, DeltaTable

from hindsight.cli import main
from hindsight.online_sync import OnlineStore, sync
from hindsight.online_sync.status import collect_status
from hindsight.serving import create_app
from tests.fixtures.dynamodb import make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
FRESH_NEWEST = NOW - dt.timedelta(hours=1)
LATE_NEWEST = NOW - dt.timedelta(days=5)


def since_now() -> float:
    """Seconds since NOW (set when pytest collects this module, maybe long before a test runs), plus a second."""
    return (dt.datetime.now(UTC) - NOW).total_seconds() + 1
INVOCATION = "0b5e0c3e-1111-2222-3333-444455556666"


def _rows(newest: dt.datetime, users: int) -> list[dict]:
    # Each user has an older row too: the newest event is the greatest, not the last written.
    return [
        {"user_id": u, "ts": t, "created": t, "x": u}
        for u in range(users)
        for t in (newest - dt.timedelta(hours=3 + u), newest - dt.timedelta(minutes=u))
    ]


@pytest.fixture
def pipeline(online_config, tmp_path):
    fresh = dataclasses.replace(make_view(tmp_path, "fresh", {"x": "int64"}),
                                expected_freshness_seconds=86400, expected_freshness_source="config")
    late = dataclasses.replace(make_view(tmp_path, "late", {"x": "int64"}, ttl_seconds=2 * 86400),
                               expected_freshness_seconds=2 * 86400, expected_freshness_source="ttl")
    archive = make_view(tmp_path, "archive", {"x": "int64"}, online=False)
    metadata = CommitProperties(custom_metadata={"dbt_invocation_id": INVOCATION, "hindsight_mode": "full_refresh"})
    write_rows(fresh, _rows(FRESH_NEWEST, 4), commit_properties=metadata)
    write_rows(late, _rows(LATE_NEWEST, 3), commit_properties=metadata)
    write_rows(archive, _rows(NOW - dt.timedelta(days=400), 2))
    registry = make_registry(archive, fresh, late)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix, "NO_COLOR": "1"}
    return registry, registry_file, env


def _status(registry_file, env, *args):
    result = CliRunner().invoke(main, ["status", "--registry", str(registry_file), *args], env=env)
    assert "Traceback" not in result.output, result.output
    return result


def _views(result) -> dict[str, dict]:
    return {v["view"]: v for v in json.loads(result.output)["views"]}


def test_status_before_and_after_sync(pipeline, online_config):
    registry, registry_file, env = pipeline
    before = _status(registry_file, env, "--json")
    assert before.exit_code == 3
    views = _views(before)
    assert [b["check"] for b in views["fresh"]["breaches"]] == ["never_synced"]
    assert [b["check"] for b in views["late"]["breaches"]] == ["offline_stale", "never_synced"]
    assert views["archive"]["breaches"] == [] and views["archive"]["online_newest_event"] is None

    # Offline figures straight from the Delta log: newest event, version, the dbt run that wrote it.
    assert views["fresh"]["offline_newest_event"] == FRESH_NEWEST.isoformat()
    assert views["late"]["offline_newest_event"] == LATE_NEWEST.isoformat()
    assert views["fresh"]["delta_version"] == 0
    assert views["fresh"]["last_materialization_invocation"] == INVOCATION
    assert views["fresh"]["last_materialization_mode"] == "full_refresh"
    assert views["late"]["expected_freshness_seconds"] == 172800

    sync(registry, online_config, progress=False)
    after = _status(registry_file, env, "--json")
    assert after.exit_code == 3  # `late` is still 5 days old
    views = _views(after)
    assert views["fresh"]["breaches"] == []
    assert [b["check"] for b in views["late"]["breaches"]] == ["offline_stale"]
    fresh = views["fresh"]
    assert fresh["online_newest_event"] == FRESH_NEWEST.isoformat()
    assert (fresh["synced_version"], fresh["versions_behind"], fresh["sync_lag_seconds"]) == (0, 0, 0.0)
    assert (fresh["syncs"], fresh["sync_rows_written"], fresh["sync_errors"]) == (1, 4, 0)
    assert 3600 <= fresh["online_age_seconds"] <= 3600 + since_now()

    # The people's form: the breach names the view, the figure and the fix.
    text = _status(registry_file, env)
    assert text.exit_code == 3
    assert re.search(r"late \[offline_stale\]: newest offline event \S+ \S+ is 5d old; expected within 2d", text.output)
    # dbt wrote the table seconds ago, yet its newest event is 5 days old: the sources are late.
    assert re.search(r"fix: dbt last wrote it \d+s ago \(version 0\) without newer events, so its sources are late: "
                     r"check `dbt source freshness`, then `dbt build --select late` once they have new rows", text.output)
    assert "BREACHED: 1 expectation(s) on 1 feature view(s) (exit 3)" in text.output

    fine = _status(registry_file, env, "--select", "fresh", "--select", "archive")
    assert fine.exit_code == 0, fine.output
    assert "OK: 2 feature view(s), 1 with a freshness expectation, all met" in fine.output


def test_sync_lag_and_a_failing_sync(pipeline, online_config):
    registry, registry_file, env = pipeline
    sync(registry, online_config, progress=False)
    fresh = registry.feature_views[1]
    # Version 1, not synced yet; its events are a day ahead so that, a day later, only the sync is late.
    write_rows(fresh, _rows(NOW + dt.timedelta(days=1), 2))
    committed = dt.datetime.fromtimestamp(DeltaTable(fresh.delta_uri).history(1)[0]["timestamp"] / 1000, UTC)

    later = committed + dt.timedelta(days=1, hours=2)
    report = collect_status(registry, online_config, OnlineStore(registry, online_config).client, select=["fresh"], now=later)
    (view,) = report.views
    assert (view.delta_version, view.synced_version, view.versions_behind) == (1, 0, 1)
    assert view.sync_lag_seconds == pytest.approx((later - committed).total_seconds())
    assert [b.check for b in view.breaches] == ["sync_lag"]
    assert "Delta version 1 has waited 1d02h for sync (1 versions behind); expected within 1d" in view.breaches[0].message

    # A sync that fails is counted and named, and status reports it until a sync succeeds.
    broken = dataclasses.replace(registry, feature_views=(dataclasses.replace(fresh, features=(*fresh.features, dataclasses.replace(fresh.features[0], name="gone"))),))
    with pytest.raises(ValueError, match="lacks columns"):
        sync(broken, online_config, progress=False)
    failing = _views(_status(registry_file, env, "--json", "--select", "fresh"))["fresh"]
    assert failing["sync_errors"] == 1 and "lacks columns ['gone']" in failing["last_sync_error"]
    assert [b["check"] for b in failing["breaches"]] == ["sync_failing"]
    sync(registry, online_config, select=["fresh"], progress=False)
    healed = _views(_status(registry_file, env, "--json", "--select", "fresh"))["fresh"]
    assert healed["breaches"] == [] and healed["versions_behind"] == 0 and healed["syncs"] == 2
    assert healed["online_newest_event"] == (NOW + dt.timedelta(days=1)).isoformat()


def test_unreachable_online_store_exits_1_with_offline_figures(pipeline):
    _, registry_file, env = pipeline
    down = {**env, "HINDSIGHT_DYNAMODB_ENDPOINT": "http://127.0.0.1:9"}
    result = _status(registry_file, down, "--select", "fresh")
    assert result.exit_code == 1
    assert "UNKNOWN: the online store at http://127.0.0.1:9 could not be read" in result.output
    assert FRESH_NEWEST.strftime("%Y-%m-%d %H:%M") in result.output


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name and dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")) == labels:
            return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels}")


def test_metrics_export_the_pipeline_figures(pipeline, online_config):
    registry, _, _ = pipeline
    # Synced with a 10-day ttl, so DynamoDB Local's TTL sweeper leaves `late`'s items alone; served
    # with the registry's 2-day ttl, so reading them answers EXPIRED.
    archive, fresh, late = registry.feature_views
    synced = dataclasses.replace(registry, feature_views=(archive, fresh, dataclasses.replace(late, ttl_seconds=10 * 86400)))
    sync(synced, online_config, progress=False)
    app = create_app({"TESTING": True, "REGISTRY": registry, "ONLINE_STORE": OnlineStore(registry, online_config),
                      "ON_DEMAND_VIEWS": {}, "AUTH": "none",
                      # A cold client on a busy test machine: the 500 ms default would make this a 503.
                      "STORE_DEADLINE_MS": 10_000})
    client = app.test_client()
    answered = client.post("/v1/features", json={"features": ["fresh:x", "late:x"], "entities": [{"user_id": 1}, {"user_id": 99}]})
    assert answered.status_code == 200
    text = client.get("/metrics").get_data(as_text=True)

    assert _sample(text, "hindsight_feature_view_newest_event_timestamp_seconds", view="fresh", store="offline") == FRESH_NEWEST.timestamp()
    assert _sample(text, "hindsight_feature_view_newest_event_timestamp_seconds", view="late", store="online") == LATE_NEWEST.timestamp()
    age = _sample(text, "hindsight_feature_view_age_seconds", view="late", store="offline")
    assert 5 * 86400 <= age <= 5 * 86400 + since_now()
    assert _sample(text, "hindsight_feature_view_expected_freshness_seconds", view="fresh") == 86400
    assert _sample(text, "hindsight_feature_view_breaches", view="late") == 1
    assert _sample(text, "hindsight_feature_view_breaches", view="fresh") == 0
    assert _sample(text, "hindsight_feature_view_synced_delta_version", view="fresh") == 0
    assert _sample(text, "hindsight_feature_view_sync_lag_seconds", view="fresh") == 0
    assert _sample(text, "hindsight_sync_rows_written_total", view="fresh") == 4
    assert _sample(text, "hindsight_sync_runs_total", view="late") == 1
    assert _sample(text, "hindsight_sync_errors_total", view="late") == 0
    # The request's reads by status: user 1 is in both views; 99 in neither; `late` is past its ttl.
    assert _sample(text, "hindsight_serving_view_reads_total", view="fresh", status="PRESENT") >= 1
    assert _sample(text, "hindsight_serving_view_reads_total", view="fresh", status="NOT_FOUND") >= 1
    assert _sample(text, "hindsight_serving_view_reads_total", view="late", status="EXPIRED") >= 1
    # Not the old per-request gauge, whose age depended on which entities were asked for.
    assert "hindsight_serving_feature_freshness_seconds" not in text
