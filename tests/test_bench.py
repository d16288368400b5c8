"""Functional tests of the perf tools (logbroker/tools/bench.py and `logbroker bench`): output shapes only.

Tiny sizes, no timing assertions: the machine running the suite is shared and its speed says
nothing about correctness.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from logbroker import cli
from logbroker.tools import bench
from logbroker.clients.producer import Producer

NUM = r"\d+(?:\.\d+)?"
KAFKA_SUMMARY = re.compile(
    rf"^(\d+) records sent, {NUM} records/sec \({NUM} MB/sec\), {NUM} ms avg latency, {NUM} ms max latency, "
    rf"{NUM} ms 50th, {NUM} ms 95th, {NUM} ms 99th, {NUM} ms 99\.9th\.$")

runner = CliRunner()


def invoke(data_dir, *args):
    result = runner.invoke(cli.app, ["--data-dir", data_dir, "bench", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def fill(data_dir, topic, n, partitions=1):
    with Producer(data_dir, fsync="never", num_partitions=partitions) as p:
        for v in bench.make_values(n, 120):
            p.send(topic, v)


def test_produce_summary_line_matches_kafkas_format(data_dir):
    out = invoke(data_dir, "produce", "--topic", "t", "--num-records", "30", "--record-size", "100",
                 "--batch-size", "7", "--fsync", "never").splitlines()
    assert out[0].startswith("# Python ") and "orjson" in out[0] and "segment.bytes=" in out[0]
    match = KAFKA_SUMMARY.match(out[-1])
    assert match, out[-1]
    assert match.group(1) == "30"


def test_produce_json_has_the_fields_and_environment(data_dir):
    doc = json.loads(invoke(data_dir, "produce", "--topic", "t", "--num-records", "20", "--record-size", "80",
                            "--fsync", "always", "--partitions", "2", "--json"))
    for key in ("records", "records_per_sec", "mb_per_sec", "avg_latency_ms", "max_latency_ms", "p50_ms",
                "p95_ms", "p99_ms", "p999_ms", "batch_size", "fsync", "partitions"):
        assert key in doc, key
    assert doc["records"] == 20 and doc["partitions"] == 2 and doc["fsync"] == "always"
    env = doc["environment"]
    for key in ("python", "orjson", "fsync", "record_size", "segment.bytes", "cpus", "filesystem"):
        assert key in env, key


def test_produce_writes_the_records_it_reports(data_dir):
    bench.produce_perf(data_dir, "t", 25, record_size=60, batch_size=4, fsync="never")
    from logbroker.storage.topic import Topic
    reader = Topic(data_dir, "t").reader(0)
    assert reader.high_watermark() == 25
    assert len(reader.read(0, 100)) == 25
    reader.close()


def test_produce_from_a_payload_file(data_dir, tmp_path):
    payloads = tmp_path / "payloads.txt"
    payloads.write_text('{"a": 1}\nplain text\n\n[1, 2]\n')
    out = invoke(data_dir, "produce", "--topic", "t", "--num-records", "9", "--payload-file", str(payloads),
                 "--fsync", "never")
    assert KAFKA_SUMMARY.match(out.splitlines()[-1])


def test_produce_with_two_spawned_producer_processes(data_dir):
    result = bench.produce_perf(data_dir, "t", 40, record_size=80, batch_size=5, fsync="never",
                                producers=2, partitions=2)
    assert result.records == 40 and result.producers == 2
    assert KAFKA_SUMMARY.match(result.summary_line())


def test_produce_needs_exactly_one_payload_source(data_dir):
    result = runner.invoke(cli.app, ["--data-dir", data_dir, "bench", "produce", "--topic", "t",
                                     "--num-records", "5"])
    assert result.exit_code != 0


def test_consume_prints_kafkas_columns(data_dir):
    fill(data_dir, "t", 30, partitions=2)
    lines = invoke(data_dir, "consume", "--topic", "t").splitlines()
    assert lines[0].startswith("# Python ")
    assert lines[1].split(", ") == list(bench.CONSUME_COLUMNS)
    row = lines[2].split(", ")
    assert len(row) == len(bench.CONSUME_COLUMNS)
    assert row[4] == "30"
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}$", row[0])


def test_consume_json_and_partial_read(data_dir):
    fill(data_dir, "t", 30)
    doc = json.loads(invoke(data_dir, "consume", "--topic", "t", "--num-records", "12", "--json"))
    assert set(bench.CONSUME_COLUMNS) <= set(doc)
    assert doc["data.consumed.in.nMsg"] == 12
    assert "environment" in doc


def test_consume_with_a_group(data_dir):
    fill(data_dir, "t", 20)
    doc = json.loads(invoke(data_dir, "consume", "--topic", "t", "--group", "perf", "--json"))
    assert doc["data.consumed.in.nMsg"] == 20
    assert doc["group"] == "perf"


def test_consume_with_two_processes(data_dir):
    fill(data_dir, "t", 24, partitions=2)
    result = bench.consume_perf(data_dir, "t", consumers=2)
    assert result.records == 24


def test_consume_warns_when_the_topic_holds_fewer_records(data_dir):
    fill(data_dir, "t", 5)
    result = bench.consume_perf(data_dir, "t", 50)
    assert result.records == 5
    assert result.warning().startswith("WARNING: Exiting before consuming the expected number of messages")


def test_e2e_reports_percentiles_and_removes_its_topic(data_dir):
    doc = json.loads(invoke(data_dir, "e2e", "--rate", "2000", "--num-records", "20", "--fsync", "never", "--json"))
    for key in ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "avg_latency_ms", "environment"):
        assert key in doc, key
    assert doc["records"] == 20
    from logbroker.broker import Broker
    assert Broker(data_dir).list_topics() == []


def test_percentiles_follow_kafkas_index_rule():
    lat = [i * 1_000_000 for i in range(1, 1001)]  # 1..1000 ms
    assert bench.percentiles(lat) == [501.0, 951.0, 991.0, 1000.0]
    assert bench.percentiles([]) == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("size", [2, 50, 250, 600])
def test_make_values_have_the_exact_record_size(size):
    import orjson
    assert {len(orjson.dumps(v)) for v in bench.make_values(20, size)} == {size}


def test_filesystem_type_of_root_is_known():
    assert bench.filesystem_type("/") != "?"
