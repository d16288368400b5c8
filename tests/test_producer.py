"""The producer's API: send/flush/get futures and the bulk send_batch."""

from __future__ import annotations

import math
import os

import pytest

import corrupt
from logbroker import Broker, InvalidRecordError, Producer, UnknownPartitionError


def _values(broker, topic, partition=0):
    return [r.value for r in broker.topic(topic).reader(partition).read(0, 10_000)]


def test_send_batch_appends_in_order_with_contiguous_offsets_after_buffered_sends(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("t", 1)
    with Producer(tmp_path, batch_size=1 << 30) as producer:
        first = producer.send("t", {"n": 0}, partition=0)
        result = producer.send_batch("t", [{"n": i} for i in range(1, 6)], partition=0)
        assert first.done() and first.get().offset == 0
        metadata = result.get()
        assert [m.offset for m in metadata] == [1, 2, 3, 4, 5]
        assert result.base_offset == 1 and len(result) == 5
    assert _values(broker, "t") == [{"n": i} for i in range(6)]


def test_send_batch_puts_an_unkeyed_batch_on_one_partition_and_moves_on_for_the_next(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("t", 3)
    with Producer(tmp_path) as producer:
        a = producer.send_batch("t", [1, 2, 3])
        b = producer.send_batch("t", [4, 5])
    assert a.partition != b.partition
    assert _values(broker, "t", a.partition) == [1, 2, 3]
    assert _values(broker, "t", b.partition) == [4, 5]


def test_send_batch_with_a_nan_refuses_the_whole_batch_and_writes_nothing(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("t", 1)
    with Producer(tmp_path) as producer:
        with pytest.raises(InvalidRecordError, match="NaN"):
            producer.send_batch("t", [1, {"x": [None, math.nan]}, 3], partition=0)
    assert _values(broker, "t") == []


@pytest.mark.parametrize("bad, needle", [
    ({"x": math.inf}, "index 2 contains NaN or Infinity"),
    ({"x": {1, 2}}, "index 2 is not storable as JSON"),
    ([None, -math.inf], "index 2 contains NaN or Infinity"),
])
def test_send_batch_names_the_value_it_refuses_and_writes_nothing(tmp_path, bad, needle):
    broker = Broker(tmp_path)
    broker.create_topic("t", 1)
    with Producer(tmp_path) as producer:
        with pytest.raises(InvalidRecordError, match=needle):
            producer.send_batch("t", [{"ok": None}, None, bad, "null"], key="null", partition=0)
        producer.send_batch("t", [{"ok": None}, None, "null"], key="null", partition=0)
    assert _values(broker, "t") == [{"ok": None}, None, "null"]


def test_send_batch_over_max_message_bytes_is_split_into_batches_within_it(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("t", 1, {"max.message.bytes": 2000})
    with Producer(tmp_path) as producer:
        result = producer.send_batch("t", ["v" * 300] * 20, key="k", headers={"h": "%d"}, partition=0)
    assert [m.offset for m in result.get()] == list(range(20))
    reader = broker.topic("t").reader(0)
    records = reader.read(0, 100)
    assert [(r.offset, r.key, dict(r.headers), r.value) for r in records] == [
        (i, "k", {"h": "%d"}, "v" * 300) for i in range(20)]
    log_path = broker.topic("t").partition_path(0) + "/00000000000000000000.log"
    spans = list(corrupt.batch_spans(log_path))
    assert len(spans) > 1 and all(end - start <= 2000 for start, end, *_ in spans)


def test_send_batch_of_a_record_over_max_message_bytes_is_refused_whole(tmp_path):
    from logbroker import RecordTooLargeError

    broker = Broker(tmp_path)
    broker.create_topic("t", 1, {"max.message.bytes": 2000})
    with Producer(tmp_path) as producer:
        with pytest.raises(RecordTooLargeError, match="record 1 of the batch .* max.message.bytes=2000"):
            producer.send_batch("t", ["small", "x" * 3000, "small"], partition=0)
    assert _values(broker, "t") == []


def test_send_batch_to_a_partition_that_does_not_exist_is_refused(tmp_path):
    Broker(tmp_path).create_topic("t", 2)
    with Producer(tmp_path) as producer:
        with pytest.raises(UnknownPartitionError):
            producer.send_batch("t", [1], partition=2)


def test_futures_of_one_batch_resolve_together_when_it_is_written(tmp_path):
    Broker(tmp_path).create_topic("t", 1)
    with Producer(tmp_path, batch_size=1 << 30) as producer:
        futures = [producer.send("t", i, partition=0) for i in range(4)]
        assert not any(f.done() for f in futures)
        producer.flush()
        assert all(f.done() for f in futures)
        assert [f.get().offset for f in futures] == [0, 1, 2, 3]
        assert futures[2].topic == "t" and futures[2].partition == 0


def test_a_record_over_max_message_bytes_is_refused_at_send_and_its_batch_mates_still_land(tmp_path):
    from logbroker import RecordTooLargeError

    broker = Broker(tmp_path)
    broker.create_topic("t", 1, {"max.message.bytes": 2000})
    with Producer(tmp_path, batch_size=1 << 30) as producer:
        ok = producer.send("t", "small", partition=0)
        with pytest.raises(RecordTooLargeError, match="max.message.bytes=2000"):
            producer.send("t", "x" * 5000, partition=0)
        after = producer.send("t", "also small", partition=0)
        producer.flush()
        assert [ok.get().offset, after.get().offset] == [0, 1]
    assert _values(broker, "t") == ["small", "also small"]


def test_unkeyed_records_after_a_bulk_send_go_on_round_robin_where_it_stopped(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("t", 3)
    with Producer(tmp_path) as producer:
        producer.send_json_many("t", [b"0", b"1", b"2", b"3"])  # on p, p + 1, p + 2, p
        after = producer.send_json("t", b"4")
    [first] = [p for p in range(3) if 0 in _values(broker, "t", p)]
    assert _values(broker, "t", first) == [0, 3]
    assert after.get().partition == (first + 1) % 3


def test_send_json_stores_the_encoded_value_as_given(tmp_path):
    broker = Broker(tmp_path)
    broker.create_topic("t", 1)
    with Producer(tmp_path) as producer:
        producer.send_json("t", b'{"a": [1, 2.5, "x"]}', key="k", partition=0).get()
    [record] = broker.topic("t").reader(0).read(0, 10)
    assert record.value == {"a": [1, 2.5, "x"]} and record.key == "k"
    [raw] = broker.topic("t").reader(0).read(0, 10, raw=True)
    assert raw.value == b'{"a": [1, 2.5, "x"]}'


def test_a_partition_that_fails_does_not_stop_flush_from_writing_the_others(tmp_path, fault_hook):
    import errno

    from logbroker import DiskFullError

    broker = Broker(tmp_path)
    broker.create_topic("t", 2)
    producer = Producer(tmp_path, batch_size=1 << 30)
    doomed = producer.send("t", "p0", partition=0)
    fine = producer.send("t", "p1", partition=1)

    def partition_0_is_full(op, target):
        # Match the partition directory itself: a substring test also matched pytest's base
        # temporary directory when it was numbered 0 (".../pytest-0/..." holds "t-0"), failing
        # partition 1's write too.
        if op == "write" and os.path.basename(os.path.dirname(str(target))) == "t-0":
            raise OSError(errno.ENOSPC, "No space left on device")

    fault_hook(partition_0_is_full)
    with pytest.raises(DiskFullError):
        producer.flush()
    fault_hook(None)
    assert _values(broker, "t", 1) == ["p1"]  # written by the flush that raised, before any get()
    assert fine.done() and fine.get().offset == 0
    with pytest.raises(DiskFullError):
        doomed.get()
    producer.close()
    assert _values(broker, "t", 0) == []
