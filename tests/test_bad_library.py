"""Bad input through the library API: producer, topic and consumer calls.

Part of the bad-input catalogue: its rules and sandbox are in ``badinput.py``.
"""

from __future__ import annotations

import pytest

from badinput import stored_values
from logbroker.broker import Broker
from logbroker.clients.consumer import Consumer
from logbroker.clients.producer import Producer
from logbroker.errors import (InvalidConfigError, InvalidRecordError, LogBrokerError, RecordTooLargeError,
                              UnknownPartitionError)


# -- library API ---------------------------------------------------------------------------------------

class Unencodable:
    pass


def _deep(n: int):
    v: list = []
    for _ in range(n):
        v = [v]
    return v


SEND_CASES = {
    "nan-value": (dict(value={"x": float("nan")}), InvalidRecordError, "NaN or Infinity"),
    "inf-in-list": (dict(value=[1.0, float("-inf")]), InvalidRecordError, "NaN or Infinity"),
    "int-key": (dict(value=1, key=5), InvalidRecordError, "key must be a string"),
    "bytes-key": (dict(value=1, key=b"k"), InvalidRecordError, "key must be a string or None, not bytes"),
    "header-int-value": (dict(value=1, headers={"h": 1}), InvalidRecordError, "headers must be a dict of str to str"),
    "header-bytes-value": (dict(value=1, headers={"h": b"v"}), InvalidRecordError, "headers must be a dict"),
    "header-int-key": (dict(value=1, headers={1: "v"}), InvalidRecordError, "headers must be a dict"),
    "headers-list": (dict(value=1, headers=[("h", "v")]), InvalidRecordError, "headers must be a dict"),
    "set-value": (dict(value={1, 2}), InvalidRecordError, "value is not storable as JSON"),
    "object-value": (dict(value=Unencodable()), InvalidRecordError, "value is not storable as JSON"),
    "bytes-value": (dict(value=b"raw"), InvalidRecordError, "value is not storable as JSON"),
    "int-over-64-bits": (dict(value=2**64), InvalidRecordError, "value is not storable as JSON"),
    "nested-300": (dict(value=_deep(300)), InvalidRecordError, "value is not storable as JSON"),
    "lone-surrogate": (dict(value="\ud800"), InvalidRecordError, "value is not storable as JSON"),
    "too-large": (dict(value="x" * 2000), RecordTooLargeError, "larger than max.message.bytes=1000"),
    "partition-99": (dict(value=1, partition=99), UnknownPartitionError, "partition 99 does not exist"),
    "partition-negative": (dict(value=1, partition=-1), UnknownPartitionError, "partition -1 does not exist"),
    "partition-bool": (dict(value=1, partition=True), UnknownPartitionError, "partition True does not exist"),
    "partition-str": (dict(value=1, partition="0"), UnknownPartitionError, "partition '0' does not exist"),
}


@pytest.mark.parametrize("case", list(SEND_CASES))
def test_producer_send_refuses_bad_records_and_writes_nothing(box, case):
    kwargs, error, match = SEND_CASES[case]
    producer = Producer(str(box.data), batch_size=0)
    try:
        with pytest.raises(error, match=match):
            producer.send("t", **kwargs).get()
        producer.flush()
    finally:
        producer.close()
    box.assert_unchanged()


@pytest.mark.parametrize("ts", [2**63, -2**63 - 1, "soon", float("nan")], ids=["2^63", "below-i64", "str", "nan"])
def test_producer_send_refuses_a_timestamp_outside_int64(box, ts):
    producer = Producer(str(box.data), batch_size=0)
    try:
        with pytest.raises(InvalidRecordError):
            producer.send("t", 1, timestamp_ms=ts).get()
    finally:
        producer.close()
    box.assert_unchanged()


def test_a_record_over_the_limit_does_not_take_the_records_buffered_before_it_down(box):
    before = stored_values(box.data)
    producer = Producer(str(box.data))  # batches: the valid record waits in the buffer
    try:
        ok = producer.send("t", {"ok": 1})
        with pytest.raises(RecordTooLargeError):
            producer.send("t", "x" * 2000)
            producer.flush()
        producer.flush()
        assert ok.get().offset == 30
    finally:
        try:
            producer.close()
        except LogBrokerError:
            pass
    assert stored_values(box.data) == before + [{"ok": 1}]


def test_producer_with_a_bad_fsync_policy(box):
    with pytest.raises(ValueError, match="fsync policy must be one of always, interval, never, not 'sometimes'"):
        Producer(str(box.data), fsync="sometimes")
    box.assert_unchanged()


def test_topic_create_with_bad_partitions_and_config_through_the_library(box):
    b = Broker(str(box.data))
    for partitions in (0, -1, True, "3", 1025, 2.0):
        with pytest.raises(InvalidConfigError, match="partitions must be an integer from 1 to 1024"):
            b.create_topic("new", partitions)
    for config in ({"segment.bytes": "abc"}, {"retention.ms": -5}, {"fsync": "sometimes"}, {"foo": 1},
                   {"segment.bytes": True}):
        with pytest.raises(InvalidConfigError):
            b.create_topic("new", 1, config)
    box.assert_unchanged()


def test_consumer_seek_to_a_negative_offset(box):
    consumer = Consumer(data_dir=str(box.data))
    try:
        consumer.assign([("t", 0)])
        with pytest.raises(ValueError, match="seek offset must be a non-negative integer, got -1"):
            consumer.seek("t", 0, -1)
    finally:
        consumer.close()
    box.assert_unchanged()
