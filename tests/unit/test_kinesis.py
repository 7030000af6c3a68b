"""streams.kinesis without a Kinesis: settings, source selection, rejected records, the producer's pacing."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from hindsight.core.config import ConfigError
from hindsight.core.settings import Settings
from hindsight.registry_sync.model import Feature, Registry, StreamSource
from hindsight.streams.kinesalite import ENDPOINT_RECORD
from hindsight.streams.kinesis import (
    KinesisConfig,
    KinesisUnavailable,
    RejectLog,
    Rejected,
    ingest_valid,
    kinesis_sources,
)
from hindsight.streams.kinesis_producer import put_events
from hindsight.streams.validation import IngestValidationError


def project(tmp_path, text: str = ""):
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    if text:
        (tmp_path / "hindsight.yml").write_text(text)
    return tmp_path


def source(name: str, kinesis: str | None) -> StreamSource:
    return StreamSource(name, "id", "ts", ("user",), ("user_id",), (Feature("id", "int64"),), "/x",
                        kinesis_stream=kinesis, original_file_path="models/streams.yml")


def test_streams_settings_from_the_file_and_the_environment(tmp_path):
    root = project(tmp_path, "streams:\n  kinesis_endpoint: http://127.0.0.1:4600\n  flush_interval: 2\n")
    settings = Settings.load(root, environ={})
    assert (settings.streams.kinesis_endpoint, settings.streams.flush_interval) == ("http://127.0.0.1:4600", 2)
    assert (settings.streams.poll_interval, settings.streams.lease_seconds, settings.streams.region) == (0.2, 20, None)
    env = {"HINDSIGHT_KINESIS_ENDPOINT": "http://127.0.0.1:4700", "HINDSIGHT_STREAM_POLL_INTERVAL": "0.05",
           "HINDSIGHT_KINESIS_REGION": "eu-west-3"}
    settings = Settings.load(root, environ=env)
    assert KinesisConfig.from_settings(settings) == KinesisConfig("http://127.0.0.1:4700", "eu-west-3")
    assert settings.streams.poll_interval == 0.05


@pytest.mark.parametrize(("text", "message"), [
    ("streams:\n  kinesis_endpoint: localhost:4567\n", "'streams.kinesis_endpoint' in {file} should be an http://"),
    ("streams:\n  flush_intervall: 1\n", "unknown key 'streams.flush_intervall' in {file} (did you mean streams.flush_interval"),
    ("streams:\n  flush_interval: 0\n", "'streams.flush_interval' in {file} should be greater than 0"),
])
def test_bad_streams_settings_name_the_key(tmp_path, text, message):
    root = project(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        Settings.load(root, environ={})
    assert message.format(file=root / "hindsight.yml") in str(raised.value)


def test_a_recorded_kinesalite_that_is_gone_is_an_error_not_a_switch_to_aws(tmp_path):
    root = project(tmp_path)
    state = root / "data" / "state"
    state.mkdir(parents=True)
    (state / ENDPOINT_RECORD).write_text("http://127.0.0.1:4599\n")
    with pytest.raises(KinesisUnavailable, match=r"kinesalite recorded in .* \(http://127.0.0.1:4599\) is not running: "
                                                  r"start it again with `hindsight stream up`"):
        KinesisConfig.from_settings(Settings.load(root, environ={}))
    # hindsight.yml's endpoint wins over the record.
    (root / "hindsight.yml").write_text("streams:\n  kinesis_endpoint: http://127.0.0.1:4567\n")
    assert KinesisConfig.from_settings(Settings.load(root, environ={})).endpoint_url == "http://127.0.0.1:4567"


def test_sources_to_consume_are_those_with_a_kinesis_stream():
    registry = Registry(project="p", stream_sources=(source("streams.a", "stream-a"), source("streams.b", None)))
    assert [s.name for s in kinesis_sources(registry)] == ["streams.a"]
    with pytest.raises(ValueError, match=r"stream source streams.b has no Kinesis stream: add "
                                         r"meta.hindsight.stream.kinesis_stream to its table in models/streams.yml"):
        kinesis_sources(registry, ["b"])
    with pytest.raises(ValueError, match=r"no stream source declares a Kinesis stream \(stream sources: streams.b\)"):
        kinesis_sources(Registry(project="p", stream_sources=(source("streams.b", None),)))


def test_rows_refused_by_validation_are_left_out_and_the_rest_ingested():
    calls = []

    def ingest(name, rows):
        calls.append([r["id"] for r in rows])
        for index, row in enumerate(rows):
            if row["id"] < 0:
                raise IngestValidationError(name, "id", index, "range", "negative")
        return SimpleNamespace(accepted=len(rows) - 1, duplicates=1)

    rows = [{"id": 1}, {"id": -2}, {"id": 3}, {"id": -4}]
    accepted, duplicates, rejected = ingest_valid(ingest, "s", rows, ["10", "11", "12", "13"], "shard-0")
    assert calls == [[1, -2, 3, -4], [1, 3, -4], [1, 3]]
    assert (accepted, duplicates) == (1, 1)
    assert [(r.sequence, r.data) for r in rejected] == [("11", b'{"id":-2}'), ("13", b'{"id":-4}')]
    assert "refused by validation: ingest into 's': row 1: field 'id': negative" in rejected[0].reason
    # Every row refused: nothing to ingest, no call with an empty batch.
    calls.clear()
    assert ingest_valid(ingest, "s", [{"id": -1}], ["20"], "shard-0")[:2] == (0, 0)
    assert calls == [[-1]]


def test_rejected_records_are_kept_as_json_lines_binary_data_in_base64(tmp_path):
    log = RejectLog(tmp_path / "rejected", "streams.t")
    log.append([Rejected("shard-1", "5", "not valid JSON: x", b"oops"), Rejected("shard-1", "6", "r", b"\xff\x00")])
    log.append([])
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [(line["sequence_number"], line.get("data"), line.get("data_base64")) for line in lines] == [
        ("5", "oops", None), ("6", None, "/wA=")]
    assert lines[0]["shard_id"] == "shard-1" and lines[0]["reason"] == "not valid JSON: x"


class FakeKinesis:
    """Refuses the first record of the first call (throttled), accepts the rest."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, list[bytes]]] = []

    def put_records(self, StreamName, Records):
        self.calls.append((time.monotonic(), [r["Data"] for r in Records]))
        results = [{"ShardId": f"shard-{int(r['PartitionKey']) % 2}", "SequenceNumber": "1"} for r in Records]
        if len(self.calls) == 1:
            results[0] = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
        return {"Records": results, "FailedRecordCount": int(len(self.calls) == 1)}


def test_put_events_paces_to_the_rate_and_retries_refused_records():
    client = FakeKinesis()
    started = time.monotonic()
    report = put_events(client, "s", ({"n": i} for i in range(40)), lambda e: str(e["n"]), rate=100,
                        on_put=lambda e, now: {**e, "put": True})
    took = time.monotonic() - started
    assert report.records == 40 and report.shards == {"shard-0": 20, "shard-1": 20}
    assert 0.3 <= took < 1.5  # 40 events at 100/s
    sent = [json.loads(d) for _, batch in client.calls for d in batch]
    assert sent[0] == sent[len(client.calls[0][1])] == {"n": 0, "put": True}  # the refused record, sent again
    assert sorted({e["n"] for e in sent}) == list(range(40))
