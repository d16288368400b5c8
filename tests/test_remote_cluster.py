"""``Cluster`` and the remote producer/consumer against ``logbroker serve`` on one data directory:
the same answers as the local library reading the same files."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time

import pytest

from kafka_support import module_server
from logbroker import errors
from logbroker.broker import Broker
from logbroker.groups.admin import describe_group, plan_reset_offsets, replay
from logbroker.remote.clients import RemoteConsumer, RemoteProducer
from logbroker.remote.cluster import Cluster

pytestmark = pytest.mark.slow  # a server process and Kafka clients (confluent-kafka) per test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "cluster")


@pytest.fixture
def cluster(server):
    with Cluster(server.bootstrap) as c:
        yield c


def _cli(server, *args: str, input: str | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, *args],
                          input=input, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _local_records(server, name: str, group: str, consumed: int, retention_cut: int = 0) -> None:
    """``name``: 3 partitions, 30 keyed records, ``group`` committed after ``consumed`` of them, and
    partition 0's log start moved to ``retention_cut``."""
    _cli(server, "topics", "create", name, "--partitions", "3", "--config", "segment.bytes=400")
    lines = "".join(f'{{"n":{i},"k":"key-{i % 7}"}}\n' for i in range(30))
    _cli(server, "publish", name, "--key-field", "k", "--header", "source=test", input=lines)
    _cli(server, "consume", name, "--group", group, "--from-beginning", "--max-messages", str(consumed))
    if retention_cut:
        _cli(server, "delete-records", name, "--partition", "0", "--before-offset", str(retention_cut))


def test_topics_are_listed_and_described_as_the_data_directory_has_them(server, cluster):
    _local_records(server, "described", "g-describe", 4, retention_cut=2)
    local = Broker(server.data_dir, create=False).describe_topic("described")
    remote = cluster.describe_topic("described")
    assert "described" in cluster.list_topics()
    assert remote["config"] == local["config"] and remote["partitions"] == local["partitions"]
    for r, l in zip(remote["partition_details"], local["partition_details"]):
        assert (r["log_start_offset"], r["log_end_offset"], r["records"]) == \
            (l["log_start_offset"], l["log_end_offset"], l["records"])
    assert remote["partition_details"][0]["log_start_offset"] == 2


def test_a_groups_rows_match_the_local_describe_but_for_lag_time(server, cluster):
    _local_records(server, "lagging", "g-lag", 11)
    now = int(time.time() * 1000)
    local = describe_group(server.data_dir, "g-lag", now_ms=now)
    remote = cluster.describe_group("g-lag", now_ms=now)
    assert remote == local  # lag_ms too: the same record's timestamp, the same now
    assert "g-lag" in cluster.list_groups()


def test_a_reset_plan_matches_and_executing_it_moves_offsets_backwards(server, cluster):
    _local_records(server, "rewind", "g-reset", 20, retention_cut=3)
    for spec in ("to-earliest", "to-latest", ("shift-by", -2), ("to-offset", 1), ("by-duration", "PT1H")):
        assert list(cluster.plan_reset_offsets("g-reset", "rewind", None, spec)) == \
            list(plan_reset_offsets(server.data_dir, "g-reset", "rewind", None, spec)), spec
    plan = cluster.plan_reset_offsets("g-reset", "rewind", [0, 1], "to-earliest")
    cluster.execute_reset(plan)
    rows = {r.partition: r.current_offset for r in describe_group(server.data_dir, "g-reset")}
    assert rows[0] == 3 and rows[1] == 0


def test_replay_yields_the_local_records_and_refuses_the_same_ranges(server, cluster):
    _local_records(server, "replayed", "g-replay", 1, retention_cut=2)
    assert list(cluster.replay("replayed", 2, 8)) == list(replay(server.data_dir, "replayed", 2, 8))
    assert list(cluster.replay("replayed", 0, partition=1)) == list(replay(server.data_dir, "replayed", 0,
                                                                             partition=1))
    with pytest.raises(errors.OffsetOutOfRangeError, match="retention removed") as remote:
        cluster.replay("replayed", 0, partition=0)
    with pytest.raises(errors.OffsetOutOfRangeError) as local:
        list(replay(server.data_dir, "replayed", 0, partition=0))
    assert str(remote.value) == str(local.value)


def test_topics_are_created_altered_and_deleted(server, cluster):
    t = cluster.create_topic("made", 2, {"retention.ms": 1000})
    assert (t.name, t.partitions, t.config.to_kafka()["retention.ms"]) == ("made", 2, 1000)
    with pytest.raises(errors.TopicExistsError):
        cluster.create_topic("made", 2)
    t = cluster.alter_topic("made", {"retention.ms": 5000}, 4)
    assert (t.partitions, t.config.to_kafka()) == (4, Broker(server.data_dir, create=False).topic("made")
                                                   .config.to_kafka())
    with pytest.raises(errors.InvalidConfigError, match="can only grow"):
        cluster.alter_topic("made", partitions=1)
    with pytest.raises(errors.InvalidConfigError, match="unknown topic config 'nope'"):
        cluster.alter_topic("made", {"nope": 1})
    cluster.delete_topic("made")
    assert "made" not in Broker(server.data_dir, create=False).list_topics()
    with pytest.raises(errors.UnknownTopicError, match="does not exist"):
        cluster.delete_topic("made")


def test_records_round_trip_with_keys_headers_and_bytes_as_local_reads_show_them(server):
    with RemoteProducer(server.bootstrap) as producer:
        producer.send("trip", {"a": [1, 2.5, None]}, key="k", headers={"h": "v"}, partition=0)
        producer.send("trip", b"\xff\x00not json", key=b"\x80raw", partition=0)
        producer.send_bytes("trip", None, key="tombstone", partition=0)
    consumer = RemoteConsumer(server.bootstrap, auto_offset_reset="earliest")
    consumer.assign([("trip", 0)])
    got, deadline = [], time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        for records in consumer.poll(500).values():
            got += records
    consumer.close()
    assert got == list(replay(server.data_dir, "trip", 0, partition=0))
    assert [r.value for r in got] == [{"a": [1, 2.5, None]}, b"\xff\x00not json", None]
    assert got[1].key == b"\x80raw" and dict(got[0].headers) == {"h": "v"}


def test_a_group_consumer_commits_exactly_what_it_handed_out(server):
    _local_records(server, "handed", "g-unused", 1)
    consumer = RemoteConsumer(server.bootstrap, group_id="g-handed", auto_offset_reset="earliest")
    consumer.subscribe(["handed"])
    taken, deadline = 0, time.monotonic() + 30
    while taken == 0 and time.monotonic() < deadline:
        batch = consumer.poll(500, max_records=1)
        taken += sum(len(r) for r in batch.values())
    consumer.close()
    rows = describe_group(server.data_dir, "g-handed")
    assert taken == 1 and sum(r.current_offset or 0 for r in rows) == 1


def test_an_unreachable_cluster_is_one_error_naming_the_address_and_timeout_and_prints_nothing(capfd):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        started = time.monotonic()
        with pytest.raises(errors.ClusterUnreachableError) as exc:
            Cluster(f"127.0.0.1:{port}", timeout_ms=1500).list_topics()
        assert time.monotonic() - started < 10
    assert str(exc.value) == f"no broker of --bootstrap-server 127.0.0.1:{port} answered within 1.5 s"
    time.sleep(1.5)  # librdkafka would have logged its reconnect attempts by now
    assert capfd.readouterr().err == ""
