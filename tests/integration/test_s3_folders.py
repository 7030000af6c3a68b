"""The registry folder on S3 (moto's server): exclusive creates, contracts, the validation log, hot reload."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from hindsight.core.folders import S3Folder, open_folder
from hindsight.core.object_store import ObjectStoreError
from hindsight.offline_store.contracts import UsedFeature, ViewContract, contracts_path, read_contract, write_contracts
from hindsight.quality.records import ValidationLog, ValidationRecord
from hindsight.registry_sync.model import Registry
from hindsight.registry_sync.store import RegistryStore
from hindsight.serving.reload import RegistryFollower

pytestmark = pytest.mark.integration


def test_create_is_exclusive_and_replace_is_whole(s3_bucket):
    folder = open_folder(f"{s3_bucket}/registry/")
    assert isinstance(folder, S3Folder) and folder.names() == [] and folder.read("a.json") is None
    assert folder.create("a.json", b"first")
    assert not folder.create("a.json", b"second")  # If-None-Match: * refused it
    assert folder.read("a.json") == b"first"
    folder.replace("a.json", b"third")
    open_folder(f"{s3_bucket}/registry/sub").create("b.json", b"x")  # a sub-folder's file is not listed
    assert folder.names() == ["a.json"] and folder.read("a.json") == b"third"


def test_registry_versions_and_contracts_on_s3(s3_bucket):
    store = RegistryStore(f"{s3_bucket}/registry")
    assert store.versions() == [] and store.latest() is None
    first = store.write(Registry(project="p"))
    second = store.write(Registry(project="q"))
    assert (first.version, second.version, store.versions()) == (1, 2, [1, 2])
    assert store.latest().project == "q" and store.read(1).project == "p"
    with pytest.raises(Exception, match=r"registry version 7 does not exist in s3://hs-\w+/registry \(versions: 1, 2\)"):
        store.read(7)

    contract = ViewContract(join_keys={"user_id": "long"}, features={"amount": UsedFeature("double", ("feature service fraud",))})
    path = write_contracts(f"{s3_bucket}/registry", {"user_stats": contract}, registry_version=2)
    assert path == f"{s3_bucket}/registry/contracts.jsonl" == contracts_path(f"{s3_bucket}/registry")
    assert read_contract(path, "user_stats") == contract
    assert read_contract(path, "other") is None
    assert read_contract(f"{s3_bucket}/elsewhere/contracts.jsonl", "user_stats") is None


def test_validation_log_on_s3_keeps_every_record_in_order(s3_bucket):
    log = ValidationLog.in_registry(f"{s3_bucket}/registry")
    record = ValidationRecord("user_stats", 3, "table-1", "all_rows", None, 10, True, "fp", (), "2026-11-30T00:00:00")
    log.append(record)
    log.append(dataclasses.replace(record, delta_version=4, passed=False))
    log.append(dataclasses.replace(record, view="other_view"))
    assert [(r.view, r.delta_version, r.passed) for r in log.records()] == [
        ("user_stats", 3, True), ("user_stats", 4, False), ("other_view", 3, True)]
    assert [r.delta_version for r in log.records("user_stats")] == [3, 4]
    assert all(name.endswith(".json") for name in open_folder(f"{s3_bucket}/registry/validations").names())


def test_a_follower_swaps_in_a_version_applied_on_s3(s3_bucket):
    store = RegistryStore(f"{s3_bucket}/registry")
    store.write(Registry(project="p"))
    served: list[int | None] = []
    follower = RegistryFollower(store, served_version=1, swap=lambda r: served.append(r.version), interval_s=1)
    assert not follower.check()
    store.write(Registry(project="p"))
    assert follower.check() and served == [2] and follower.served_version == 2
    assert not follower.check()


def test_a_missing_bucket_is_one_clear_line(s3_env, tmp_path):
    from click.testing import CliRunner

    from hindsight.cli import main

    with pytest.raises(ObjectStoreError, match=r"cannot list s3://no-such-bucket/registry: bucket no-such-bucket does not exist: "
                                               r"create it, or change the location in hindsight.yml"):
        RegistryStore("s3://no-such-bucket/registry").versions()
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    result = CliRunner().invoke(main, ["registry", "list", "--project-dir", str(tmp_path)],
                                env={"HINDSIGHT_REGISTRY": "s3://no-such-bucket/registry"})
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: cannot list s3://no-such-bucket/registry: bucket no-such-bucket does not exist: "
                                     "create it, or change the location in hindsight.yml")


def test_servers_append_the_served_features_sample_to_one_log_on_s3(s3_bucket):
    from concurrent.futures import ThreadPoolExecutor

    from hindsight.drift.served import read_served
    from hindsight.serving.sampling import write_rows

    log = f"{s3_bucket}/served_features"
    start = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc).timestamp()

    def server(number: int) -> None:  # each a separate writer, as on separate machines
        for batch in range(3):
            write_rows(log, [("fraud", start + number * 10 + batch, 2, {"user_id": number}, {"score": float(number)})])

    write_rows(log, [("fraud", start - 1, 1, {"user_id": 0}, {"score": 0.5})])  # the table exists before they race
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(server, (1, 2)))
    served = read_served(log, "fraud")
    assert served.rows == 7  # no append lost
    assert sorted(served.features["score"]) == [0.5, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert served.registry_versions == (1, 2)
