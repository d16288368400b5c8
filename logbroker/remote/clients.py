"""A producer and a consumer for a Kafka cluster, with the local ones' interface as the commands
use it, over confluent-kafka: :class:`RemoteProducer` (send / send_json / flush / close) and
:class:`RemoteConsumer` (subscribe / assign / poll / seek / commit / close, positions and commits
as :class:`logbroker.clients.consumer.Consumer` keeps them).

Records come back as :class:`~logbroker.storage.consumer_record.Record`, decoded by the same rule the
data directory uses for what Kafka clients wrote (FORMAT.md, "Bytes keys, values and headers"):
a value that is canonical compact JSON is that JSON value, other bytes are ``bytes``, a null
value ``None``; a UTF-8 key a str; headers a mapping of str. So a record prints the same
whichever side it was read from. Values a producer here sends are their compact JSON bytes.

librdkafka's log lines go to the ``logbroker.kafka`` logger, which keeps the last few for error
messages and prints nothing (:func:`quiet_config`).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Iterable

import orjson

from .. import errors
from ..clients.consumer import TopicPartition
from ..storage.consumer_record import Record
from ..storage.record_bytes import kafka_record_line
from .connect import client_config, kafka_client

__all__ = ["RemoteProducer", "RemoteConsumer", "record_from_message", "quiet_config", "last_client_log"]

#: librdkafka's recent log lines and errors, newest last (for an error message; never printed).
_RECENT: collections.deque[str] = collections.deque(maxlen=20)


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _RECENT.append(record.getMessage())


_client_log = logging.getLogger("logbroker.kafka")
_client_log.propagate = False
_client_log.setLevel(logging.INFO)
_client_log.addHandler(_Collect())


def _on_error(err: Any) -> None:
    _RECENT.append(err.str())


def quiet_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with librdkafka's log and error callbacks collecting instead of printing."""
    return dict(config, logger=_client_log, error_cb=_on_error)


def last_client_log() -> str | None:
    """The last thing librdkafka logged or reported (e.g. "Connection refused"), or None."""
    return _RECENT[-1] if _RECENT else None


def record_from_message(msg: Any) -> Record:
    """The :class:`Record` a local read of the same bytes returns (the line a Kafka client's
    record is stored as, decoded as for a native reader)."""
    ts_type, ts = msg.timestamp()
    line = kafka_record_line(msg.offset(), ts if ts_type else 0, msg.key(), msg.headers(), msg.value())
    return Record(msg.topic(), msg.partition(), line)


def _kafka_error(what: str, exc: Exception) -> errors.ClusterError:
    err = exc.args[0] if exc.args and hasattr(exc.args[0], "name") else None
    return errors.ClusterError(f"{what}: {err.name()}: {err.str()}" if err is not None else f"{what}: {exc}")


class RemoteProducer:
    """Sends records to a cluster; ``send`` returns at once, ``flush``/``close`` wait for every
    acknowledgment (acks=all, idempotent, keys partitioned by murmur2 as the local producer and
    Kafka's Java client do). A failed delivery is raised by ``flush``/``close`` as ClusterError."""

    def __init__(self, bootstrap_servers: str, command_config: str | None = None, **settings: Any) -> None:
        kafka = kafka_client()
        config = client_config(bootstrap_servers, command_config, **{
            "acks": "all", "enable.idempotence": True, "linger.ms": 5, "partitioner": "murmur2_random",
            **settings})
        try:
            self._producer = kafka.Producer(quiet_config(config))
        except kafka.KafkaException as exc:
            raise _kafka_error("producer", exc) from None
        self._kafka = kafka
        self.errors: list[str] = []

    def __enter__(self) -> "RemoteProducer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_bytes(self, topic: str, value: bytes | None, key: str | bytes | None = None,
                   partition: int | None = None, headers: Iterable[tuple[str, Any]] | dict | None = None,
                   timestamp_ms: int | None = None, on_delivery: Any = None) -> None:
        """One record with ``value`` as its bytes; ``on_delivery(err, msg)`` when acknowledged or not."""
        if isinstance(headers, dict):
            headers = headers.items()
        kw: dict[str, Any] = {"value": value, "key": key.encode("utf-8") if isinstance(key, str) else key,
                              "headers": [(k, v.encode("utf-8") if isinstance(v, str) else v)
                                          for k, v in headers or ()],
                              "on_delivery": on_delivery or self._note}
        if partition is not None:
            kw["partition"] = partition
        if timestamp_ms is not None:
            kw["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, **kw)
                return
            except BufferError:  # the local queue is full: wait for acknowledgments
                self._producer.poll(0.1)
            except self._kafka.KafkaException as exc:
                raise _kafka_error(f"send to {topic}", exc) from None

    def send(self, topic: str, value: Any, key: str | bytes | None = None, partition: int | None = None,
             headers: Any = None, timestamp_ms: int | None = None) -> None:
        """A record whose value is ``value``'s compact JSON (bytes are sent as they are)."""
        data = value if isinstance(value, bytes) else orjson.dumps(value)
        self.send_bytes(topic, data, key, partition, headers, timestamp_ms)

    def _note(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}-{msg.partition()}: {err.name()}: {err.str()}")

    def poll(self, timeout_s: float = 0) -> None:
        """Run delivery callbacks of acknowledged records."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 60.0) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            self.errors.append(f"{left} record(s) not acknowledged within {timeout_s:g} s "
                               f"({last_client_log() or 'no answer'})")
        if self.errors:
            raise errors.ClusterError(f"send failed: {self.errors[0]}")

    def close(self) -> None:
        self.flush()


class RemoteConsumer:
    """A consumer of a cluster with :class:`logbroker.clients.consumer.Consumer`'s calls as the console
    consumer makes them. Positions are kept here, as the local consumer keeps them: what ``poll``
    handed out, moved by ``seek``; with a group they are committed every ``auto_commit_interval_ms``,
    on a revocation and by ``close(autocommit=True)``, never beyond what was handed out."""

    max_poll_records = 500

    def __init__(self, bootstrap_servers: str, command_config: str | None = None, *, group_id: str | None = None,
                 auto_offset_reset: str = "latest", auto_commit_interval_ms: int = 5000,
                 timeout_ms: int = 10_000) -> None:
        kafka = self._kafka = kafka_client()
        config = client_config(bootstrap_servers, command_config, **{
            "group.id": group_id or "logbroker-console", "enable.auto.commit": False,
            "auto.offset.reset": auto_offset_reset, "enable.partition.eof": False})
        try:
            self._consumer = kafka.Consumer(quiet_config(config))
        except kafka.KafkaException as exc:
            raise _kafka_error("consumer", exc) from None
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.timeout_ms = timeout_ms
        self._interval = auto_commit_interval_ms / 1000.0
        self._last_commit = time.monotonic()
        self._positions: dict[TopicPartition, int] = {}
        self._pending: dict[TopicPartition, int] | None = None  # a manual assignment not yet started

    # -- assignment ---------------------------------------------------------------------------

    def topic(self, name: str) -> "_RemoteTopic":
        """The topic ``name`` as the local consumer's ``topic()`` gives it: its name and partition
        count, from the cluster's metadata (UnknownTopicError when the cluster has no such topic)."""
        try:
            meta = self._consumer.list_topics(name, timeout=self.timeout_ms / 1000).topics.get(name)
        except self._kafka.KafkaException as exc:
            raise _kafka_error(f"metadata of {name}", exc) from None
        if meta is None or meta.error is not None:
            raise errors.UnknownTopicError(f"topic {name!r} does not exist on {self.bootstrap_servers}", topic=name)
        return _RemoteTopic(name, len(meta.partitions))

    def subscribe(self, topics: Iterable[str]) -> None:
        self._consumer.subscribe(list(topics), on_revoke=self._on_revoke)

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        self._pending = {TopicPartition(t, p): self._kafka.OFFSET_INVALID for t, p in partitions}

    def assignment(self) -> set[TopicPartition]:
        if self._pending is not None:
            return set(self._pending)
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def seek(self, topic: str, partition: int, offset: int) -> None:
        tp = TopicPartition(topic, partition)
        if self._pending is not None:
            self._pending[tp] = offset
            return
        self._positions[tp] = offset
        try:
            self._consumer.seek(self._kafka.TopicPartition(topic, partition, offset))
        except self._kafka.KafkaException:
            pass  # not fetching yet: the position above is what a commit uses

    def seek_to_timestamp(self, timestamp_ms: int, *partitions: tuple[str, int]) -> None:
        asked = [self._kafka.TopicPartition(t, p, timestamp_ms) for t, p in partitions]
        found = self._consumer.offsets_for_times(asked, timeout=self.timeout_ms / 1000)
        for tp in found:
            self.seek(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else self._kafka.OFFSET_END)

    def beginning_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._watermarks(*tp)[0] for tp in partitions}

    def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._watermarks(*tp)[1] for tp in partitions}

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        try:
            return self._consumer.get_watermark_offsets(self._kafka.TopicPartition(topic, partition),
                                                        timeout=self.timeout_ms / 1000)
        except self._kafka.KafkaException as exc:
            raise _kafka_error(f"offsets of {topic}-{partition}", exc) from None

    # -- records ------------------------------------------------------------------------------

    def poll(self, timeout_ms: float = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        if self._pending is not None:
            self._consumer.assign([self._kafka.TopicPartition(t, p, o) for (t, p), o in self._pending.items()])
            self._pending = None
        self._maybe_autocommit()
        messages = self._consumer.consume(max_records or self.max_poll_records, timeout_ms / 1000)
        out: dict[TopicPartition, list[Record]] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == self._kafka.KafkaError._PARTITION_EOF:
                    continue
                raise errors.ClusterError(f"consume {msg.topic()}-{msg.partition()}: {err.name()}: {err.str()}")
            tp = TopicPartition(msg.topic(), msg.partition())
            out.setdefault(tp, []).append(record_from_message(msg))
            self._positions[tp] = msg.offset() + 1
        return out

    # -- commits ------------------------------------------------------------------------------

    def committed(self, topic: str, partition: int) -> int | None:
        [tp] = self._consumer.committed([self._kafka.TopicPartition(topic, partition)],
                                        timeout=self.timeout_ms / 1000)
        return tp.offset if tp.offset >= 0 else None

    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (default: the positions of what was handed out), synchronously."""
        if self.group_id is None:
            return
        offsets = dict(self._positions if offsets is None else offsets)
        if offsets:
            try:
                self._consumer.commit(offsets=[self._kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                      asynchronous=False)
            except self._kafka.KafkaException as exc:
                raise _kafka_error(f"commit of group {self.group_id}", exc) from None
        self._last_commit = time.monotonic()

    def _maybe_autocommit(self) -> None:
        if self.group_id is not None and time.monotonic() - self._last_commit >= self._interval:
            try:
                self.commit()
            except errors.ClusterError as exc:  # a rebalance under way: the next round commits
                _RECENT.append(str(exc))

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        revoked = {TopicPartition(tp.topic, tp.partition) for tp in partitions}
        mine = {tp: o for tp, o in self._positions.items() if tp in revoked}
        try:
            self.commit(mine)
        except errors.ClusterError as exc:
            _RECENT.append(str(exc))
        for tp in revoked:
            self._positions.pop(tp, None)

    def close(self, autocommit: bool = True) -> None:
        try:
            if autocommit and self._pending is None:
                self.commit()
        finally:
            self._consumer.close()


class _RemoteTopic:
    """What the console consumer asks of a topic: its partition count and a partition check."""

    def __init__(self, name: str, partitions: int) -> None:
        self.name, self.partitions = name, partitions

    def check_partition(self, partition: int) -> int:
        if isinstance(partition, bool) or not isinstance(partition, int) or not 0 <= partition < self.partitions:
            raise errors.UnknownPartitionError(
                f"partition {partition!r} does not exist: topic {self.name!r} has partitions 0-{self.partitions - 1}",
                topic=self.name, partition=partition)
        return partition
