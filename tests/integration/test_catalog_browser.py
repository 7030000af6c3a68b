"""The feature catalog rendered by a real browser: `hindsight docs generate`, then headless Chromium.

dbt docs is a single-page app that builds each page in JavaScript from manifest.json and
catalog.json, so the checks read the DOM Chromium renders (`--dump-dom` after the page's scripts
ran), not the files: what a person opening the page would see.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hindsight.core.ports import free_port
from tests.fixtures.dbt_project import BIN, DbtProject

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def catalog_site(demo_project: DbtProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo's catalog site generated in a copy of the demo project, served on loopback."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: `make tools` installs Debian's chromium package")
    project = demo_project.copy(tmp_path_factory.mktemp("catalog") / "project")
    generated = project.run("hindsight", "docs", "generate")
    assert "Wrote the feature catalog to" in generated.stdout
    assert (project.root / "target" / "catalog" / "index.html").exists()
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "hindsight"), "docs", "serve", "--port", str(port)],
        cwd=project.root, env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/manifest.json", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"the catalog site at {url} did not come up")


def rendered_text(url: str, page: str, tmp_path: Path) -> str:
    """The visible text of one dbt docs page after Chromium ran its scripts."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}",
         "--virtual-time-budget=20000", "--dump-dom", f"{url}/#!/{page}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", result.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def test_an_aggregation_views_page_shows_its_interval_windows_and_aggregations(catalog_site: str, tmp_path: Path) -> None:
    text = rendered_text(catalog_site, "model/model.hindsight.user_transaction_aggregates", tmp_path)
    assert "Kind aggregation feature view" in text
    assert "Aggregation interval 5m" in text
    assert "txn_count_1h count every event 1h" in text
    assert "amount_stddev_30d stddev amount 30d" in text
    assert "Internal: a tile part that aggregation features are computed from; not a feature." in text


def test_a_feature_views_page_shows_its_configuration(catalog_site: str, tmp_path: Path) -> None:
    text = rendered_text(catalog_site, "model/model.hindsight.user_profile", tmp_path)
    assert "Entities user ( user_id )" in text
    assert "Timestamp field event_timestamp" in text
    assert "Created field created_timestamp" in text
    assert "Online yes (synced to DynamoDB)" in text
    assert "Owner risk-ml@example.com" in text
    assert re.search(r"Delta location \S+/data/offline_store/user_profile", text)
    assert "Feature services fraud_detection , user_spend_profile" in text
    assert "Type feature view (delta)" in text  # the relation type (dbt docs lowercases it), not "view"
    # user_profile has a few rows a day: its full build chose monthly partitions (feature-views.md, "Partitions").
    assert "_partition_month" in text and "Internal: the Delta table's partition column; not a feature." in text


def test_a_feature_services_page_lists_its_features_readably(catalog_site: str, tmp_path: Path) -> None:
    text = rendered_text(catalog_site, "exposure/exposure.hindsight.fraud_detection", tmp_path)
    assert "Features (14):" in text
    assert "user_profile:account_tier (string): Account tier (standard, gold, platinum)." in text
    assert "merchant_risk:txn_count_30d as merchant_txn_count_30d" in text
    assert "merchant_risk:fraud_mean_7d as merchant_fraud_rate_7d (float64): Fraud rate" in text
    assert '"features"' not in text and "{'features'" not in text  # no raw meta JSON


def test_an_on_demand_view_is_in_the_catalog_and_its_lineage(catalog_site: str, tmp_path: Path) -> None:
    text = rendered_text(catalog_site, "model/model.hindsight.transaction_context", tmp_path)
    assert "on-demand feature view" in text
    assert "Reads user_transaction_aggregates:amount_mean_30d , user_profile:home_country" in text
    assert "Request fields amount (float64), country (string)" in text
    assert "def transaction_context" in text  # its code
    assert re.search(r"Referenced By Exposures fraud_detection", text)
    assert re.search(r"Depends On Models user_profile user_transaction_aggregates", text)


def test_the_overview_page_is_the_feature_catalog(catalog_site: str, tmp_path: Path) -> None:
    text = rendered_text(catalog_site, "overview", tmp_path)
    assert "Feature catalog: hindsight" in text
    assert "Feature services (3)" in text and "Feature views (5)" in text and "On-demand views (1)" in text
    assert "Stream sources (1)" in text
    assert "Welcome!" not in text  # dbt's default welcome text is gone


def test_a_stream_sources_page_shows_its_card_and_the_view_it_feeds(catalog_site: str, tmp_path: Path) -> None:
    text = rendered_text(catalog_site, "source/source.hindsight.streams.transactions", tmp_path)
    assert "Event id transaction_id (a redelivered event is counted once)" in text
    assert "Entities user ( user_id ), merchant ( merchant_id )" in text
    assert re.search(r"Event log \S+/data/offline_store/_streams/streams/transactions \(Delta\)", text)
    assert "Kinesis stream hindsight-transactions" in text
    assert "Feeds user_stream_activity" in text
    view = rendered_text(catalog_site, "model/model.hindsight.user_stream_activity", tmp_path)
    assert "Stream source streams.transactions (online tiles updated as each event is ingested)" in view
