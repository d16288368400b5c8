"""The producer: Kafka's ``send`` / ``flush`` / ``close`` over partition logs, with no server.

``send`` encodes the record at once (so a bad value fails at the call that made it), picks the
partition (explicit, else Kafka's murmur2 of the key, else round-robin for unkeyed records), and buffers
it. Buffers are appended as one batch per partition when they reach ``batch_size`` bytes, on
``flush()`` and on ``close()``. A record is acknowledged (its future resolved) only once its batch was
written and, under the ``always`` policy, fsynced. Appends from many producer processes to the same
partition are serialized by the partition lock (see :mod:`logbroker.log`).
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from operator import itemgetter
from dataclasses import dataclass
from typing import Any

import orjson

from .config import DEFAULT_MAX_BLOCK_MS, DEFAULT_PARTITIONS
from .errors import LogBrokerError, RecordTooLargeError, UnknownTopicError
from .fsutil import FsyncPolicy
from .partitioner import Partitioner
from .record import (_KEEP, PendingRecord, _has_non_finite, _orjson_dumps, check_timestamp, encode_headers, encode_key,
                     line_size)
from .topic import Topic

__all__ = ["Producer", "RecordMetadata", "FutureRecordMetadata", "FutureBatchMetadata"]

log = logging.getLogger("logbroker")
_time = time.time


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged record landed (Kafka's RecordMetadata)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class _Batch:
    """Records buffered for one partition, and the outcome of their append (shared by their futures)."""

    __slots__ = ("records", "size", "results", "error")

    def __init__(self) -> None:
        self.records: list[PendingRecord] = []
        self.size = 0
        self.results: list | None = None
        self.error: BaseException | None = None

    def offset_of(self, index: int) -> int | None:
        """The offset of record ``index``, or None when it was not written (``error`` says why)."""
        for res in self.results or ():
            if index < res.count:
                return res.base_offset + index
            index -= res.count
        return None


class FutureRecordMetadata(tuple):
    """The pending result of ``send``. ``get()`` flushes the producer if needed and returns it.

    Futures of one batch share its outcome, so acknowledging a batch costs the same for one record
    or a thousand. (A tuple, so that creating one per record stays cheap.)
    """

    __slots__ = ()

    topic = property(itemgetter(3))
    partition = property(itemgetter(4))
    timestamp = property(itemgetter(5))

    def done(self) -> bool:
        batch = self[1]
        return batch.results is not None or batch.error is not None

    def get(self, timeout: float | None = None) -> RecordMetadata:
        producer, batch, index, topic, partition, timestamp = self
        if batch.results is None and batch.error is None:
            producer.flush()
        offset = batch.offset_of(index)
        if offset is None:
            raise batch.error
        return RecordMetadata(topic, partition, offset, timestamp)


class FutureBatchMetadata:
    """The result of ``send_batch``: already written when returned (or the call raised)."""

    __slots__ = ("topic", "partition", "timestamp", "_batch", "_count")

    def __init__(self, topic: str, partition: int, timestamp: int, batch: _Batch, count: int) -> None:
        self.topic, self.partition, self.timestamp, self._batch, self._count = topic, partition, timestamp, batch, count

    @property
    def base_offset(self) -> int:
        return self._batch.offset_of(0) if self._count else -1

    def __len__(self) -> int:
        return self._count

    def done(self) -> bool:
        return True

    def get(self, timeout: float | None = None) -> list[RecordMetadata]:
        batch = self._batch
        return [RecordMetadata(self.topic, self.partition, batch.offset_of(i), self.timestamp)
                for i in range(self._count)]


_new_future = partial(tuple.__new__, FutureRecordMetadata)
_new_pending = partial(tuple.__new__, PendingRecord)


class Producer:
    """Appends records to topics in ``data_dir`` (default: ``$LOGBROKER_DATA_DIR``, else ``./segments``).

    A producer is bound to the topics it opened (FORMAT.md, "Topic identity"): once one is deleted,
    its records buffered or sent afterwards fail with TopicDeletedError, even when a topic of the same
    name was created since; a new Producer writes to that one.

    ``fsync``: None follows each topic's ``fsync`` config; or ``"always"``, ``"interval"``, ``"never"``.
    ``batch_size``: bytes buffered per partition before a batch is written (Kafka's ``batch.size``);
    0 writes every record at once. ``auto_create``: create missing topics with ``num_partitions``.
    ``max_block_ms``: how long an append waits for a partition lock held by another process (a
    stopped one, say) before failing with LockTimeoutError (Kafka's ``max.block.ms``, 60 s).
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, *, fsync: str | None = None,
                 batch_size: int = 16384, auto_create: bool = True, num_partitions: int = DEFAULT_PARTITIONS,
                 flush_ms: int | None = None, max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS) -> None:
        from .broker import resolve_data_dir
        from .config import check_max_block_ms

        #: how long an append waits for a partition lock another process holds (Kafka's max.block.ms)
        self.max_block_ms = None if max_block_ms is None else check_max_block_ms(max_block_ms)

        self.data_dir = resolve_data_dir(data_dir)
        self._fsync = fsync
        self._flush_ms = flush_ms
        if fsync is not None:
            FsyncPolicy(fsync)  # validate now
        self.batch_size = batch_size
        self.auto_create = auto_create
        self.num_partitions = num_partitions
        self._topics: dict[str, Topic] = {}
        self._partitioners: dict[str, Partitioner] = {}
        self._batches: dict[str, list[_Batch]] = {}  # per topic, indexed by partition
        self._limits: dict[str, int] = {}  # max.message.bytes per topic
        self._closed = False

    # -- Kafka's API --------------------------------------------------------------------------

    def send(self, topic: str, value: Any = None, key: str | None = None, partition: int | None = None,
             timestamp_ms: int | None = None, headers: dict[str, str] | None = None) -> FutureRecordMetadata:
        batches = self._batches.get(topic)
        if batches is None or key is not None or headers or timestamp_ms is not None or self._closed:
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        # The common case (no key, headers or timestamp) in one frame: what _route, PendingRecord
        # and _add do, without their calls. Anything unusual goes the general way, which raises.
        if partition is None:
            partition = self._partitioners[topic].partition(None)
        elif type(partition) is not int or not 0 <= partition < len(batches):
            self._topics[topic].check_partition(partition)  # raises UnknownPartitionError
        try:
            value_json = _KEEP % _orjson_dumps(value)  # a copy of its own size: see record.dumps_kept
        except (TypeError, orjson.JSONEncodeError):
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        size = len(value_json) + 124
        if (value_json.find(b"null") >= 0 and _has_non_finite(value)) or size > self._limits[topic]:
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        ts = int(_time() * 1000)
        batch = batches[partition]
        records = batch.records
        records.append(_new_pending((ts, b"null", b"", value_json, size)))
        batch.size += size
        if batch.size >= self.batch_size:
            self._drain(topic, partition)
        return _new_future((self, batch, len(records) - 1, topic, partition, ts))

    def _send(self, topic: str, value: Any, key: str | None, partition: int | None, timestamp_ms: int | None,
              headers: dict[str, str] | None) -> FutureRecordMetadata:
        batches, partition = self._route(topic, key, partition)
        ts = int(_time() * 1000) if timestamp_ms is None else timestamp_ms
        return self._add(topic, batches, partition, PendingRecord(ts, key, headers, value))

    def send_json(self, topic: str, value_json: bytes, key: str | None = None, partition: int | None = None,
                  timestamp_ms: int | None = None, headers: dict[str, str] | None = None) -> FutureRecordMetadata:
        """``send`` for a value already encoded as JSON (bytes), stored as given.

        For pipelines that read JSON anyway (``logbroker publish``): it skips decoding and encoding
        the value again. The caller guarantees ``value_json`` is one valid JSON value with no line
        feed (``orjson.loads`` accepting it is enough: it refuses NaN and Infinity).
        """
        batches, partition = self._route(topic, key, partition)
        ts = int(_time() * 1000) if timestamp_ms is None else timestamp_ms
        return self._add(topic, batches, partition, PendingRecord(ts, key, headers, None, value_json=value_json))

    def _route(self, topic: str, key: str | None, partition: int | None) -> tuple[list[_Batch], int]:
        """The topic's per-partition buffers and the partition a record goes to (explicit, by key,
        else round-robin); raises on a closed producer or a partition that does not exist."""
        if self._closed:
            raise LogBrokerError("the producer is closed")
        batches = self._batches.get(topic)
        if batches is None:
            batches = self._open_topic(topic)
        if partition is None:
            partition = self._partitioners[topic].partition(key)
        elif type(partition) is not int or not 0 <= partition < len(batches):
            self._topics[topic].check_partition(partition)  # raises UnknownPartitionError
        return batches, partition

    def _add(self, topic: str, batches: list[_Batch], partition: int, record: PendingRecord) -> FutureRecordMetadata:
        if record[4] > self._limits[topic] and line_size(record) > self._limits[topic]:
            # Refused here, alone: in a batch it would fail every record buffered with it. record[4]
            # over-estimates the line (for batch splitting); the refusal uses the exact size.
            raise RecordTooLargeError(
                f"record is {line_size(record)} bytes as a line after encoding, larger than "
                f"max.message.bytes={self._limits[topic]} (topic {topic})", topic=topic)
        batch = batches[partition]
        records = batch.records
        records.append(record)
        batch.size += record[4]
        future = _new_future((self, batch, len(records) - 1, topic, partition, record[0]))
        if batch.size >= self.batch_size:
            self._drain(topic, partition)
        return future

    def send_batch(self, topic: str, values: list[Any], key: str | None = None, partition: int | None = None,
                   timestamp_ms: int | None = None, headers: dict[str, str] | None = None) -> "FutureBatchMetadata":
        """Append many values as one batch right away (one write, one fsync): the bulk path.

        All records share ``key``, ``headers`` and the timestamp; they go to ``partition``, else to
        the key's partition, else to the next partition in turn (the whole batch to one partition,
        as Kafka's sticky partitioner does). Records buffered by ``send`` for that partition are
        written first, so order is kept. Each value is serialized straight into its line under the
        partition lock; a value JSON cannot hold fails the whole call and nothing of it is written.
        Returns one future for the whole batch.
        """
        batches, partition = self._route(topic, key, partition)
        ts = int(_time() * 1000) if timestamp_ms is None else check_timestamp(timestamp_ms)
        key_json, headers_json = encode_key(key), encode_headers(headers)
        if batches[partition].records:
            self._drain(topic, partition)
        batch = _Batch()
        t = self._topics[topic]
        try:
            batch.results = t.log(partition).append_values(values, ts, key_json, headers_json, self._policy_for(t))
        except BaseException as exc:
            batch.results = getattr(exc, "appended", None) or []
            batch.error = exc
            raise
        return FutureBatchMetadata(topic, partition, ts, batch, len(values))

    def flush(self, timeout: float | None = None) -> None:
        """Write every buffered record; afterwards all of them are acknowledged (or failed).

        A partition that fails does not stop the others: each is tried, and the first error is
        raised at the end (the futures say which records it concerns).
        """
        first_error: BaseException | None = None
        for topic, batches in self._batches.items():
            for p, batch in enumerate(batches):
                if batch.records:
                    try:
                        self._drain(topic, p)
                    except LogBrokerError as exc:
                        first_error = first_error or exc
        policy = self._policy_for
        for t in self._topics.values():
            if policy(t).mode == "interval":
                for p in list(t._logs):
                    t.log(p).flush()
        if first_error is not None:
            raise first_error

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            for t in self._topics.values():
                t.close()

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self._topic(topic).partitions))

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _policy_for(self, t: Topic) -> FsyncPolicy:
        mode = self._fsync or t.config.fsync
        return FsyncPolicy(mode, self._flush_ms or t.config.flush_ms)

    def _topic(self, name: str) -> Topic:
        t = self._topics.get(name)
        if t is None:
            try:
                t = Topic(self.data_dir, name)
            except UnknownTopicError:
                if not self.auto_create:
                    raise
                from .errors import TopicExistsError
                try:
                    t = Topic.create(self.data_dir, name, self.num_partitions)
                    log.warning("created topic %r with %d partitions (auto-create; set the count with "
                                "`logbroker topics create`)", name, self.num_partitions)
                except TopicExistsError:
                    t = Topic(self.data_dir, name)  # another process created it first
            t.max_block_ms = self.max_block_ms
            self._topics[name] = t
            # Unkeyed records go round-robin, one by one: with records spread evenly from the first
            # one, a newcomer sees a group split the work even on a ten-record topic.
            self._partitioners[name] = Partitioner(t.partitions, sticky_bytes=0)
        return t

    def _open_topic(self, name: str) -> list[_Batch]:
        t = self._topic(name)
        self._limits[name] = t.config.max_message_bytes
        batches = self._batches[name] = [_Batch() for _ in range(t.partitions)]
        return batches

    def _drain(self, topic: str, partition: int) -> None:
        batches = self._batches[topic]
        batch = batches[partition]
        batches[partition] = _Batch()
        t = self._topics[topic]
        try:
            batch.results = t.log(partition).append(batch.records, self._policy_for(t))
        except BaseException as exc:
            # Batches written before a roll stay written (and acknowledged); the rest failed.
            batch.results = getattr(exc, "appended", None) or []
            batch.error = exc
            raise
