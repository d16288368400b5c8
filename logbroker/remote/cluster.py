"""A Kafka cluster's admin side, in the shapes the local commands print: :class:`Cluster`.

``Cluster(bootstrap_servers, command_config)`` has the methods the CLI calls on the data
directory (topics through :class:`~logbroker.broker.Broker`, groups and replay through
:mod:`logbroker.groups.admin`) and returns the same values: topic names, the dict of
``Broker.describe_topic``, :class:`~logbroker.groups.admin.PartitionLag` rows, a
:class:`~logbroker.groups.admin.ResetPlan`, :class:`~logbroker.storage.consumer_record.Record`
objects. So one renderer prints both. What Kafka's protocol does not carry is None: a partition's segments and
size, the topic id, an owner's process id.

Every call first asks the cluster for its metadata, within ``timeout_ms``: a cluster that does
not answer is one :class:`~logbroker.errors.ClusterUnreachableError` naming the address and the
timeout, and librdkafka's own log lines go to the ``logbroker.kafka`` logger (not stderr).
A refusal is a :class:`~logbroker.errors.ClusterError` (or the local error of the same meaning:
UnknownTopicError, TopicExistsError, UnknownGroupError, GroupNotEmptyError, InvalidConfigError)
with Kafka's error name in the text.

Not thread-safe: one Cluster per thread. :meth:`close` (or ``with``) ends its clients.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Any, Callable, Iterable, Iterator

from .. import errors
from ..groups.admin import GroupMemberInfo, PartitionLag, ResetPlan, ResetRow, parse_reset_spec, reset_target
from ..storage.config import TopicConfig
from ..storage.consumer_record import Record
from .clients import RemoteConsumer, RemoteProducer, quiet_config, record_from_message
from .connect import client_config, kafka_client

__all__ = ["Cluster", "RemoteTopic", "DEFAULT_TIMEOUT_MS"]

#: How long a command waits for the cluster to answer (Kafka's tools wait 30-60 s; a CLI says sooner).
DEFAULT_TIMEOUT_MS = 10_000
log = logging.getLogger("logbroker")


class RemoteTopic:
    """What ``topics create`` / ``topics alter`` print of a topic: name, partition count and a
    config with ``to_kafka()`` (as the local :class:`~logbroker.storage.topic.Topic` has)."""

    def __init__(self, name: str, partitions: int, config: dict[str, Any]) -> None:
        self.name, self.partitions, self.config = name, partitions, _Config(config)


class _Config(dict):
    def to_kafka(self) -> dict[str, Any]:
        return dict(self)


class Cluster:
    def __init__(self, bootstrap_servers: str, command_config: str | None = None,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        self.kafka = kafka_client()
        self.bootstrap_servers = bootstrap_servers
        self.command_config = command_config
        self.timeout_ms = timeout_ms
        self.config = quiet_config(client_config(bootstrap_servers, command_config))
        from confluent_kafka.admin import AdminClient
        try:
            self.admin = AdminClient(dict(self.config))
        except self.kafka.KafkaException as exc:
            raise self._error("client configuration", exc) from None

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.admin = None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def _timeout(self) -> float:
        return self.timeout_ms / 1000.0

    def _error(self, what: str, exc: BaseException) -> errors.LogBrokerError:
        err = exc.args[0] if exc.args and hasattr(exc.args[0], "name") else None
        if err is None:
            return errors.ClusterError(f"{what}: {exc}")
        name, text = err.name(), err.str()
        if name in ("_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN", "REQUEST_TIMED_OUT"):
            return self.unreachable()
        return errors.ClusterError(f"{what}: {name}: {text}", code=name)

    def unreachable(self) -> errors.ClusterUnreachableError:
        return errors.ClusterUnreachableError(
            f"no broker of --bootstrap-server {self.bootstrap_servers} answered within "
            f"{self.timeout_ms / 1000:g} s", address=self.bootstrap_servers)

    def _metadata(self) -> Any:
        try:
            return self.admin.list_topics(timeout=self._timeout)
        except self.kafka.KafkaException as exc:
            raise self._error("metadata", exc) from None

    def _wait(self, what: str, future: Any) -> Any:
        try:
            return future.result(timeout=self._timeout)
        except self.kafka.KafkaException as exc:
            raise self._error(what, exc) from None
        except TimeoutError:  # concurrent.futures' (an alias of the builtin since 3.11)
            raise self.unreachable() from None

    def _partitions(self, topic: str) -> int:
        """The partition count of ``topic``; UnknownTopicError naming the cluster when it has none."""
        # All topics: a metadata request naming one from this (producer-type) client would let
        # the cluster auto-create it.
        meta = self._metadata().topics.get(topic)
        if meta is None or meta.error is not None:
            raise errors.UnknownTopicError(f"topic {topic!r} does not exist on {self.bootstrap_servers}", topic=topic)
        return len(meta.partitions)

    def _offsets(self, topic: str, partitions: Iterable[int], spec: Any) -> dict[int, int]:
        """``OffsetSpec`` answers (-1 when none) per partition of ``topic``."""
        tps = {self.kafka.TopicPartition(topic, p): spec for p in partitions}
        if not tps:
            return {}
        futures = self.admin.list_offsets(tps, request_timeout=self._timeout)
        return {tp.partition: self._wait(f"list offsets of {topic}", f).offset for tp, f in futures.items()}

    def start_end_offsets(self, topic: str, partitions: Iterable[int]) -> tuple[dict[int, int], dict[int, int]]:
        """(log start offsets, log end offsets) of those partitions of ``topic``."""
        from confluent_kafka.admin import OffsetSpec
        partitions = list(partitions)
        return (self._offsets(topic, partitions, OffsetSpec.earliest()),
                self._offsets(topic, partitions, OffsetSpec.latest()))

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp_ms`` (None: no such record)."""
        from confluent_kafka.admin import OffsetSpec
        found = self._offsets(topic, [partition], OffsetSpec.for_timestamp(timestamp_ms))[partition]
        return None if found < 0 else found

    # -- topics ------------------------------------------------------------------------------

    def list_topics(self) -> list[str]:
        return sorted(name for name in self._metadata().topics if not name.startswith("__"))

    def create_topic(self, name: str, partitions: int, config: dict[str, Any] | None = None) -> RemoteTopic:
        from confluent_kafka.admin import NewTopic
        values = {k: str(v) for k, v in (config or {}).items()}
        self._metadata()
        [future] = self.admin.create_topics([NewTopic(name, partitions, config=values)],
                                            request_timeout=self._timeout).values()
        try:
            self._wait(f"create topic {name}", future)
        except errors.ClusterError as exc:
            if getattr(exc, "code", None) == "TOPIC_ALREADY_EXISTS":
                raise errors.TopicExistsError(f"topic {name!r} already exists on {self.bootstrap_servers}",
                                              topic=name) from None
            if getattr(exc, "code", None) in ("INVALID_CONFIG", "INVALID_PARTITIONS", "INVALID_TOPIC_EXCEPTION"):
                raise errors.InvalidConfigError(str(exc)) from None
            raise
        return self.topic(name)

    def topic(self, name: str) -> RemoteTopic:
        return RemoteTopic(name, self._partitions(name), self.topic_config(name))

    def delete_topic(self, name: str) -> None:
        self._partitions(name)
        [future] = self.admin.delete_topics([name], request_timeout=self._timeout).values()
        self._wait(f"delete topic {name}", future)

    def alter_topic(self, name: str, config: dict[str, Any] | None = None,
                    partitions: int | None = None) -> RemoteTopic:
        from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                           ResourceType)
        count = self._partitions(name)
        if partitions is not None and partitions < count:
            raise errors.InvalidConfigError(f"topic {name!r} has {count} partitions; the count can only grow "
                                            f"(asked for {partitions})")
        try:
            if config:
                entries = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET)
                           for k, v in config.items()]
                resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
                [future] = self.admin.incremental_alter_configs([resource], request_timeout=self._timeout).values()
                self._wait(f"alter topic {name}", future)
            if partitions is not None and partitions > count:
                [future] = self.admin.create_partitions([NewPartitions(name, partitions)],
                                                        request_timeout=self._timeout).values()
                self._wait(f"alter topic {name}", future)
        except errors.ClusterError as exc:
            if getattr(exc, "code", None) in ("INVALID_CONFIG", "INVALID_PARTITIONS"):
                raise errors.InvalidConfigError(str(exc)) from None
            raise
        return self.topic(name)

    def topic_config(self, name: str) -> dict[str, Any]:
        """The topic's config as the local ``TopicConfig.to_kafka()`` has it (typed, in its order)
        for the keys logbroker knows, then any other key the cluster reports as set on the topic."""
        from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType
        [future] = self.admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)],
                                               request_timeout=self._timeout).values()
        entries = self._wait(f"describe configs of {name}", future)
        known = TopicConfig().to_kafka()
        typed = TopicConfig.from_kafka({k: e.value for k, e in entries.items() if k in known and e.value is not None})
        out: dict[str, Any] = typed.to_kafka()
        for k, e in sorted(entries.items()):
            if k not in known and e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
                out[k] = e.value
        return out

    def describe_topic(self, name: str) -> dict[str, Any]:
        """``Broker.describe_topic``'s dict; ``segments``, ``size`` and ``topic_id`` are None (Kafka's
        protocol does not carry them to a client)."""
        count = self._partitions(name)
        start, end = self.start_end_offsets(name, range(count))
        parts = [{"partition": p, "log_start_offset": start[p], "log_end_offset": end[p],
                  "records": end[p] - start[p], "size": None, "segments": None} for p in range(count)]
        return {"topic": name, "topic_id": None, "partitions": count, "config": self.topic_config(name),
                "partition_details": parts}

    # -- groups ------------------------------------------------------------------------------

    def list_groups(self) -> list[str]:
        result = self._wait("list groups", self.admin.list_consumer_groups(request_timeout=self._timeout))
        return sorted(g.group_id for g in result.valid)

    def _committed(self, group: str) -> dict[tuple[str, int], int]:
        from confluent_kafka import ConsumerGroupTopicPartitions
        [future] = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                          request_timeout=self._timeout).values()
        result = self._wait(f"committed offsets of group {group}", future)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or [] if tp.offset >= 0}

    def _description(self, group: str) -> Any:
        [future] = self.admin.describe_consumer_groups([group], request_timeout=self._timeout).values()
        return self._wait(f"describe group {group}", future)

    def group_members(self, group: str) -> list[GroupMemberInfo]:
        """The group's members per topic they are assigned partitions of
        (:func:`logbroker.groups.admin.group_members`)."""
        out = []
        for m in self._description(group).members:
            tps = m.assignment.topic_partitions if m.assignment else []
            for topic in sorted({tp.topic for tp in tps}) or [""]:
                out.append(GroupMemberInfo(group, topic, m.member_id, m.host, None, m.client_id,
                                           tuple(sorted(tp.partition for tp in tps if tp.topic == topic))))
        return sorted(out, key=lambda m: (m.topic, m.consumer_id))

    def describe_group(self, group: str, now_ms: int | None = None) -> list[PartitionLag]:
        """:func:`logbroker.groups.admin.describe_group`'s rows: every partition of each topic the group has
        committed offsets on, with the log end offset, lag, owner and the age of the oldest
        unconsumed record. UnknownGroupError when the cluster knows no such group."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        committed = self._committed(group)
        members = self.group_members(group)
        if not committed and not members:
            raise errors.UnknownGroupError(f"consumer group {group!r} does not exist on {self.bootstrap_servers}",
                                           group=group)
        owners = {(m.topic, p): m for m in members for p in m.partitions}
        rows = []
        for topic in sorted({t for t, _ in committed} | {m.topic for m in members if m.topic}):
            count = self._partitions(topic)
            start, end = self.start_end_offsets(topic, range(count))
            # The oldest unconsumed record still kept: retention may have removed the committed one.
            lagging = {p: max(committed[(topic, p)], start[p]) for p in range(count)
                       if (topic, p) in committed and committed[(topic, p)] < end[p]}
            first = self._first_timestamps(topic, lagging)
            for p in range(count):
                current = committed.get((topic, p))
                lag = None if current is None else max(0, end[p] - current)
                lag_ms = 0 if lag == 0 else (None if p not in first else max(0, now_ms - first[p]))
                owner = owners.get((topic, p))
                rows.append(PartitionLag(group, topic, p, current, end[p], lag,
                                         owner.consumer_id if owner else None, owner.host if owner else None,
                                         owner.client_id if owner else None, lag_ms, None))
        return rows

    def _first_timestamps(self, topic: str, offsets: dict[int, int]) -> dict[int, int]:
        """The timestamp of the record at each partition's offset (those retention kept)."""
        out: dict[int, int] = {}
        if offsets:
            for record in self._read(topic, {p: (o, o + 1) for p, o in offsets.items()}):
                out.setdefault(record.partition, record.timestamp)
        return out

    def delete_group(self, group: str) -> None:
        [future] = self.admin.delete_consumer_groups([group], request_timeout=self._timeout).values()
        try:
            self._wait(f"delete group {group}", future)
        except errors.ClusterError as exc:
            code = getattr(exc, "code", None)
            if code == "GROUP_ID_NOT_FOUND":
                raise errors.UnknownGroupError(f"consumer group {group!r} does not exist on "
                                               f"{self.bootstrap_servers}", group=group) from None
            if code == "NON_EMPTY_GROUP":
                raise errors.GroupNotEmptyError(f"consumer group {group!r} has live members; stop them first",
                                                group=group) from None
            raise

    def plan_reset_offsets(self, group: str, topic: str | None, partitions: list[int] | None, spec,
                           now_ms: int | None = None) -> ResetPlan:
        """:func:`logbroker.groups.admin.plan_reset_offsets` over the cluster: the same rules (clamped into
        [log start offset, log end offset], the same warnings)."""
        kind, value = parse_reset_spec(spec)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        committed = self._committed(group)
        topics = [topic] if topic is not None else sorted({t for t, _ in committed})
        if not topics:
            raise errors.UnknownGroupError(f"consumer group {group!r} does not exist on {self.bootstrap_servers}",
                                           group=group)
        plan = ResetPlan(self.bootstrap_servers, group)
        for name in topics:
            count = self._partitions(name)
            wanted = list(range(count)) if partitions is None else partitions
            for p in wanted:
                if not 0 <= p < count:
                    raise errors.UnknownPartitionError(f"partition {p!r} does not exist: topic {name!r} has "
                                                       f"partitions 0-{count - 1}", topic=name, partition=p)
            start, end = self.start_end_offsets(name, wanted)
            for p in wanted:
                new = reset_target(group, name, p, kind, value, committed.get((name, p)), start[p], end[p], now_ms,
                                   lambda ts, name=name, p=p: self.offset_for_time(name, p, ts))
                plan.append(ResetRow(name, p, committed.get((name, p)), new))
        return plan

    def execute_reset(self, plan: ResetPlan) -> None:
        """Commit the plan's offsets as an admin (Kafka's AlterConsumerGroupOffsets); refused while
        the group has members."""
        from confluent_kafka import ConsumerGroupTopicPartitions
        if self.group_members(plan.group):
            raise errors.GroupNotEmptyError(f"offsets of group {plan.group!r} can only be reset while it has no "
                                            f"live members", group=plan.group)
        tps = [self.kafka.TopicPartition(r.topic, r.partition, r.new) for r in plan]
        [future] = self.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(plan.group, tps)],
                                                           request_timeout=self._timeout).values()
        result = self._wait(f"reset offsets of group {plan.group}", future)
        failed = [tp for tp in result.topic_partitions if tp.error is not None]
        if failed:
            raise errors.ClusterError(f"reset offsets of group {plan.group}: {failed[0].topic}-{failed[0].partition}: "
                                      f"{failed[0].error.name()}: {failed[0].error.str()}")

    # -- the console consumer's hooks ---------------------------------------------------------

    def producer(self, **settings: Any) -> RemoteProducer:
        """A producer to the cluster (``settings``: librdkafka's, such as ``linger.ms``)."""
        return RemoteProducer(self.bootstrap_servers, self.command_config, **settings)

    def consumer(self, group_id: str | None = None, auto_offset_reset: str = "latest") -> RemoteConsumer:
        return RemoteConsumer(self.bootstrap_servers, self.command_config, group_id=group_id,
                              auto_offset_reset=auto_offset_reset, timeout_ms=self.timeout_ms)

    def has_commits(self, topic: str, group: str) -> bool:
        return any(t == topic for t, _ in self._committed(group))

    def wait_for_topic(self, topic: str, timeout_ms: int | None, notice: Callable[[str], None],
                       output_closed: Callable[[], bool] | None) -> bool:
        """Block until ``topic`` exists on the cluster; True when it had to wait. UnknownTopicError
        after ``timeout_ms`` (as :func:`logbroker.tools.console.consume` waits in a data directory)."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        waited = False
        while topic not in self._metadata().topics:
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.UnknownTopicError(f"topic {topic!r} does not exist on {self.bootstrap_servers}; create "
                                               f"it with `logbroker topics create {topic}` (or publish to it)",
                                               topic=topic)
            if not waited:
                notice(f"Topic {topic} does not exist yet on {self.bootstrap_servers}; waiting for it to be created "
                       f"(`logbroker topics create {topic}` or `logbroker publish {topic}`); Ctrl+C to stop.")
                waited = True
            if output_closed is not None and output_closed():
                raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")
            time.sleep(0.2)
        return waited

    # -- replay ------------------------------------------------------------------------------

    def replay(self, topic: str, from_offset: int | None = None, to_offset: int | None = None,
               partition: int | None = None, *, from_time: int | str | None = None,
               to_time: int | str | None = None) -> Iterator[Record]:
        """:func:`logbroker.groups.admin.replay` over the cluster: the same checks, the same records,
        partition by partition; no group is involved."""
        from ..groups.admin import check_replay_bounds, parse_datetime_ms, replay_range
        check_replay_bounds(from_offset, to_offset)
        bounds = [parse_datetime_ms(b) if isinstance(b, str) else b for b in (from_time, to_time)]
        count = self._partitions(topic)
        if partition is not None and not (type(partition) is int and 0 <= partition < count):
            raise errors.UnknownPartitionError(f"partition {partition!r} does not exist: topic {topic!r} has "
                                               f"partitions 0-{count - 1}", topic=topic, partition=partition)
        parts = range(count) if partition is None else [partition]
        start, end = self.start_end_offsets(topic, parts)
        ranges = {p: replay_range(topic, p, start[p], end[p], from_offset, to_offset, bounds,
                                  lambda ts, p=p: self.offset_for_time(topic, p, ts)) for p in parts}
        return self._read(topic, ranges)

    def _read(self, topic: str, ranges: dict[int, tuple[int, int]]) -> Iterator[Record]:
        """The records of ``[start, stop)`` of each partition, partition by partition."""
        consumer = self.kafka.Consumer(dict(self.config, **{"group.id": "logbroker-replay",
                                                           "enable.auto.commit": False,
                                                           "auto.offset.reset": "error",
                                                           "enable.auto.offset.store": False}))
        try:
            for p, (start, stop) in sorted(ranges.items()):
                if start >= stop:
                    continue
                consumer.assign([self.kafka.TopicPartition(topic, p, start)])
                next_offset, idle_since = start, time.monotonic()
                while next_offset < stop:
                    msg = consumer.poll(0.5)
                    if msg is None:
                        if time.monotonic() - idle_since > self._timeout:
                            raise errors.ClusterError(f"replay of {topic}-{p}: no record at offset {next_offset} "
                                                      f"within {self.timeout_ms / 1000:g} s")
                        continue
                    if msg.error() is not None:
                        raise self._error(f"replay of {topic}-{p}", self.kafka.KafkaException(msg.error()))
                    idle_since = time.monotonic()
                    if msg.offset() >= stop:
                        break
                    next_offset = msg.offset() + 1
                    yield record_from_message(msg)
        finally:
            consumer.close()

    def republish(self, records: Iterable[Record], to_topic: str,
                  on_progress: Callable[[int], None] | None = None) -> int:
        """:func:`logbroker.broker.republish` into the cluster: keys, headers and timestamps kept."""
        count = 0
        with self.producer() as producer:
            for r in records:
                producer.send(to_topic, r.value, key=r.key, timestamp_ms=r.timestamp,
                              headers=r.header_list or None)
                count += 1
                if on_progress is not None:
                    on_progress(count)
        return count
