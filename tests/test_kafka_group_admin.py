"""The admin APIs ``logbroker serve`` answers for ``--bootstrap-server`` commands, through
confluent-kafka's AdminClient: ListGroups, DescribeGroups, DeleteGroups, CreatePartitions,
IncrementalAlterConfigs, and an admin OffsetCommit that moves a group's offset backwards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   ResourceType)

from kafka_support import module_server
from logbroker.groups.admin import describe_group
from logbroker.broker import Broker

pytestmark = pytest.mark.slow  # a server process and confluent-kafka's AdminClient and consumers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "groupadmin")


@pytest.fixture
def admin(server):
    return AdminClient({"bootstrap.servers": server.bootstrap, "log_level": 0})


def _local(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, *args],
                          capture_output=True, text=True, timeout=60)


def _topic_with_group(server, topic: str, group: str, records: int = 6) -> None:
    """A topic with ``records`` records over 2 partitions and ``group`` committed on all of them."""
    assert _local(server, "topics", "create", topic, "--partitions", "2").returncode == 0
    lines = "".join(f'{{"n":{i}}}\n' for i in range(records))
    done = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, "publish", topic],
                          input=lines, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = _local(server, "consume", topic, "--group", group, "--from-beginning", "--max-messages", str(records))
    assert done.returncode == 0, done.stderr


def test_list_groups_names_groups_with_committed_offsets(server, admin):
    _topic_with_group(server, "lg", "lister")
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
    assert "lister" in {g.group_id for g in listed.valid}


def test_describe_groups_says_empty_for_a_group_with_only_offsets_and_dead_for_none(server, admin):
    _topic_with_group(server, "dg", "described")
    got = {g: f.result(timeout=15) for g, f in admin.describe_consumer_groups(["described", "nobody"]).items()}
    assert got["described"].state.name == "EMPTY" and got["described"].members == []
    assert got["nobody"].state.name == "DEAD"


def test_delete_groups_removes_the_offsets_and_refuses_an_unknown_group(server, admin):
    _topic_with_group(server, "del", "doomed")
    [f] = admin.delete_consumer_groups(["doomed"], request_timeout=10).values()
    f.result(timeout=15)
    assert "doomed" not in Broker(server.data_dir, create=False).topic_groups("del")
    [f] = admin.delete_consumer_groups(["doomed"], request_timeout=10).values()
    with pytest.raises(KafkaException, match="GROUP_ID_NOT_FOUND"):
        f.result(timeout=15)


def test_an_admin_commit_moves_an_offset_backwards(server, admin):
    _topic_with_group(server, "back", "rewound")
    tps = [TopicPartition("back", 0, 0), TopicPartition("back", 1, 1)]
    [f] = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("rewound", tps)]).values()
    assert all(tp.error is None for tp in f.result(timeout=15).topic_partitions)
    rows = {r.partition: r.current_offset for r in describe_group(server.data_dir, "rewound")}
    assert rows == {0: 0, 1: 1}


def test_incremental_alter_configs_sets_and_deletes_a_topic_config(server, admin):
    assert _local(server, "topics", "create", "cfg", "--config", "retention.ms=1000").returncode == 0
    entries = [ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET),
               ConfigEntry("segment.bytes", None, incremental_operation=AlterConfigOpType.DELETE)]
    [f] = admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=entries)]
                                          ).values()
    f.result(timeout=15)
    config = Broker(server.data_dir, create=False).topic("cfg").config
    assert config.retention_ms == 5000 and config.segment_bytes == 16 * 1024 * 1024
    bad = [ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)]
    [f] = admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=bad)]
                                          ).values()
    with pytest.raises(KafkaException, match="INVALID_CONFIG.*no.such.config"):
        f.result(timeout=15)


def test_describe_configs_reports_a_compacted_topics_cleanup_policy(server, admin):
    assert _local(server, "topics", "create", "compacted", "--config", "cleanup.policy=compact").returncode == 0
    [f] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "compacted")]).values()
    assert f.result(timeout=15)["cleanup.policy"].value == "compact"


def test_create_partitions_grows_a_topic_and_refuses_to_shrink_it(server, admin):
    assert _local(server, "topics", "create", "grow", "--partitions", "2").returncode == 0
    [f] = admin.create_partitions([NewPartitions("grow", 5)]).values()
    f.result(timeout=15)
    assert Broker(server.data_dir, create=False).topic("grow").partitions == 5
    assert os.path.isdir(os.path.join(server.data_dir, "grow", "grow-4"))
    [f] = admin.create_partitions([NewPartitions("grow", 3)]).values()
    with pytest.raises(KafkaException, match="INVALID_PARTITIONS"):
        f.result(timeout=15)


def test_a_committed_metadata_string_comes_back_from_committed_and_a_too_long_one_is_refused(server):
    from confluent_kafka import Consumer
    assert _local(server, "topics", "create", "meta", "--partitions", "2").returncode == 0
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "annotated", "enable.auto.commit": False,
                  "log_level": 0})
    try:
        c.commit(offsets=[TopicPartition("meta", 0, 3, metadata="batch 7 of run 2"),
                          TopicPartition("meta", 1, 4)], asynchronous=False)
        got = {tp.partition: (tp.offset, tp.metadata)
               for tp in c.committed([TopicPartition("meta", 0), TopicPartition("meta", 1)], timeout=15)}
        assert got == {0: (3, "batch 7 of run 2"), 1: (4, None)}  # confluent-kafka shows "" as None
        with pytest.raises(KafkaException, match="OFFSET_METADATA_TOO_LARGE"):
            c.commit(offsets=[TopicPartition("meta", 0, 5, metadata="x" * 4097)], asynchronous=False)
    finally:
        c.close()
    rows = {r.partition: r.current_offset for r in describe_group(server.data_dir, "annotated")}
    assert rows == {0: 3, 1: 4}
