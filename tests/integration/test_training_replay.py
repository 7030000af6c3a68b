"""A training set replays exactly after the registry and the Delta tables moved on, through the CLI.

Apply registry version 1, build a training set for fraud_detection, then change the service,
apply version 2 and append new rows to the feature views (new Delta versions): `--replay` (the
file's recorded registry and Delta versions) and `--registry-version 1 --versions ...` give the
same rows and columns as the first set, while the latest registry gives the new service's columns.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from hindsight.training_sets import read_registry_version, read_versions
from tests.fixtures.dbt_project import DEMO_CUTOFF


def assert_same_values(again: pa.Table, first: pa.Table, name: str) -> None:
    """Equal, floats within 1e-12 relative: DuckDB sums an aggregation view's tiles in parallel, so
    the order of additions, and with it the last bits of a float sum, may differ from run to run."""
    assert again.schema == first.schema, name
    for column in first.column_names:
        if pa.types.is_floating(first.schema.field(column).type):
            np.testing.assert_allclose(again.column(column).to_numpy(zero_copy_only=False),
                                       first.column(column).to_numpy(zero_copy_only=False),
                                       rtol=1e-12, equal_nan=True, err_msg=f"{name}: {column}")
        else:
            assert again.column(column).equals(first.column(column)), f"{name}: {column}"

pytestmark = pytest.mark.integration


def hindsight(project, *args):
    return project.run("hindsight", *args)


def test_replay_with_the_recorded_registry_and_delta_versions(project_copy):
    project = project_copy
    transactions = ds.dataset(project.settings.raw_data_dir / "transactions", format="parquet").to_table(
        columns=["user_id", "merchant_id", "ts", "amount", "country", "is_fraud"]
    )
    spine = transactions.slice(1000, 400).rename_columns(
        ["user_id", "merchant_id", "event_timestamp", "amount", "country", "is_fraud"])
    spine_path = project.root / "spine.parquet"
    pq.write_table(spine, spine_path)
    hindsight(project, "apply", "--no-online")
    first_path = project.root / "first.parquet"
    made = hindsight(project, "training-set", "--service", "fraud_detection", "--spine", str(spine_path),
                     "--out", str(first_path))
    first = pq.read_table(first_path)
    assert read_registry_version(first) == 1
    assert f"registry version 1, Delta versions {json.dumps(read_versions(first), sort_keys=True)}" in made.stderr

    # The service changes (one feature dropped, one added) and is applied as version 2 ...
    services = project.root / "models" / "features" / "feature_services.yml"
    services.write_text(services.read_text().replace(
        "          - user_transaction_aggregates:txn_count_1h\n", "          - user_profile:home_country\n", 1))
    assert "Applied registry version 2" in hindsight(project, "apply", "--no-online").stdout
    # ... and the feature views get rows loaded after the first build (new Delta commits).
    project.generate(loaded_from=DEMO_CUTOFF)
    project.dbt("run")
    moved = {view: project.version(view) for view in read_versions(first)}
    recorded = read_versions(first)
    assert all(moved[view] > recorded[view] for view in ("user_transaction_aggregates", "merchant_risk")), moved

    latest_path = project.root / "latest.parquet"
    hindsight(project, "training-set", "--service", "fraud_detection", "--spine", str(spine_path), "--out", str(latest_path))
    latest = pq.read_table(latest_path)
    assert read_registry_version(latest) == 2
    assert "home_country" in latest.column_names and "txn_count_1h" not in latest.column_names

    replays = {
        "replay": ["--replay", str(first_path)],
        "explicit": ["--registry-version", "1", "--versions", json.dumps(read_versions(first))],
    }
    for name, options in replays.items():
        out = project.root / f"{name}.parquet"
        hindsight(project, "training-set", "--service", "fraud_detection", "--spine", str(spine_path),
                  "--out", str(out), *options)
        again = pq.read_table(out)
        assert again.column_names == first.column_names, name
        assert_same_values(again, first, name)
        assert again.schema.metadata == first.schema.metadata, name

    unknown = project.run("hindsight", "training-set", "--service", "fraud_detection", "--spine", str(spine_path),
                          "--out", str(project.root / "x.parquet"), "--registry-version", "7", check=False)
    assert unknown.returncode == 1
    assert "registry version 7 does not exist" in unknown.stderr and "(versions: 1, 2)" in unknown.stderr
