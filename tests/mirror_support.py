"""Helpers of the mirror tests: a source data directory with every kind of record, and both sides
read back as Kafka clients see them."""

from __future__ import annotations

import time

import confluent_kafka as ck

from logbroker import Broker
from logbroker.clients.consumer import Consumer
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic

T0 = 1_764_230_400_000

#: Records a Kafka client could have sent: (key, headers, value) as bytes.
KAFKA_RECORDS = [
    (b"\xff\xfe key", [("trace", b"\x00\x01"), ("trace", b"again"), ("empty", None)], b"\x89PNG\r\n\x1a\n"),
    (b"plain", [("src", b"kcat")], b"v1"),
    (None, None, b'{"spaced": true}'),
    (b"gone", None, None),  # a tombstone (null value)
    (b"json", None, b'{"compact":[1,2]}'),
    (None, [("only", b"header")], b""),
]


def fill(data_dir: str, topic: str, partitions: int = 2, records: int = 60, config: dict | None = None) -> None:
    """``records`` per partition: native JSON records (keys, headers) interleaved with Kafka bytes records."""
    broker = Broker(data_dir)
    broker.create_topic(topic, partitions, config or {})
    append(data_dir, topic, partitions, 0, records)


def append(data_dir: str, topic: str, partitions: int, first: int, count: int) -> None:
    """Records ``first`` to ``first + count - 1`` of each partition: two native JSON records (keys,
    some headers) for each Kafka bytes record (:data:`KAFKA_RECORDS`), appended in batches."""
    t = Topic(data_dir, topic)
    try:
        for p in range(partitions):
            batch = []
            for i in range(first, first + count):
                if i % 3 == 2:
                    key, headers, value = KAFKA_RECORDS[(i + p) % len(KAFKA_RECORDS)]
                    batch.append(PendingRecord.from_kafka(T0 + i, key, headers, value))
                else:
                    batch.append(PendingRecord(T0 + i, f"k{i % 5}", {"n": str(i)} if i % 2 else None,
                                               {"i": i, "p": p, "text": "é"}))
                if len(batch) == 500:
                    t.log(p).append(batch)
                    batch = []
            if batch:
                t.log(p).append(batch)
    finally:
        t.close()


def commit(data_dir: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer(data_dir=data_dir, group_id=group, enable_auto_commit=False)
    try:
        consumer.assign(list(offsets))
        consumer.commit(offsets)
    finally:
        consumer.close(autocommit=False)


def source_records(data_dir: str, topic: str) -> dict[int, list[tuple]]:
    """Per partition: (offset, timestamp, key, headers, value) as a Kafka client fetching gets them."""
    t = Topic(data_dir, topic)
    out = {}
    try:
        for p in range(t.partitions):
            reader = t.reader(p)
            offset, rows = reader.log_start_offset(), []
            while True:
                got = reader.read(offset, 1000, raw=True)
                if not got:
                    break
                for r in got:
                    key, headers, value = r.kafka_fields()
                    rows.append((r.offset, r.timestamp, key, list(headers), value))
                offset = got.next_offset
            out[p] = rows
    finally:
        t.close()
    return out


def target_records(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple]]:
    """Per partition, from the cluster: (offset, timestamp, key, headers, value)."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "mirror-test-reader",
                            "enable.auto.commit": False, "enable.partition.eof": True})
    out = {}
    try:
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)
            consumer.assign([ck.TopicPartition(topic, p, low)])
            rows = []
            deadline = time.monotonic() + 30
            while (not rows or rows[-1][0] < high - 1) and high > low:
                assert time.monotonic() < deadline, f"{topic}-{p}: read {len(rows)} of {high - low}"
                msg = consumer.poll(1.0)
                if msg is None or msg.error() is not None:
                    continue
                ts_type, ts = msg.timestamp()
                assert ts_type == ck.TIMESTAMP_CREATE_TIME
                rows.append((msg.offset(), ts, msg.key(), list(msg.headers() or []), msg.value()))
            out[p] = rows
    finally:
        consumer.close()
    return out


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "mirror-test-reader"})
    try:
        return [consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        consumer.close()


def shifted(source: dict[int, list[tuple]]) -> dict[int, list[tuple]]:
    """The source's records at the target offsets mirror gives them: offset - log start."""
    return {p: [(o - rows[0][0], *rest) for o, *rest in rows] if rows else [] for p, rows in source.items()}
