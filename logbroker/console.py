"""The console consumer loop (what ``logbroker consume`` and kafka-console-consumer do).

Kafka's rules: without a group nothing is committed and reading starts at the end unless
``from_beginning``; with a group it resumes from the committed offset (``from_beginning`` then only
decides where a group with no commit starts). It stops after ``max_messages``, after ``timeout_ms``
with no new record, or on Ctrl+C, and always closes the consumer cleanly: it commits what was
handed to ``sink`` and leaves the group.
"""

from __future__ import annotations

import time
from typing import Callable

from .admin import parse_datetime_ms
from .consumer import Consumer
from .errors import InvalidConfigError, OffsetOutOfRangeError
from .consumer_record import Record

__all__ = ["consume"]


def consume(data_dir: str | None, topic: str, sink: Callable[[Record, int], None], *, group: str | None = None,
            from_beginning: bool = False, partition: int | None = None, offset: int | None = None,
            from_time: str | None = None, max_messages: int | None = None,
            timeout_ms: int | None = None) -> int:
    """Feed records of ``topic`` to ``sink(record, n)`` (n counts from 1); returns how many."""
    if offset is not None and partition is None:
        raise InvalidConfigError("--offset needs --partition (an offset belongs to one partition)")
    if group is not None and partition is not None:
        raise InvalidConfigError("--partition cannot be combined with --group (the group assigns partitions)")
    if max_messages is not None and max_messages < 1:
        raise InvalidConfigError(f"--max-messages must be at least 1, got {max_messages}")
    if group is not None and from_time is not None:
        raise InvalidConfigError("--from-time cannot be combined with --group; move the group with "
                                 "`logbroker groups reset-offsets GROUP --topic T --to-datetime ...`")
    if offset is not None and offset < 0:
        raise InvalidConfigError(f"--offset must be 0 or more, got {offset}")
    ts = parse_datetime_ms(from_time) if from_time is not None else None
    consumer = Consumer(data_dir=data_dir, group_id=group,
                        auto_offset_reset="earliest" if from_beginning else "latest")
    count = 0
    try:
        if group is not None:
            consumer.subscribe([topic])
        else:
            t = consumer._topic(topic)
            parts = [t.check_partition(partition)] if partition is not None else list(range(t.partitions))
            consumer.assign([(topic, p) for p in parts])
            if offset is not None:
                tp = (topic, partition)
                start = consumer.beginning_offsets([tp])[tp]
                end = consumer.end_offsets([tp])[tp]
                if not start <= offset <= end:
                    raise OffsetOutOfRangeError(
                        f"--offset {offset} is out of range for {topic}-{partition}: valid offsets are "
                        f"{start} (log start) to {end} (log end)", topic=topic, partition=partition, offset=offset)
                consumer.seek(topic, partition, offset)
        if ts is not None:
            consumer.seek_to_timestamp(ts, *[(tp.topic, tp.partition) for tp in consumer.assignment()])
        idle_since = time.monotonic()
        while max_messages is None or count < max_messages:
            wait = 100 if timeout_ms is None else max(0, timeout_ms - (time.monotonic() - idle_since) * 1000)
            want = consumer.max_poll_records if max_messages is None else min(max_messages - count,
                                                                              consumer.max_poll_records)
            batch = consumer.poll(timeout_ms=min(wait, 100), max_records=want)
            if not batch:
                if timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= timeout_ms:
                    break
                continue
            for tp, records in batch.items():
                for record in records:
                    try:
                        sink(record, count + 1)
                    except BaseException:
                        # Ctrl+C or a closed pipe mid-batch: this record and the rest of the batch
                        # were not handed over, so the commit on close must not cover them.
                        _rewind(consumer, batch, tp, record.offset)
                        raise
                    count += 1
            idle_since = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return count


def _rewind(consumer: Consumer, batch: dict, stopped_tp, stopped_offset: int) -> None:
    """Move positions back to the first record the sink did not finish, in every partition of the
    batch (those after ``stopped_tp`` were not reached at all)."""
    reached = False
    for tp, records in batch.items():
        if tp == stopped_tp:
            consumer.seek(tp.topic, tp.partition, stopped_offset)
            reached = True
        elif reached:
            consumer.seek(tp.topic, tp.partition, records[0].offset)

