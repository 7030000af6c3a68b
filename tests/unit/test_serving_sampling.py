"""The served-features log: sampling, the bounded queue that never blocks a request, the Delta writes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from deltalake import DeltaTable

from hindsight.serving import metrics, sampling
from hindsight.serving.sampling import Sampler

FRAUD = {"feature_service": "fraud_detection", "entities": {"user_id": 12, "merchant_id": 7},
         "request_context": {"amount": 100.0, "country": "US"}}


def dropped(reason: str) -> float:
    return metrics.SAMPLES_DROPPED.labels(reason)._value.get()


def written() -> float:
    return metrics.SAMPLES_WRITTEN._value.get()


class StalledWriter:
    """A writer that hangs (a sick disk, S3 down) until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.rows: list = []

    def __call__(self, uri, rows) -> None:
        self.entered.set()
        self.release.wait(30)
        self.rows.extend(rows)


def read_log(uri: str) -> list[dict]:
    rows = DeltaTable(uri).to_pyarrow_table().sort_by("request_time").to_pylist()
    for row in rows:
        row["entities"], row["features"] = json.loads(row["entities"]), json.loads(row["features"])
    return rows


def test_rows_are_sampled_by_the_draw():
    draws = iter([0.05, 0.5, 0.29, 0.3, 0.99])
    sampler = Sampler("/unused", 0.3, writer=lambda uri, rows: None, draw=lambda: next(draws))
    rows = [{"user_id": i} for i in range(5)]
    results = [{"features": {"x": i}} for i in range(5)]
    assert sampler.offer("s", 1, rows, results) == 2  # draws 0.05 and 0.29 are below 0.3
    assert [item[3] for item in list(sampler._queue.queue)] == [{"user_id": 0}, {"user_id": 2}]
    sampler.close()


def test_the_rate_holds_over_many_rows():
    import random

    rng = random.Random(3)
    sampler = Sampler("/unused", 0.01, queue_rows=100_000, writer=lambda uri, rows: None, draw=rng.random)
    rows = [{"user_id": 1}] * 100
    queued = sum(sampler.offer("s", 1, rows, [{"features": {}}] * 100) for _ in range(1000))
    # 100,000 rows at 1%: 1,000 expected, sd ~31.
    assert 880 <= queued <= 1120
    sampler.close()


def test_a_rate_out_of_range_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1, got 1.5"):
        Sampler("/unused", 1.5)


def test_a_stalled_writer_never_blocks_and_drops_are_counted():
    writer = StalledWriter()
    sampler = Sampler("/unused", 1.0, queue_rows=5, batch_rows=1, flush_s=60, writer=writer)
    before = dropped("queue_full")
    assert sampler.offer("s", 1, [{"k": 0}], [{"features": {"x": 0}}]) == 1
    assert writer.entered.wait(5)  # the writer took that row and hangs
    took = []
    queued = 0
    for i in range(1, 21):
        began = time.perf_counter()
        queued += sampler.offer("s", 1, [{"k": i}], [{"features": {"x": i}}])
        took.append(time.perf_counter() - began)
    assert queued == 5  # the queue's bound
    assert dropped("queue_full") - before == 15
    # Never waited for the writer, which hangs for 30 s (microseconds each; the bound allows a busy machine).
    assert max(took) < 1.0
    writer.release.set()
    sampler.close(timeout_s=10)
    assert [row[3]["k"] for row in writer.rows] == [0, 1, 2, 3, 4, 5]


def test_a_stalled_writer_does_not_slow_requests(make_serving_app, tmp_path):
    app = make_serving_app(SAMPLE_RATE=1.0, SAMPLE_LOG=str(tmp_path / "log"), SAMPLE_QUEUE_ROWS=3,
                           SAMPLE_BATCH_ROWS=1, SAMPLE_FLUSH_MS=60_000)
    writer = StalledWriter()
    sampling.get_sampler(app).writer = writer
    client = app.test_client()
    before = dropped("queue_full")
    assert client.post("/v1/features", json=FRAUD).status_code == 200
    assert writer.entered.wait(5)
    took = []
    for _ in range(30):
        began = time.perf_counter()
        response = client.post("/v1/features", json=FRAUD)
        took.append(time.perf_counter() - began)
        assert response.status_code == 200
    assert dropped("queue_full") - before == 27  # 3 queued behind the stalled write
    assert max(took) < 2.0, took  # the writer hangs for 30 s: a request that waited for it would show it
    text = client.get("/metrics").get_data(as_text=True)
    assert 'hindsight_serving_samples_dropped_total{reason="queue_full"}' in text
    writer.release.set()
    sampling.get_sampler(app).close()


def test_sampled_rows_land_in_delta_in_batches(make_serving_app, tmp_path):
    uri = str(tmp_path / "served")
    app = make_serving_app(SAMPLE_RATE=1.0, SAMPLE_LOG=uri, SAMPLE_FLUSH_MS=50)
    client = app.test_client()
    before = written()
    assert client.post("/v1/features", json=FRAUD).status_code == 200
    batch = {"features": ["user_profile:home_country", "user_profile:credit_limit"],
             "entities": [{"user_id": 12}, {"user_id": 13}, {"user_id": 99}]}
    assert client.post("/v1/features", json=batch).status_code == 200
    sampling.get_sampler(app).close()
    assert written() - before == 4
    rows = read_log(uri)
    assert [(r["service"], r["registry_version"], r["entities"]) for r in rows] == [
        ("fraud_detection", 3, {"user_id": 12, "merchant_id": 7}),
        ("_features", 3, {"user_id": 12}),
        ("_features", 3, {"user_id": 13}),
        ("_features", 3, {"user_id": 99}),
    ]
    assert rows[0]["features"] == {"amount_mean_30d": 50.0, "user_transaction_aggregates__txn_count_7d": 4,
                                   "merchant_risk__txn_count_7d": 120, "merchant_fraud_rate": 0.015, "home": "FR",
                                   "amount_vs_user_mean_30d": 2.0, "is_foreign_country": True}
    assert [r["features"] for r in rows[1:]] == [
        {"home_country": "FR", "credit_limit": 2500.0}, {"home_country": "DE", "credit_limit": 900.0},
        {"home_country": None, "credit_limit": None},
    ]
    assert rows[0]["request_date"] == rows[0]["request_time"].date()
    assert DeltaTable(uri).metadata().partition_columns == ["service", "request_date"]


def test_failed_writes_are_counted_and_the_writer_goes_on(tmp_path):
    calls = []

    def flaky(uri, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise OSError("disk full")

    sampler = Sampler("/unused", 1.0, batch_rows=2, flush_s=0.01, writer=flaky)
    before = dropped("write_failed")
    sampler.offer("s", 1, [{"k": 1}, {"k": 2}], [{"features": {}}] * 2)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.offer("s", 1, [{"k": 3}], [{"features": {}}])
    sampler.close()
    assert calls == [2, 1]
    assert dropped("write_failed") - before == 2


def test_sampling_off_without_a_log_or_rate(make_serving_app, tmp_path):
    assert sampling.get_sampler(make_serving_app()) is None
    assert sampling.get_sampler(make_serving_app(SAMPLE_RATE=0.0, SAMPLE_LOG=str(tmp_path))) is None


def test_an_unwritable_log_folder_stops_the_start(make_serving_app, tmp_path):
    from hindsight.serving.state import ServingSetupError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ServingSetupError, match=r"served-features log folder .*file/log \(serving.sample_log\)"):
        make_serving_app(SAMPLE_RATE=0.5, SAMPLE_LOG=str(blocker / "log"))


def test_the_rate_and_log_come_from_hindsight_yml_and_the_environment(tmp_path):
    from hindsight.core.config import ConfigError
    from hindsight.core.settings import Settings

    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    settings = Settings.load(tmp_path, environ={})
    assert (settings.serving.sample_rate, settings.sample_log) == (0.01, str(tmp_path / "data" / "served_features"))
    (tmp_path / "hindsight.yml").write_text("serving:\n  sample_rate: 0\n  sample_log: s3://bucket/served\n")
    settings = Settings.load(tmp_path, environ={})
    assert (settings.serving.sample_rate, settings.sample_log) == (0.0, "s3://bucket/served")
    env = {"HINDSIGHT_SERVING_SAMPLE_RATE": "0.25", "HINDSIGHT_SERVING_SAMPLE_LOG": "logs/served"}
    settings = Settings.load(tmp_path, environ=env)
    assert (settings.serving.sample_rate, settings.sample_log) == (0.25, str(tmp_path / "logs" / "served"))
    with pytest.raises(ConfigError, match=r"HINDSIGHT_SERVING_SAMPLE_RATE='2' \('serving.sample_rate'\) should be less than or equal to 1"):
        Settings.load(tmp_path, environ={"HINDSIGHT_SERVING_SAMPLE_RATE": "2"})
    (tmp_path / "hindsight.yml").write_text("serving:\n  sample_rate: -0.1\n")
    with pytest.raises(ConfigError, match=r"'serving.sample_rate' in .* should be greater than or equal to 0, got -0.1"):
        Settings.load(tmp_path, environ={})
