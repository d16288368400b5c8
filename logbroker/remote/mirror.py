"""``logbroker mirror``: copy topics and consumer-group positions from a data directory into a Kafka
cluster, exactly once, resumably.

What it does, per topic (the topics named, else every topic of the data directory):

1. **Topic.** A missing target topic is created with the source's partition count and the source's
   config overrides that Kafka knows (every topic config but logbroker's own ``fsync``; values left
   at logbroker's defaults are not sent, so the cluster's defaults apply, as for any topic created
   there). A target topic with fewer partitions than the source is an error naming both counts
   (records are never re-partitioned); one with more is used as it is (the extra partitions stay
   empty).
2. **Records.** Each partition is copied into the same partition of the target: key, CreateTime
   timestamp, headers and value bytes exactly as a Kafka client fetching the source through
   ``logbroker serve`` would get them (a native record's value is its compact JSON bytes). The
   source is read with the library's lock-free partition reader: mirror joins no group and writes
   nothing into the data directory.
3. **Group positions.** Then each selected group's committed offsets on the topic are translated
   and committed on the target under the same group name, only when the group has no live member
   on the target (else :class:`~logbroker.errors.GroupNotEmptyError` naming it; a group whose target
   offsets already equal the translation is left alone, so a rerun does not disturb consumers that
   moved). Selection: every group with committed offsets on the mirrored topics (the default and
   ``all_groups``), or the ``groups`` named (a named group without commits on them is an error).

**Offsets: target = source - base.** A source partition whose log starts at 1,000 (retention)
lands at target offset 0, so each partition has a ``base``: the source offset of the record at
target offset 0, fixed when the first record is copied. The target's log end offset ``E`` is the
checkpoint: the next record to copy is the source's ``base + E``. A committed offset ``c``
translates to ``max(c - base, 0)``: below the source's log start it means the first record that
still exists, which is target offset 0.

**Where base lives: on the target**, as the committed offset of the target partition in the
consumer group ``logbroker-mirror`` (a group that never has members). Because the checkpoint
(``E``) and the base live in the same cluster, they cannot disagree: a target topic deleted and
re-created has ``E = 0`` and gets a new base, and a rerun from a restored copy of the data directory
or from another machine finds both. A state file in the source directory would have to say which
cluster it is about, could not follow a target reset, and would make mirror write into the source.
The base is committed before the partition's first record is sent (while ``E = 0`` it is chosen
again, as the source's current log start, so a run that died between the two loses nothing), and
again at every run and every ten minutes under ``follow`` so that the cluster's
``offsets.retention.minutes`` never expires it while mirror is in use.

**Exactly once across kill -9.** Records go through an idempotent producer (``acks=all``,
``enable.idempotence``): within a run a retried batch is never written twice and a partial batch
never lands. A run reads ``E`` after the previous run's writes settled (a killed process sends
nothing more) and copies from ``base + E``; each acknowledged record's target offset is checked
against ``source - base``, so a second writer into a target partition (another producer, a second
mirror) is reported as :class:`~logbroker.errors.MirrorError` naming the partition and both
offsets, never passed over silently. Group positions are committed only after every record up to
them is acknowledged (the producer is flushed first).

One thing is not kept: a record whose timestamp is 0 (1970-01-01T00:00:00Z) gets the time it is
sent, because librdkafka reads a timestamp of 0 as "now".

**What is refused** (:class:`~logbroker.errors.MirrorError`, before anything is sent to that
partition): a target partition holding records mirror did not write (``E > 0`` without a base);
a target holding more records than the source (``base + E`` past the source's log end offset);
records deleted from the source by retention before they were copied (``base + E`` below the source's
log start: target offsets could no longer equal ``source - base``); and **compacted topics**
(``cleanup.policy`` with ``compact``): compaction leaves offset gaps, and keeping ``source - base``
would need a recorded per-record mapping that group translation depends on. A gap met while reading
any topic is refused the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .. import errors
from ..broker import Broker
from ..storage.config import TopicConfig
from ..groups.offsets import GroupPaths, OffsetStore
from ..storage.topic import Topic
from .connect import client_config, kafka_client

__all__ = ["MIRROR_GROUP", "GroupTranslation", "MirrorReport", "PartitionPlan", "TopicPlan", "Mirror",
           "kafka_configs"]

#: The target consumer group whose committed offset of each target partition is its ``base``.
MIRROR_GROUP = "logbroker-mirror"
#: Topic configs that are logbroker's own and not Kafka's.
_LOCAL_CONFIGS = frozenset({"fsync"})
_READ_CHUNK = 2000
_BASE_REFRESH_S = 600.0
#: Kafka's answers to a commit from outside a group that has members (generation -1, no member id).
_MEMBERS_LIVE = frozenset({"UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "NON_EMPTY_GROUP"})

# librdkafka logs every refused connection; errors reach the caller as exceptions instead.
_client_log = logging.getLogger("logbroker.librdkafka")
_client_log.setLevel(logging.CRITICAL)
_client_log.propagate = False
_client_log.addHandler(logging.NullHandler())


def kafka_configs(config: TopicConfig) -> dict[str, str]:
    """The topic configs to create the target topic with: Kafka's keys whose value is not
    logbroker's default, as strings."""
    default = TopicConfig().to_kafka()
    return {k: str(v) for k, v in config.to_kafka().items() if k not in _LOCAL_CONFIGS and v != default[k]}


@dataclass
class PartitionPlan:
    """One partition's copy: source offsets ``[start, end)`` go to target offsets ``start - base`` on."""

    partition: int
    base: int
    target_end: int  # E, the checkpoint
    source_end: int
    base_recorded: bool  # the target's logbroker-mirror group already holds this base

    @property
    def start(self) -> int:
        return self.base + self.target_end

    @property
    def to_copy(self) -> int:
        return self.source_end - self.start


@dataclass
class TopicPlan:
    topic: str
    partitions: int
    create: bool
    configs: dict[str, str]
    target_partitions: int
    parts: list[PartitionPlan] = field(default_factory=list)
    copied: int = 0

    @property
    def to_copy(self) -> int:
        return sum(p.to_copy for p in self.parts)


@dataclass
class GroupTranslation:
    """A group's committed offsets on one topic: ``{partition: (source offset, target offset)}``."""

    group: str
    topic: str
    offsets: dict[int, tuple[int, int]]
    committed: bool = False  # False: already equal on the target, or a dry run


@dataclass
class MirrorReport:
    """What a run did (or, ``dry_run``, would do): per topic, then per group and topic."""

    topics: list[TopicPlan]
    groups: list[GroupTranslation]
    dry_run: bool = False

    def rows(self) -> list[tuple[str, int, int, int]]:
        """(topic, records copied, partitions, groups translated): the final table."""
        out = []
        for t in self.topics:
            groups = {g.group for g in self.groups if g.topic == t.topic and (g.committed or self.dry_run)}
            out.append((t.topic, t.to_copy if self.dry_run else t.copied, t.partitions, len(groups)))
        return out


class Mirror:
    """One mirror of ``data_dir`` into the cluster at ``bootstrap_servers``. See the module docstring.

    ``on_progress(topic, copied, total)`` hears about each topic's copy as records are acknowledged.
    Not thread-safe; :meth:`run` may be stopped from another thread or a signal handler by setting
    ``stop``.
    """

    def __init__(self, data_dir: str | None, bootstrap_servers: str, topics: Iterable[str] | None = None, *,
                 groups: Iterable[str] | None = None, command_config: str | None = None,
                 timeout_s: float = 10.0, on_progress: Callable[[str, int, int], None] | None = None) -> None:
        self.broker = Broker(data_dir, create=False)
        if not self.broker.exists:
            raise errors.DataDirError(f"data directory {self.broker.data_dir} does not exist")
        self.bootstrap = bootstrap_servers
        self.names = list(topics) if topics else None
        self.groups = list(groups) if groups is not None else None
        self.timeout_s = timeout_s
        self.on_progress = on_progress
        self._ck = kafka_client()
        import confluent_kafka.admin  # noqa: F401 (the submodule, for self._ck.admin)
        self._config = client_config(bootstrap_servers, command_config, logger=_client_log)
        self._admin: Any = None
        self._producer: Any = None
        self._topics: dict[str, Topic] = {}
        self._delivery_error: str | None = None
        self._expected: dict[tuple[str, int], int] = {}
        self._acked: dict[str, int] = {}
        self._based_at = 0.0

    # -- the cluster ------------------------------------------------------------------------------

    def _kafka_error(self, what: str, exc: BaseException) -> errors.ClusterError:
        err = exc.args[0] if exc.args else exc
        name = err.name() if hasattr(err, "name") else type(exc).__name__
        text = err.str() if hasattr(err, "str") else str(exc)
        if name in ("_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN", "_RESOLVE"):
            return errors.ClusterUnreachableError(f"no broker of {self.bootstrap} answered within "
                                                  f"{self.timeout_s:g} s ({what})")
        return errors.ClusterError(f"{what} on {self.bootstrap}: {name}: {text}")

    def _result(self, future: Any, what: str, raw: bool = False) -> Any:
        """The future's result; a client error as ClusterError (``raw``: as the client raised it)."""
        try:
            return future.result(timeout=self.timeout_s)
        except self._ck.KafkaException as exc:
            if raw:
                raise
            raise self._kafka_error(what, exc) from None
        except TimeoutError:
            raise errors.ClusterUnreachableError(f"no broker of {self.bootstrap} answered within "
                                                 f"{self.timeout_s:g} s ({what})") from None

    def _connect(self) -> dict[str, int]:
        """Connect; the partition count of every target topic."""
        if self._admin is None:
            self._admin = self._ck.admin.AdminClient(self._config)
        try:
            meta = self._admin.list_topics(timeout=self.timeout_s)
        except self._ck.KafkaException as exc:
            raise self._kafka_error("listing topics", exc) from None
        return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}

    def _end_offsets(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        if not tps:
            return {}
        TP = self._ck.TopicPartition
        spec = self._ck.admin.OffsetSpec.latest()
        futures = self._admin.list_offsets({TP(t, p): spec for t, p in tps}, request_timeout=self.timeout_s)
        return {(tp.topic, tp.partition): self._result(f, f"the log end offset of {tp.topic}-{tp.partition}").offset
                for tp, f in futures.items()}

    def _group_offsets(self, group: str, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The committed offsets of ``group`` on the target (partitions without one left out)."""
        if not tps:
            return {}
        ck = self._ck
        request = ck.ConsumerGroupTopicPartitions(group, [ck.TopicPartition(t, p) for t, p in tps])
        [future] = self._admin.list_consumer_group_offsets([request], request_timeout=self.timeout_s).values()
        got = self._result(future, f"reading the committed offsets of group {group!r}")
        return {(tp.topic, tp.partition): tp.offset for tp in got.topic_partitions if tp.offset >= 0}

    def _commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit ``offsets`` for ``group`` on the target, which must have no live member there."""
        ck = self._ck
        request = ck.ConsumerGroupTopicPartitions(group, [ck.TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        [future] = self._admin.alter_consumer_group_offsets([request], request_timeout=self.timeout_s).values()
        what = f"committing the offsets of group {group!r}"
        try:
            failed = [(f"on {tp.topic}-{tp.partition}", tp.error) for tp in
                      self._result(future, what, raw=True).topic_partitions if tp.error is not None]
        except ck.KafkaException as exc:
            if exc.args[0].name() not in _MEMBERS_LIVE:
                raise self._kafka_error(what, exc) from None
            failed = [("", exc.args[0])]
        for where, err in failed:
            if err.name() in _MEMBERS_LIVE:
                raise errors.GroupNotEmptyError(
                    f"group {group!r} has live members on {self.bootstrap}: its offsets are translated only while "
                    f"no consumer of it runs there (stop them and run mirror again)", group=group)
            raise errors.ClusterError(f"committing group {group!r} failed {where} on {self.bootstrap}: "
                                      f"{err.name()}: {err.str()}", group=group)

    def _create(self, plan: TopicPlan) -> None:
        new = self._ck.admin.NewTopic(plan.topic, num_partitions=plan.partitions, config=plan.configs)
        [future] = self._admin.create_topics([new], request_timeout=self.timeout_s).values()
        try:
            future.result(timeout=self.timeout_s)
        except self._ck.KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # created meanwhile: checked below
                raise self._kafka_error(f"creating topic {plan.topic!r}", exc) from None
        deadline = time.monotonic() + self.timeout_s
        while self._connect().get(plan.topic, 0) < plan.partitions:  # creation is asynchronous in Kafka
            if time.monotonic() > deadline:
                raise errors.ClusterError(f"topic {plan.topic!r} created on {self.bootstrap} did not show "
                                          f"{plan.partitions} partitions within {self.timeout_s:g} s")
            time.sleep(0.1)

    # -- the source -------------------------------------------------------------------------------

    def _topic(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = self.broker.topic(name)
            if "compact" in topic.config.cleanup_policy:
                raise errors.MirrorError(
                    f"topic {name!r} has cleanup.policy={topic.config.cleanup_policy}: compaction leaves offset "
                    f"gaps that mirror does not reproduce; mirror copies topics with cleanup.policy=delete",
                    topic=name)
        return topic

    def _topic_names(self) -> list[str]:
        return self.names if self.names is not None else self.broker.list_topics()

    def _source_groups(self, names: list[str]) -> dict[tuple[str, str], dict[int, int]]:
        """``{(group, topic): {partition: committed offset}}`` of the selected groups."""
        out = {}
        for name in names:
            topic = self._topic(name)
            for group in self.broker.topic_groups(name):
                if group == MIRROR_GROUP or (self.groups is not None and group not in self.groups):
                    continue  # (a source that was itself a mirror's target keeps its bases there)
                committed = OffsetStore(GroupPaths(topic.path, group), name).read()
                if committed:
                    out[(group, name)] = {p: c.offset for p, c in committed.items()}
        if self.groups is not None:
            found = {g for g, _ in out}
            for group in self.groups:
                if group not in found:
                    raise errors.UnknownGroupError(f"group {group!r} has no committed offsets on the mirrored "
                                                   f"topics ({', '.join(names) or 'none'})", group=group)
        return out

    # -- planning ---------------------------------------------------------------------------------

    def plan(self, names: list[str] | None = None) -> list[TopicPlan]:
        """Connect and work out, for each topic (``names``, else those of this mirror), what is to be
        created and copied. Sends nothing."""
        names = self._topic_names() if names is None else names
        target = self._connect()
        plans = [self._plan_topic(name, target.get(name)) for name in names]
        tps = [(p.topic, i) for p in plans if not p.create for i in range(p.partitions)]
        ends = self._end_offsets(tps)
        bases = self._group_offsets(MIRROR_GROUP, tps)
        for plan in plans:
            topic = self._topic(plan.topic)
            for i in range(plan.partitions):
                reader = topic.reader(i)
                start, end = reader.log_start_offset(), reader.high_watermark()
                e = ends.get((plan.topic, i), 0)
                base = bases.get((plan.topic, i))
                plan.parts.append(self._plan_partition(plan.topic, i, start, end, e, base))
        return plans

    def _plan_topic(self, name: str, target_partitions: int | None) -> TopicPlan:
        topic = self._topic(name)
        if target_partitions is not None and target_partitions < topic.partitions:
            raise errors.MirrorError(
                f"topic {name!r} has {topic.partitions} partitions in the source but {target_partitions} on "
                f"{self.bootstrap}: mirror copies each partition into the same one and never re-partitions; "
                f"add partitions on the cluster (kafka-topics --alter --partitions {topic.partitions})", topic=name)
        return TopicPlan(name, topic.partitions, target_partitions is None, kafka_configs(topic.config),
                         target_partitions or topic.partitions)

    def _plan_partition(self, name: str, partition: int, start: int, end: int, e: int,
                        base: int | None) -> PartitionPlan:
        where = f"{name}-{partition}"
        if e == 0:  # nothing copied yet: the base is the source's log start now
            return PartitionPlan(partition, start, 0, end, base == start)
        if base is None:
            raise errors.MirrorError(
                f"target partition {where} on {self.bootstrap} holds {e} records that mirror did not write "
                f"(no base in group {MIRROR_GROUP!r}); mirror into a new or empty topic", topic=name,
                partition=partition)
        if base + e > end:
            raise errors.MirrorError(
                f"target partition {where} holds {e} records from source offset {base}, past the source's log "
                f"end offset {end}: the target is not a copy of this source", topic=name, partition=partition)
        if base + e < start:
            raise errors.MirrorError(
                f"source partition {where} lost offsets {base + e} to {start - 1} (retention) before they were "
                f"copied: the target can no longer hold source offset - {base}; mirror into a new topic",
                topic=name, partition=partition)
        return PartitionPlan(partition, base, e, end, True)

    # -- running ----------------------------------------------------------------------------------

    def dry_run(self) -> MirrorReport:
        """What :meth:`run` would create, copy and translate; nothing is sent."""
        plans = self.plan()
        translations = []
        for (group, name), committed in sorted(self._source_groups([p.topic for p in plans]).items()):
            bases = {pp.partition: pp.base for pp in next(p for p in plans if p.topic == name).parts}
            translations.append(GroupTranslation(group, name, {i: (c, max(c - bases[i], 0))
                                                               for i, c in sorted(committed.items())}))
        return MirrorReport(plans, translations, dry_run=True)

    def run(self, follow: bool = False, stop: threading.Event | None = None,
            poll_interval_s: float = 0.2) -> MirrorReport:
        """Copy, then translate group offsets; with ``follow`` keep doing both until ``stop`` is set.

        Returns what was done (a stop in the middle of a copy flushes what was sent first).
        """
        stop = stop or threading.Event()
        plans = self.plan()
        self._producer = self._ck.Producer(self._producer_config())
        translations: dict[tuple[str, str], GroupTranslation] = {}
        last_source: dict[tuple[str, str], dict[int, int]] = {}
        try:
            for plan in plans:
                if plan.create:
                    self._create(plan)
            self._record_bases(plans, force=True)
            while True:
                # Commits first, then the log end offsets: every committed offset read is then at or
                # below what this round copies.
                groups = self._source_groups([p.topic for p in plans])
                self._refresh(plans)
                self._copy(plans, stop)
                changed = {k: v for k, v in groups.items() if last_source.get(k) != v}
                last_source.update(self._translate(plans, changed, translations))
                if not follow or stop.wait(poll_interval_s):
                    break
                plans = self._more(plans)
        finally:
            self._close()
        return MirrorReport(plans, sorted(translations.values(), key=lambda g: (g.group, g.topic)))

    def _refresh(self, plans: list[TopicPlan]) -> None:
        """The source's log end offsets now; MirrorError when records were lost before being copied."""
        for plan in plans:
            topic = self._topic(plan.topic)
            for part in plan.parts:
                reader = topic.reader(part.partition)
                part.source_end = reader.high_watermark()
                start = reader.log_start_offset()
                if part.target_end == 0:  # nothing copied yet: begin at the log start of now
                    if part.base != start:
                        part.base, part.base_recorded = start, False
                elif part.start < start:
                    self._plan_partition(plan.topic, part.partition, start, part.source_end, part.target_end,
                                         part.base)  # raises
        self._record_bases(plans)

    def _more(self, plans: list[TopicPlan]) -> list[TopicPlan]:
        """Under ``follow``: partitions added in the source are refused; topics created in the source
        since are added (when no topic was named); the bases are committed again now and then."""
        for plan in plans:
            now = Topic(self.broker.data_dir, plan.topic)
            partitions = now.partitions
            now.close()
            if partitions > plan.target_partitions:
                raise errors.MirrorError(
                    f"topic {plan.topic!r} now has {partitions} partitions in the source but "
                    f"{plan.target_partitions} on {self.bootstrap}: add partitions on the cluster and rerun",
                    topic=plan.topic)
        if self.names is None:
            known = {p.topic for p in plans}
            fresh = [n for n in self.broker.list_topics() if n not in known]
            if fresh:
                added = self.plan(fresh)
                for plan in added:
                    if plan.create:
                        self._create(plan)
                self._record_bases(added, force=True)
                plans = plans + added
        if time.monotonic() - self._based_at > _BASE_REFRESH_S:
            self._record_bases(plans, force=True)
        return plans

    def _producer_config(self) -> dict[str, Any]:
        config = dict(self._config)
        config.update({"enable.idempotence": True, "acks": "all", "linger.ms": 5,
                       "message.timeout.ms": max(int(self.timeout_s * 1000), 30_000)})
        return config

    def _record_bases(self, plans: list[TopicPlan], force: bool = False) -> None:
        """Commit each partition's base in the logbroker-mirror group (before its first record)."""
        offsets = {}
        for plan in plans:
            for part in plan.parts:
                if force or not part.base_recorded:
                    offsets[(plan.topic, part.partition)] = part.base
        if offsets:
            self._commit(MIRROR_GROUP, offsets)
            for plan in plans:
                for part in plan.parts:
                    part.base_recorded = True
        self._based_at = time.monotonic()

    def _copy(self, plans: list[TopicPlan], stop: threading.Event) -> None:
        producer = self._producer
        produce, poll = producer.produce, producer.poll
        for plan in plans:
            name = plan.topic
            topic = self._topic(name)
            total = plan.to_copy + plan.copied
            self._acked[name] = plan.copied
            for part in plan.parts:
                if part.to_copy <= 0:
                    continue
                key = (name, part.partition)
                self._expected[key] = part.target_end
                reader = topic.reader(part.partition)
                offset = part.start
                while offset < part.source_end and not stop.is_set():
                    try:
                        records = reader.read(offset, min(_READ_CHUNK, part.source_end - offset), raw=True)
                    except errors.OffsetOutOfRangeError:
                        self._plan_partition(name, part.partition, reader.log_start_offset(), part.source_end,
                                             part.target_end, part.base)  # raises: records lost uncopied
                        raise
                    if not records:
                        break
                    for record in records:
                        if record.offset != offset:
                            raise errors.MirrorError(
                                f"source partition {name}-{part.partition} has no offset {offset} (the next is "
                                f"{record.offset}): mirror copies only logs without offset gaps", topic=name,
                                partition=part.partition)
                        k, headers, value = record.kafka_fields()
                        while True:
                            try:
                                produce(name, value, k, partition=part.partition, on_delivery=self._delivered,
                                        timestamp=record.timestamp, headers=headers)
                                break
                            except BufferError:  # the producer's queue is full: let it send
                                poll(0.05)
                        offset += 1
                    poll(0)
                    self._check_delivery()
                    part.target_end = offset - part.base
                    if self.on_progress is not None:
                        self.on_progress(name, self._acked[name], total)
            if stop.is_set():
                # A stop takes effect now: records still queued in the client are dropped, not sent
                # (those in flight are acknowledged or not; the next run starts at the target's end).
                producer.purge(in_queue=True, in_flight=False)
            self._flush()
            for part in plan.parts:  # what was acknowledged: the target's log end offsets now
                part.target_end = self._expected.get((name, part.partition), part.target_end)
            plan.copied = self._acked[name]
            if self.on_progress is not None:
                self.on_progress(name, plan.copied, total)
        self._flush()

    def _delivered(self, err: Any, msg: Any) -> None:
        """librdkafka's delivery report: count it, and check it landed at ``source - base``."""
        if err is not None:
            if err.code() == self._ck.KafkaError._PURGE_QUEUE:  # dropped on a stop, never sent
                return
            if self._delivery_error is None:
                self._delivery_error = (f"sending to {msg.topic()}-{msg.partition()} on {self.bootstrap} failed: "
                                        f"{err.name()}: {err.str()}")
            return
        key = (msg.topic(), msg.partition())
        expected = self._expected[key]
        if msg.offset() != expected and self._delivery_error is None:
            self._delivery_error = (f"target partition {key[0]}-{key[1]} took a mirrored record at offset "
                                    f"{msg.offset()}, not {expected}: another producer writes into it")
        self._expected[key] = msg.offset() + 1
        self._acked[key[0]] += 1

    def _check_delivery(self) -> None:
        if self._delivery_error is not None:
            cls = errors.MirrorError if "another producer" in self._delivery_error else errors.ClusterError
            raise cls(self._delivery_error)

    def _flush(self) -> None:
        left = self._producer.flush(max(self.timeout_s, 30.0))
        self._check_delivery()
        if left:
            raise errors.ClusterUnreachableError(f"{left} records sent to {self.bootstrap} were not acknowledged "
                                                 f"within {max(self.timeout_s, 30.0):g} s")

    def _translate(self, plans: list[TopicPlan], changed: dict[tuple[str, str], dict[int, int]],
                   done: dict[tuple[str, str], GroupTranslation]) -> dict[tuple[str, str], dict[int, int]]:
        """Commit the changed groups' translated offsets on the target (their records are flushed);
        returns the source commits translated. A commit past what is copied so far (a copy stopped
        half-way) waits for a later round."""
        parts = {(p.topic, part.partition): part for p in plans for part in p.parts}
        by_group: dict[str, list[GroupTranslation]] = {}
        translated = {}
        for (group, name), committed in sorted(changed.items()):
            offsets = {i: (c, max(c - parts[(name, i)].base, 0)) for i, c in sorted(committed.items())}
            if all(t <= parts[(name, i)].target_end for i, (_, t) in offsets.items()):
                by_group.setdefault(group, []).append(GroupTranslation(group, name, offsets))
                translated[(group, name)] = committed
        for group, items in by_group.items():
            wanted = {(g.topic, i): t for g in items for i, (_, t) in g.offsets.items()}
            current = self._group_offsets(group, list(wanted))
            if any(current.get(tp) != o for tp, o in wanted.items()):
                self._commit(group, wanted)
                for g in items:
                    g.committed = True
            for g in items:
                old = done.get((g.group, g.topic))
                g.committed = g.committed or (old is not None and old.committed)
                done[(g.group, g.topic)] = g
        return translated

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None
        for topic in self._topics.values():
            topic.close()
        self._topics.clear()
