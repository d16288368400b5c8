"""The producer: Kafka's ``send`` / ``flush`` / ``close`` over partition logs, with no server.

``send`` encodes the record at once, up to its offset (so a bad value fails at the call that made
it), picks the partition (explicit, else Kafka's murmur2 of the key, else round-robin for unkeyed
records), and adds it to the accumulator of :mod:`logbroker.clients.sender`, whose thread appends it within
``linger_ms`` without anyone calling ``flush()`` (group commit, what a future means under each
fsync policy, and the locks are described there). A record is acknowledged (its future resolved)
only once its batch was written and, under the ``always`` policy, fsynced.

- ``flush()`` makes every record sent before it ready at once and returns when all of them are
  acknowledged or failed (Kafka's meaning); it raises the first failure.
- ``close()`` flushes, then stops the sender thread and closes the partition logs. ``close(0)``
  (Kafka's abort) writes nothing more: what is still buffered fails. Records of a process that
  exits without ``close()`` and were not yet acknowledged may be lost, as in Kafka.
- Ctrl+C (KeyboardInterrupt) reaches only the caller's thread: a round the sender already started
  completes (a batch is one ``write``, visible only after its fsync), and ``close()`` afterwards
  still flushes what was buffered.

Appends from many producer processes to the same partition are serialized by the partition lock
(see :mod:`logbroker.storage.log`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..storage.config import DEFAULT_MAX_BLOCK_MS, DEFAULT_PARTITIONS
from ..errors import InvalidConfigError, InvalidRecordError, LogBrokerError, RecordTooLargeError, UnknownTopicError
from ..storage.fsutil import FsyncPolicy
from .partitioner import Partitioner
from ..storage.record import (TAIL_EXTRA, PendingRecord, TailGroup, check_timestamp, encode_headers, encode_key, encode_tail,
                              has_non_finite, line_size, tail_template)
from .sender import Batch, Sender
from ..storage.topic import Topic

__all__ = ["Producer", "RecordMetadata", "FutureRecordMetadata", "FutureBatchMetadata", "SentRun"]

_dumps = orjson.dumps
log = logging.getLogger("logbroker")
_time_ns = time.time_ns
_get_ident = threading.get_ident
_new_future = object.__new__


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged record landed (Kafka's RecordMetadata)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class FutureRecordMetadata:
    """The pending result of ``send``. ``get()`` waits until the record is acknowledged.

    Futures of one batch share its outcome (the :class:`~logbroker.clients.sender.Batch`), so
    acknowledging a batch costs the same for one record or a thousand; a future only adds the
    record's place in it: ``batch``, ``index`` (the record's place in the batch) and
    ``timestamp``. Made without ``__init__`` (``_new_future``, then its three slots set): the
    cheapest object per record, ~920 instructions against ~1,330 for a tuple subclass made with
    ``tuple.__new__`` (callgrind).
    """

    __slots__ = ("batch", "index", "timestamp")

    batch: Batch
    index: int
    timestamp: int

    @property
    def topic(self) -> str:
        return self.batch.topic

    @property
    def partition(self) -> int:
        return self.batch.partition

    def done(self) -> bool:
        return self.batch.done

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait (up to ``timeout`` seconds) until the record is acknowledged; raise if it failed."""
        batch, index, timestamp = self.batch, self.index, self.timestamp
        if not batch.done:
            batch.sender.wait(batch, timeout)
        offset = batch.offset_of(index)
        if offset is None:
            raise batch.error
        return RecordMetadata(batch.topic, batch.partition, offset, timestamp)


class FutureBatchMetadata:
    """The result of ``send_batch``: already written when returned (or the call raised)."""

    __slots__ = ("topic", "partition", "timestamp", "_batch", "_count")

    def __init__(self, topic: str, partition: int, timestamp: int, batch: Batch, count: int) -> None:
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


class SentRun:
    """Records of :meth:`Producer.send_json_many` that went into one batch: ``count`` records from
    ``index`` on. Acknowledged (or failed) together, when ``batch.done``."""

    __slots__ = ("batch", "index", "count")

    def __init__(self, batch: Batch, index: int, count: int) -> None:
        self.batch, self.index, self.count = batch, index, count

    @property
    def partition(self) -> int:
        return self.batch.partition


# A record's size for batch.size and buffer.memory: its tail and this, which over-estimates its line
# (as PendingRecord.size does: ~124 bytes besides the value of a record without key or headers).
_SIZE_EXTRA = TAIL_EXTRA + 30

_COMPACT_KEYLESS = ("Compacted topic cannot accept message without key in topic partition {topic}-{partition} "
                    "(cleanup.policy=compact)")


class Producer:
    """Appends records to topics in ``data_dir`` (default: ``$LOGBROKER_DATA_DIR``, else ``./segments``).

    A producer is bound to the topics it opened (FORMAT.md, "Topic identity"): once one is deleted,
    its records buffered or sent afterwards fail with TopicDeletedError, even when a topic of the same
    name was created since; a new Producer writes to that one.

    ``fsync``: None follows each topic's ``fsync`` config; or ``"always"``, ``"interval"``, ``"never"``.
    ``batch_size`` (Kafka's ``batch.size``): bytes after which a partition's batch is ready without
    waiting for linger. ``linger_ms`` (Kafka's ``linger.ms``, default 5 as in Kafka 4): the longest
    a record waits for its batch to fill while the sender is saturated. ``buffer_memory`` (Kafka's
    ``buffer.memory``, 32 MiB): bytes of records sent and not yet acknowledged; past it ``send()``
    blocks. ``max_block_ms`` (Kafka's ``max.block.ms``, 60 s; None: no limit) bounds both waits:
    ``send()`` for buffer space (then ProducerTimeoutError) and an append for a partition lock held
    by another process, a stopped one say (then LockTimeoutError). ``auto_create``: create missing
    topics with ``num_partitions``.
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, *, fsync: str | None = None,
                 batch_size: int = 16384, linger_ms: float = 5, buffer_memory: int = 32 * 1024 * 1024,
                 max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS, auto_create: bool = True,
                 num_partitions: int = DEFAULT_PARTITIONS, flush_ms: int | None = None) -> None:
        from ..storage.datadir import resolve_data_dir
        from ..storage.config import check_max_block_ms

        #: how long send() waits for buffer space and an append for a partition lock another process
        #: holds (Kafka's max.block.ms; None: no limit)
        self.max_block_ms = None if max_block_ms is None else check_max_block_ms(max_block_ms)

        self.data_dir = resolve_data_dir(data_dir)
        self._fsync = fsync
        self._flush_ms = flush_ms
        if fsync is not None:
            FsyncPolicy(fsync)  # validate now
        for name, v in (("batch_size", batch_size), ("linger_ms", linger_ms)):
            if v < 0:
                raise InvalidConfigError(f"{name} must be 0 or more, got {v}")
        if buffer_memory < 1:
            raise InvalidConfigError(f"buffer_memory must be at least 1, got {buffer_memory}")
        self.batch_size = batch_size
        self.auto_create = auto_create
        self.num_partitions = num_partitions
        self._topics: dict[str, Topic] = {}
        self._partitioners: dict[str, Partitioner] = {}
        self._acc = Sender(self._append, batch_size=batch_size, linger_ms=linger_ms,
                           buffer_memory=buffer_memory,
                           max_block_ms=float("inf") if max_block_ms is None else max_block_ms)
        self._batches = self._acc.batches  # per topic, the open batch of each partition
        self._fast: dict[str, list[Batch]] = {}  # the same, for the topics send()'s fast path serves
        self._limits: dict[str, int] = {}  # max.message.bytes per topic
        self._stamp = (-1, b"")  # the millisecond of the last send() and its tail template
        self._owner = _get_ident()  # the thread that made the producer (see Sender.shared)
        self._closed = False

    # -- Kafka's API --------------------------------------------------------------------------

    def send(self, topic: str, value: Any = None, key: str | None = None, partition: int | None = None,
             timestamp_ms: int | None = None, headers: dict[str, str] | None = None) -> FutureRecordMetadata:
        """Buffer one record; its future resolves once the record is appended.

        ``value=None`` sends a **null value**, as Kafka's clients do: with a key it is a tombstone,
        which deletes the key from a compacted topic (FORMAT.md, "Tombstones"). Consumers read it
        back as ``None``. To store the JSON ``null`` itself, use ``send_json(topic, b"null")``.
        A topic with ``cleanup.policy=compact`` refuses a record without a key (InvalidRecordError).
        """
        if _get_ident() != self._owner:
            self._acc.shared = True  # other threads send too: batches re-read their newest timestamp
        try:
            batches = self._fast[topic]
        except KeyError:  # a topic not opened yet, or one that needs a key (compacted)
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        if key is not None or headers or timestamp_ms is not None or value is None:
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        # The common case (no key, headers or timestamp; a topic that takes records without a key)
        # in one frame, encoded here into its tail (storage.record.encode_tails) and appended to the
        # open batch of its partition without the lock: list.append is atomic, and a record that
        # does not fit in what the batch reserved, or lands in a batch sealed meanwhile, goes the
        # way of put() (see Batch and Sender.put). Anything unusual goes the general way, which raises.
        if partition is None:
            partition = 0 if len(batches) == 1 else self._partitioners[topic].partition(None)
        elif type(partition) is not int or not 0 <= partition < len(batches):
            self._topics[topic].check_partition(partition)  # raises UnknownPartitionError
        try:
            value_json = _dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        # NaN and Infinity come out of orjson as null. partition, not `in` (bytes.__contains__ first
        # tries its operand as an int: thousands of instructions) nor find (which parses its
        # arguments from a format string): measured ~500 instructions per call less than find
        if value_json.partition(b"null")[1] and has_non_finite(value):
            return self._send(topic, value, key, partition, timestamp_ms, headers)
        ts = _time_ns() // 1_000_000
        stamp = self._stamp
        if stamp[0] != ts:
            stamp = self._stamp = (ts, tail_template(ts))
        tail = stamp[1] % value_json  # the tail, in a bytes object of its own size
        size = len(tail) + _SIZE_EXTRA
        batch = batches[partition]
        used = batch.size + size
        if used > batch.limit:
            if size > self._limits[topic]:
                return self._send(topic, value, key, partition, timestamp_ms, headers)  # measures, refuses
            return self._put(topic, partition, tail, size, ts, None)
        if ts > batch.max_ts:  # before the append: a seal right after it must not miss this time
            batch.max_ts = ts  # (one before it leaves max_ts high, which no lookup can trip on)
        tails = batch.tails
        index = len(tails)
        tails.append(tail)
        batch.size = used
        if batch.sealed or tails[index] is not tail:  # sealed, or another thread appended too
            index = self._acc.settle(batch, tail)
            if index is None:
                return self._put(topic, partition, tail, size, ts, None)
        future = _new_future(FutureRecordMetadata)
        future.batch = batch
        future.index = index
        future.timestamp = ts
        return future

    def _send(self, topic: str, value: Any, key: str | None, partition: int | None, timestamp_ms: int | None,
              headers: dict[str, str] | None) -> FutureRecordMetadata:
        batches, partition = self._route(topic, key, partition)
        ts = _time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
        return self._add(topic, partition, PendingRecord(ts, key, headers, value))

    def send_json(self, topic: str, value_json: bytes, key: str | None = None, partition: int | None = None,
                  timestamp_ms: int | None = None, headers: dict[str, str] | None = None) -> FutureRecordMetadata:
        """``send`` for a value already encoded as JSON (bytes), stored as given.

        For pipelines that read JSON anyway (``logbroker publish``): it skips decoding and encoding
        the value again. The caller guarantees ``value_json`` is one valid JSON value with no line
        feed (``orjson.loads`` accepting it is enough: it refuses NaN and Infinity).
        """
        batches, partition = self._route(topic, key, partition)
        ts = _time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
        return self._add(topic, partition, PendingRecord(ts, key, headers, None, value_json=value_json))

    def send_json_many(self, topic: str, values_json: list[bytes], key: str | None = None,
                       partition: int | None = None, headers: dict[str, str] | None = None) -> list[SentRun]:
        """:meth:`send_json` for many values at once, all read at the same moment (one timestamp):
        the bulk path of ``logbroker publish``. Records go where ``send_json`` would send them one
        by one (``partition``, else the key's, else round-robin). Returns the runs of records that
        share a batch (:class:`SentRun`) in place of a future per record. The caller checks each
        value's size against max.message.bytes first (``send_json`` raises it).
        """
        if not values_json:
            return []
        batches, first = self._route(topic, key, partition)
        if key is None and topic not in self._fast:
            raise InvalidRecordError(_COMPACT_KEYLESS.format(topic=topic, partition=first), topic=topic)
        ts = _time_ns() // 1_000_000
        head, cut = encode_tail(PendingRecord(ts, key, headers, None, value_json=b""))
        head = head[:-1].replace(b"%", b"%%") + b"%b}"  # the tail, with %b for the value
        cut = cut if headers else None
        if key is not None or partition is not None or len(batches) == 1:
            groups = {first: values_json}
        else:
            n = len(batches)
            groups = {(first + i) % n: values_json[i::n] for i in range(min(n, len(values_json)))}
            self._partitioners[topic].skip(len(values_json) - 1)  # round-robin goes on past them
        runs: list[SentRun] = []
        for p, values in groups.items():
            tails = list(map(head.__mod__, values))
            sizes = list(map(_SIZE_EXTRA.__add__, map(len, tails)))
            runs += [SentRun(batch, index, count)
                     for batch, index, count in self._acc.put_many(topic, p, tails, sizes, ts, cut)]
        return runs

    def _route(self, topic: str, key: str | None, partition: int | None) -> tuple[list[Batch], int]:
        """The topic's per-partition buffers and the partition a record goes to (explicit, by key,
        else round-robin); raises on a closed producer or a partition that does not exist."""
        if _get_ident() != self._owner:
            self._acc.shared = True
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

    def _add(self, topic: str, partition: int, record: PendingRecord) -> FutureRecordMetadata:
        limit = self._limits[topic]
        if record.size > limit and line_size(record) > limit:
            # Refused here, alone: in a batch it would fail every record buffered with it. The size
            # over-estimates the line (for batch splitting); the refusal uses the exact size.
            raise RecordTooLargeError(
                f"record is {line_size(record)} bytes as a line after encoding, larger than "
                f"max.message.bytes={limit} (topic {topic})", topic=topic)
        if record.key_json == b"null" and topic not in self._fast:
            raise InvalidRecordError(_COMPACT_KEYLESS.format(topic=topic, partition=partition), topic=topic)
        tail, cut = encode_tail(record)
        return self._put(topic, partition, tail, len(tail) + _SIZE_EXTRA, record.timestamp,
                         cut if record.headers_json else None)

    def _put(self, topic: str, partition: int, tail: bytes, size: int, ts: int, cut: int | None) -> FutureRecordMetadata:
        """Add an encoded record to its partition's open batch under the lock (blocking on buffer.memory)."""
        batch, index = self._acc.put(topic, partition, tail, size, ts, cut)
        future = _new_future(FutureRecordMetadata)
        future.batch = batch
        future.index = index
        future.timestamp = ts
        return future

    def send_batch(self, topic: str, values: list[Any], key: str | None = None, partition: int | None = None,
                   timestamp_ms: int | None = None, headers: dict[str, str] | None = None) -> "FutureBatchMetadata":
        """Append many values as one batch right away (one write, one fsync): the bulk path.

        All records share ``key``, ``headers`` and the timestamp; they go to ``partition``, else to
        the key's partition, else to the next partition in turn (the whole batch to one partition,
        as Kafka's sticky partitioner does). Records buffered by ``send`` for that partition are
        written first, so order is kept. Each value is serialized straight into its line under the
        partition lock; a value JSON cannot hold fails the whole call and nothing of it is written.
        Values are JSON values here: ``None`` is the JSON ``null``, not a tombstone (use ``send``).
        Returns one future for the whole batch.
        """
        batches, partition = self._route(topic, key, partition)
        ts = _time_ns() // 1_000_000 if timestamp_ms is None else check_timestamp(timestamp_ms)
        key_json, headers_json = encode_key(key), encode_headers(headers)
        batch = Batch()
        t = self._topics[topic]
        acc = self._acc
        with acc.io_lock:
            buffered = acc.take_partition(topic, partition)
            if buffered:
                acc.write([(topic, partition, buffered)])
                failed = buffered[-1].error
                if failed is not None:
                    raise failed  # the records sent before these were not written: keep order
            try:
                batch.results = t.log(partition).append_values(values, ts, key_json, headers_json,
                                                               self._policy_for(t))
            except BaseException as exc:
                batch.error = exc
                batch.results = getattr(exc, "appended", None) or []
                raise
        return FutureBatchMetadata(topic, partition, ts, batch, len(values))

    def flush(self, timeout: float | None = None) -> None:
        """Write every record sent so far, now; afterwards all of them are acknowledged (or failed).

        Under ``fsync=interval`` the partitions are then synced too. A partition that fails does
        not stop the others: each is tried, and the first error is raised at the end (the futures
        say which records it concerns). ``timeout`` in seconds: ProducerTimeoutError after it.
        """
        first_error: BaseException | None = None
        for batch in self._acc.flush(timeout):
            if batch.error is not None:
                first_error = first_error or batch.error
        policy = self._policy_for
        with self._acc.io_lock:
            for t in self._topics.values():
                if policy(t).mode == "interval":
                    for p in t.open_partitions():
                        t.log(p).flush()
        if first_error is not None:
            raise first_error

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the sender and close the logs. ``timeout=0``: do not flush; records not
        written yet fail (Kafka's ``close(Duration.ZERO)``)."""
        if self._closed:
            return
        self._closed = True
        self._fast.clear()  # send() now goes the general way, which refuses
        abort = timeout == 0
        try:
            if not abort:
                self.flush(timeout)
        except KeyboardInterrupt:
            abort = True  # Ctrl+C while flushing: finish the round in progress, fail the rest
            raise
        finally:
            self._acc.stop(abort=abort)
            with self._acc.io_lock:
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

    def topic(self, name: str) -> Topic:
        """The :class:`Topic` this producer writes ``name`` through (opened, or auto-created, on first use)."""
        return self._topic(name)

    def _topic(self, name: str) -> Topic:
        t = self._topics.get(name)
        if t is None:
            try:
                t = Topic(self.data_dir, name)
            except UnknownTopicError:
                if not self.auto_create:
                    raise
                from ..errors import TopicExistsError
                try:
                    t = Topic.create(self.data_dir, name, self.num_partitions)
                    log.warning("created topic %r with %d partition%s (auto-create; set the count with "
                                "`logbroker topics create`)", name, self.num_partitions,
                                "" if self.num_partitions == 1 else "s")
                except TopicExistsError:
                    t = Topic(self.data_dir, name)  # another process created it first
            t.max_block_ms = self.max_block_ms
            self._topics[name] = t
            # Unkeyed records go round-robin, one by one: with records spread evenly from the first
            # one, a newcomer sees a group split the work even on a ten-record topic.
            self._partitioners[name] = Partitioner(t.partitions)
        return t

    def _open_topic(self, name: str) -> list[Batch]:
        t = self._topic(name)
        self._limits[name] = t.config.max_message_bytes
        batches = self._acc.open_topic(name, t.partitions, t.config.max_message_bytes)
        if not t.config.compact:
            self._fast[name] = batches  # records without a key are welcome
        return batches

    def _append(self, topic: str, partition: int, groups: list[TailGroup]) -> list:
        """The sender's write: one append (one fsync) for a partition's ready batches (io_lock held).
        On failure ``exc.appended`` lists batches made durable by a roll: those stay acknowledged."""
        t = self._topics[topic]
        return t.log(partition).append_tails(groups, self._policy_for(t))
