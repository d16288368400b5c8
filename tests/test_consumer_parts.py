"""The parts a consumer is built from, each by its own contract: the partition watch that keeps idle
polls to one ``pread``, and the set of open topics that notices partitions added and a topic deleted
and created again (the consumer's behaviour over them is in test_consumer.py and
test_topic_identity.py)."""

from __future__ import annotations

import os

import pytest

from logbroker import Producer
from logbroker.clients.consumer_topics import ConsumerTopics
from logbroker.clients.partition_watch import PartitionWatch
from logbroker.storage.topic import Topic


def _produce(data_dir: str, topic: str, n: int) -> None:
    with Producer(data_dir) as p:
        for i in range(n):
            p.send(topic, {"i": i}, partition=0)


def test_a_watch_says_no_data_until_the_high_watermark_passes_the_position(data_dir):
    Topic.create(data_dir, "t", 1).close()
    _produce(data_dir, "t", 3)
    t = Topic(data_dir, "t")
    watch = PartitionWatch(t.partition_path(0))
    try:
        assert not watch.may_have_data(3) and watch.high_watermark == 3  # the first read of the state file
        assert watch.may_have_data(0) and watch.may_have_data(2)
        assert not watch.may_have_data(3)  # unchanged state file: still no
        _produce(data_dir, "t", 2)
        assert watch.may_have_data(3) and watch.high_watermark == 5
        assert not watch.may_have_data(5)
    finally:
        watch.close()
        t.close()


def test_a_watch_of_a_partition_with_no_state_file_lets_the_reader_look(tmp_path):
    watch = PartitionWatch(str(tmp_path))  # never written to, or its state file lost
    try:
        assert watch.may_have_data(0) and watch.high_watermark == -1
    finally:
        watch.close()


@pytest.fixture
def topics(data_dir):
    """The open topics of a consumer of data_dir, where topic "t" has one partition."""
    Topic.create(data_dir, "t", 1).close()
    topics = ConsumerTopics(data_dir)
    yield topics
    topics.close()


def test_open_topics_see_added_partitions_and_keep_one_topic_per_name(data_dir, topics):
    first = topics.get("t")
    assert topics.get("t") is first and topics.partition_count("t") == 1
    Topic(data_dir, "t").alter(partitions=3).close()
    os.utime(os.path.join(first.path, "topic.json"), ns=(1, 1))  # a new mtime whatever the clock's grain
    assert topics.partition_count("t") == 3
    assert topics.deleted() == []


def test_open_topics_name_a_deleted_topic_and_report_its_recreation_once(data_dir, topics):
    old = topics.get("t")
    Topic(data_dir, "t").delete()
    assert topics.deleted() == ["t"]
    topics.forget("t").close()
    topics.look_for("t")
    assert topics.looking and topics.recreated() == []  # not created again yet
    Topic.create(data_dir, "t", 2).close()
    topics.look_for("t")  # due at once again
    [(name, new)] = topics.recreated()
    assert name == "t" and new.topic_id != old.topic_id and new.partitions == 2
    assert not topics.looking and topics.recreated() == []
    assert topics.is_current("t") and topics.get("t") is new
