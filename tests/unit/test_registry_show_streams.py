"""`hindsight registry list|show` of stream sources and the views they feed (text and --json)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.registry_sync.store import RegistryStore
from tests.unit.test_registry_streams import build, manifest, stream_node


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\n")
    (root / "hindsight.yml").write_text("registry: reg\n")
    registry = build(manifest(stream=stream_node(kinesis_stream="shop-transactions")), project_dir=root)
    RegistryStore(root / "reg").write(registry)
    monkeypatch.chdir(tmp_path)
    return root


def run(project_dir, *args):
    result = CliRunner().invoke(main, ["registry", *args, "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_list_names_each_stream_source_and_what_it_feeds(project_dir):
    lines = run(project_dir, "list").splitlines()
    assert "  stream source streams.transactions           5 columns, feeds user_stream" in lines
    listing = json.loads(run(project_dir, "list", "--json"))
    assert [s["name"] for s in listing["stream_sources"]] == ["streams.transactions"]
    assert listing["stream_sources"][0]["feeds"] == ["user_stream"]


@pytest.mark.parametrize("name", ["streams.transactions", "transactions"])
def test_show_a_stream_source_by_full_or_table_name(project_dir, name):
    lines = run(project_dir, "show", name).splitlines()
    log = str(project_dir / "data/offline_store/_streams/streams/transactions")
    assert lines[:10] == [
        "name:            streams.transactions",
        "kind:            stream_source",
        "event_id:        transaction_id",
        "timestamp_field: ts",
        "entities:        user_id, merchant_id",
        "entity_names:    user, merchant",
        f"event_log:       {log}",
        "kinesis_stream:  shop-transactions",
        "feeds:           user_stream",
        "description:     Card transactions as they happen.",
    ]
    assert "columns (5):" in lines
    assert "  transaction_id  string    Unique id." in lines
    assert "  ts              timestamp Event time." in lines


def test_show_json_of_a_stream_source_and_of_the_view_it_feeds(project_dir):
    document = json.loads(run(project_dir, "show", "transactions", "--json"))
    assert document["kind"] == "stream_source" and document["event_id"] == "transaction_id"
    assert document["columns"][1] == {"name": "user_id", "type": "int64", "description": "The card holder."}
    view = json.loads(run(project_dir, "show", "user_stream", "--json"))
    assert view["stream_source"] == "streams.transactions"
    assert "push" not in view  # only where set: other views keep their shape
