"""The Broker facade as a Python user calls it: idempotent creation, the tutorial's statistics, groups."""

from __future__ import annotations

import pytest

from logbroker import Broker, Consumer, Producer
from logbroker.errors import TopicExistsError


def test_create_topic_with_exist_ok_returns_the_existing_topic_unchanged(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("orders", partitions=3)
    again = broker.create_topic("orders", partitions=5, exist_ok=True)
    assert again.partitions == 3
    with pytest.raises(TopicExistsError):
        broker.create_topic("orders", partitions=3)


def test_get_topic_stats_counts_retained_records_and_live_group_members(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("orders", partitions=2)
    with Producer(tmp_path) as producer:
        producer.send_batch("orders", [{"n": i} for i in range(5)], partition=0)
        producer.send("orders", {"n": 5}, partition=1)
        producer.flush()
    consumer = Consumer("orders", data_dir=tmp_path, group_id="billing", auto_offset_reset="earliest")
    try:
        consumer.poll(timeout_ms=500)
        stats = broker.get_topic_stats("orders")
    finally:
        consumer.close()
    assert stats["topic"] == "orders" and stats["partitions"] == 2
    assert stats["queue_size"] == stats["records"] == 6
    assert stats["log_end_offsets"] == {0: 5, 1: 1}
    assert stats["groups"] == ["billing"] and stats["consumer_count"] == 1
    assert broker.get_topic_stats("orders")["consumer_count"] == 0  # closed: left the group


def test_broker_lists_and_describes_groups(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("orders", partitions=1)
    with Producer(tmp_path) as producer:
        producer.send_batch("orders", [{"n": i} for i in range(3)])
        producer.flush()
    with Consumer("orders", data_dir=tmp_path, group_id="billing", auto_offset_reset="earliest",
                  consumer_timeout_ms=300) as consumer:
        assert len(list(consumer)) == 3
    assert broker.list_groups() == ["billing"]
    [row] = broker.describe_group("billing")
    assert (row.topic, row.partition, row.current_offset, row.log_end_offset, row.lag) == ("orders", 0, 3, 3, 0)
