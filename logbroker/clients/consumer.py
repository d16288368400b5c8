"""The consumer: Kafka's ``subscribe`` / ``assign`` / ``poll`` / ``commit`` / ``seek`` over plain files.

A :class:`Consumer` reads partitions through :class:`~logbroker.storage.reader.PartitionReader` (lock-free,
up to the high watermark). With a ``group_id`` and :meth:`Consumer.subscribe` it joins the group of
each topic (:mod:`logbroker.groups.membership`): partitions are split among live members, positions start at the
committed offsets (:mod:`logbroker.groups.offsets`) and commits are fenced. Without a group nothing is
committed and every partition of the subscribed topics is read.

Positions and commits follow Kafka: the position is the next offset :meth:`poll` returns; a commit
stores positions (the next offset to read). With ``enable_auto_commit`` the positions of records
already returned are committed inside :meth:`poll` every ``auto_commit_interval_ms``, before a
partition is handed to another member, and on :meth:`close` — at-least-once: a record is committed
only once the application asked for more. ``auto_offset_reset`` (``latest``, ``earliest``, ``none``)
applies when there is no committed offset and when the position is out of range (below the log start
offset after retention, or past the log end); a reset that skips records is logged as a warning.

Waiting for records polls each partition's ``high-watermark`` file (one ``pread``, compared with the
bytes seen last: :class:`~logbroker.clients.partition_watch.PartitionWatch`) with an adaptive sleep:
0.5 ms after data, growing to 5 ms while idle.

A deleted topic (FORMAT.md, "Topic identity"): every poll checks that each topic is still the one
this consumer opened (one ``stat``; the open topics are a
:class:`~logbroker.clients.consumer_topics.ConsumerTopics`). When it was deleted, the consumer drops its partitions (and its
group membership, which went with the topic) and logs a warning; when a topic of that name exists
again, it follows it as Kafka does: a subscription joins the new topic's group, a manual assignment
takes the partitions that exist, and positions start from ``auto_offset_reset`` (the new topic has no
committed offsets). With ``auto_offset_reset="none"`` there is no position to start from, so
:meth:`poll` raises TopicDeletedError instead. Nothing of the deleted topic is returned after its
deletion was seen, and nothing of a new topic before the consumer follows it.

Not thread-safe; the group's heartbeat is written from :meth:`poll`, so ``session.timeout.ms`` also
bounds the time between two polls (Kafka's ``max.poll.interval.ms``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from typing import Any, Iterable, Iterator, NamedTuple

from ..storage.datadir import resolve_data_dir
from ..errors import (CommitFailedError, GroupError, InvalidConfigError, OffsetOutOfRangeError,
                     TopicDeletedError, UnknownPartitionError)
from ..groups.membership import DEFAULT_SESSION_TIMEOUT_MS, GroupMember, refuse_if_live
from ..groups.offsets import CommittedOffset, GroupPaths, OffsetStore
from ..storage.reader import PartitionReader
from ..storage.consumer_record import Record, Records
from ..storage.topic import Topic
from .consumer_topics import ConsumerTopics
from .partition_watch import PartitionWatch

__all__ = ["Consumer", "TopicPartition", "OffsetAndTimestamp", "RESET_POLICIES"]

RESET_POLICIES = ("latest", "earliest", "none")
MIN_SESSION_TIMEOUT_MS = 100
_CLIENT_ID = re.compile(r"[a-zA-Z0-9._-]{1,64}")
_MIN_SLEEP = 0.0005
_MAX_SLEEP = 0.005
_IDLE_CAP = 0.02

log = logging.getLogger("logbroker")


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int


class Consumer:
    """Kafka's consumer over a data directory. See the module docstring for the semantics.

    Records that Kafka clients produced through ``logbroker serve`` come back as JSON where their
    value was canonical compact JSON, otherwise as ``bytes`` (``None`` for a null value); a key
    that is not UTF-8 as ``bytes`` (FORMAT.md, "Bytes keys, values and headers").
    """

    def __init__(self, *topics: str, data_dir: str | os.PathLike | None = None, group_id: str | None = None,
                 auto_offset_reset: str = "latest", enable_auto_commit: bool = True,
                 auto_commit_interval_ms: int = 5000, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 max_poll_records: int = 500, consumer_timeout_ms: float | None = None,
                 client_id: str = "consumer") -> None:
        if auto_offset_reset not in RESET_POLICIES:
            raise InvalidConfigError(f"auto_offset_reset must be one of {', '.join(RESET_POLICIES)}, "
                                     f"not {auto_offset_reset!r}")
        if max_poll_records < 1 or session_timeout_ms < MIN_SESSION_TIMEOUT_MS or auto_commit_interval_ms < 0:
            raise InvalidConfigError(f"max_poll_records must be >= 1, session_timeout_ms >= {MIN_SESSION_TIMEOUT_MS} "
                                     f"(heartbeats come every 20 ms at the most), auto_commit_interval_ms >= 0")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise InvalidConfigError(f"client_id {client_id!r} must be 1 to 64 letters, digits, '.', '_' or '-' "
                                     f"(it names the member's file)")
        self.data_dir = resolve_data_dir(data_dir, create=False)
        self.group_id = group_id
        if group_id is not None:
            GroupPaths(self.data_dir, group_id)  # validates the name
        self.auto_offset_reset = auto_offset_reset
        self.enable_auto_commit = enable_auto_commit and group_id is not None
        self.auto_commit_interval_ms = auto_commit_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.max_poll_records = max_poll_records
        self.consumer_timeout_ms = consumer_timeout_ms
        self.member_id = GroupMember.new_member_id(client_id)
        self.client_id = client_id
        self._topics = ConsumerTopics(self.data_dir)
        self._members: dict[str, GroupMember] = {}
        self._subscription: list[str] = []
        self._manual: list[TopicPartition] | None = None
        self._readers: dict[TopicPartition, PartitionReader] = {}
        self._watches: dict[TopicPartition, PartitionWatch] = {}
        self._side_readers: dict[TopicPartition, PartitionReader] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._buffer: deque[list] = deque()  # [partition, records, next index] chunks for iteration
        self._sleep = _MIN_SLEEP
        self._scan_cost = 0.0
        self._rr = 0
        self._next_auto_commit = time.monotonic() + auto_commit_interval_ms / 1000
        self._closed = False
        if topics:
            self.subscribe(list(topics))

    # -- assignment ---------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        """Read ``topics``: as a member of ``group_id`` when given, else every partition."""
        if self._manual is not None:
            raise GroupError("subscribe() after assign(): a consumer uses one or the other")
        topics = list(dict.fromkeys(topics))
        for name in topics:
            self._topic(name)
        for name in [t for t in self._subscription if t not in topics]:
            self._drop_topic(name)
        for name in topics:
            if name in self._subscription:
                continue
            self._subscription.append(name)
            self._start_topic(name)
        self._maintain(force=True)

    def _start_topic(self, name: str) -> None:
        """Read a subscribed topic: every partition, or as a member of the group."""
        t = self._topic(name)
        if self.group_id is None:
            for p in range(t.partitions):
                self._add(TopicPartition(name, p))
            return
        member = GroupMember(GroupPaths(t.path, self.group_id, t.identity), name,
                             lambda n=name: self._topics.partition_count(n), self.member_id,
                             self.session_timeout_ms, self.client_id,
                             on_revoke=lambda ps, n=name: self._on_revoke(n, ps))
        member.join()
        self._members[name] = member
        if not t.identity.current():
            raise t.identity.deleted_error()  # joined a topic created since: _maintain follows it

    def unsubscribe(self) -> None:
        for name in list(self._subscription):
            self._drop_topic(name)

    def subscription(self) -> set[str]:
        return set(self._subscription)

    def assign(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Read exactly these partitions, outside any group membership (Kafka's manual assignment)."""
        if self._subscription:
            raise GroupError("assign() after subscribe(): a consumer uses one or the other")
        wanted = [TopicPartition(t, p) for t, p in partitions]
        for tp in wanted:
            self._topic(tp.topic).check_partition(tp.partition)
        for tp in list(self._readers):
            if tp not in wanted:
                self._remove(tp)
        self._manual = wanted
        for tp in wanted:
            self._add(tp)

    def assignment(self) -> set[TopicPartition]:
        return set(self._readers)

    # -- reading ------------------------------------------------------------------------------

    def poll(self, timeout_ms: float = 0, max_records: int | None = None) -> dict[TopicPartition, Records]:
        """Records by partition, waiting up to ``timeout_ms`` for the first; positions move past them.

        Each partition's records come as a :class:`~logbroker.storage.consumer_record.Records`, a read-only
        sequence of :class:`~logbroker.storage.consumer_record.Record` in offset order (iterate it, index it,
        ``len()`` it).
        """
        self._buffer.clear()
        out: dict[TopicPartition, Records] = {}
        for tp, recs in self._poll_records(timeout_ms, max_records or self.max_poll_records):
            have = out.get(tp)
            out[tp] = recs if have is None else have + recs
            self._positions[tp] = recs.next_offset
        return out

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        """The next record, blocking (up to ``consumer_timeout_ms`` when set, then StopIteration)."""
        buffer = self._buffer
        if not buffer:
            deadline = None if self.consumer_timeout_ms is None else time.monotonic() + self.consumer_timeout_ms / 1000
            while not buffer:
                wait = 100.0 if deadline is None else max(0.0, (deadline - time.monotonic()) * 1000)
                buffer.extend([tp, iter(recs), len(recs)] for tp, recs in self._poll_records(wait, self.max_poll_records))
                if not buffer and deadline is not None and time.monotonic() >= deadline:
                    raise StopIteration
        chunk = buffer[0]  # [partition, an iterator over its records, how many are left]
        tp, records, left = chunk
        record = next(records)
        if left > 1:
            chunk[2] = left - 1
        else:
            buffer.popleft()
        self._positions[tp] = record.offset + 1
        return record

    def _poll_records(self, timeout_ms: float, max_records: int) -> list[tuple[TopicPartition, Records]]:
        if self._closed:
            raise GroupError("poll() on a closed consumer")
        deadline = time.monotonic() + max(0.0, timeout_ms) / 1000
        while True:
            self._maintain()
            began = time.perf_counter()
            chunks = self._fetch(max_records)
            if chunks and any(m.expired() for m in self._members.values()):
                # Stalled (SIGSTOP, a long pause) between the membership check and the fetch: these
                # partitions may belong to another member by now, so hand nothing of them out.
                stale = {topic for topic, m in self._members.items() if m.expired()}
                chunks = [(tp, recs) for tp, recs in chunks if tp.topic not in stale]
            if chunks:
                self._sleep = _MIN_SLEEP
                return chunks
            # Idle: back off, and keep the scans of many partitions under ~3% of a core.
            self._scan_cost = 0.8 * self._scan_cost + 0.2 * (time.perf_counter() - began)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(self._sleep, remaining))
            self._sleep = min(self._sleep * 1.25, max(_MAX_SLEEP, min(_IDLE_CAP, 35 * self._scan_cost)))

    def _fetch(self, max_records: int) -> list[tuple[TopicPartition, Records]]:
        """Records of the partitions with data, as (partition, records) runs, at most ``max_records``."""
        tps = list(self._readers)
        out: list[tuple[TopicPartition, Records]] = []
        if not tps:
            return out
        count = 0
        self._rr = (self._rr + 1) % len(tps)
        positions, watches = self._positions, self._watches
        for tp in tps[self._rr:] + tps[:self._rr]:
            position = positions.get(tp)
            if position is None:
                try:
                    position = self.position(*tp)
                except TopicDeletedError:
                    self._follow(tp.topic)
                    break
            watch = watches[tp]
            if position >= watch.high_watermark and not watch.may_have_data(position):
                if 0 <= watch.high_watermark < position:
                    # Beyond the log end (a seek too far): the reset policy decides, as in Kafka.
                    self._reset(tp, position, "it is beyond the log end offset")
                continue  # the idle path: one pread per partition
            reader = self._readers[tp]
            try:
                start = reader.checkpointed_log_start()  # one small read, only with data
                if position < start:
                    position = self._reset(tp, position, f"it is below the log start offset {start} (removed by retention)")
                got = reader.read(position, max_records - count)
            except OffsetOutOfRangeError as exc:
                self._reset(tp, position, f"it is out of range ({exc})")
                continue
            except (TopicDeletedError, FileNotFoundError, NotADirectoryError):
                if self._topics.is_current(tp.topic):
                    raise
                self._follow(tp.topic)
                break  # the partitions listed above changed
            if got:
                out.append((tp, got))
                count += len(got)
            if count >= max_records:
                break
        return out

    # -- positions ----------------------------------------------------------------------------

    def position(self, topic: str, partition: int) -> int:
        """The next offset poll() returns for this partition (resolved from the commit or the reset)."""
        tp = self._assigned(topic, partition)
        position = self._positions.get(tp)
        if position is None:
            committed = self.committed(topic, partition) if self.group_id else None
            if committed is None:
                position = self._reset(tp, None, "there is no committed offset")
            else:
                reader = self._readers[tp]
                start, end = reader.log_start_offset(), reader.high_watermark()
                position = committed
                if not start <= committed <= end:
                    where = "below the log start offset" if committed < start else "beyond the log end offset"
                    position = self._reset(tp, committed, f"the committed offset {committed} is {where} "
                                                          f"(log start {start}, log end {end})")
                self._positions[tp] = position
        return position

    def _reset(self, tp: TopicPartition, old: int | None, why: str) -> int:
        reader = self._readers[tp]
        if self.auto_offset_reset == "none":
            raise OffsetOutOfRangeError(
                f"no valid position for {tp.topic}-{tp.partition}: {why}, and auto_offset_reset is 'none'",
                topic=tp.topic, partition=tp.partition, offset=old, log_start_offset=reader.log_start_offset(),
                log_end_offset=reader.high_watermark())
        new = reader.log_start_offset() if self.auto_offset_reset == "earliest" else reader.high_watermark()
        if old is not None and new > old:
            log.warning("topic %s partition %d: resetting offset %d to %d (auto_offset_reset=%s) because %s; "
                        "%d records are skipped", tp.topic, tp.partition, old, new, self.auto_offset_reset, why,
                        new - old)
        elif old is not None:
            log.warning("topic %s partition %d: resetting offset %d to %d (auto_offset_reset=%s) because %s",
                        tp.topic, tp.partition, old, new, self.auto_offset_reset, why)
        self._positions[tp] = new
        self._buffer.clear()
        return new

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Make ``offset`` the next one poll() returns (out of range: the reset policy applies at fetch)."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"seek offset must be a non-negative integer, got {offset!r}")
        self._positions[self._assigned(topic, partition)] = offset
        self._buffer.clear()

    def seek_to_beginning(self, *partitions: tuple[str, int]) -> None:
        for tp in partitions or list(self._readers):
            self.seek(*tp, self._reader(*tp).log_start_offset())

    def seek_to_end(self, *partitions: tuple[str, int]) -> None:
        for tp in partitions or list(self._readers):
            self.seek(*tp, self._reader(*tp).high_watermark())

    def seek_to_timestamp(self, timestamp_ms: int, *partitions: tuple[str, int]) -> None:
        """Seek to the first record with a timestamp >= ``timestamp_ms`` (the log end when none is)."""
        for tp in partitions or list(self._readers):
            found = self._reader(*tp).offset_for_timestamp(timestamp_ms)
            self.seek(*tp, found if found is not None else self._reader(*tp).high_watermark())

    def offsets_for_times(self, timestamps: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Kafka's lookup: per partition, the first offset whose timestamp is >= the given one."""
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for (topic, partition), ts in timestamps.items():
            reader = self._reader(topic, partition)
            offset = reader.offset_for_timestamp(ts)
            out[TopicPartition(topic, partition)] = None if offset is None else OffsetAndTimestamp(
                offset, reader.read(offset, 1)[0].timestamp)
        return out

    def beginning_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._reader(*tp).log_start_offset() for tp in partitions}

    def end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._reader(*tp).high_watermark() for tp in partitions}

    # -- commits ------------------------------------------------------------------------------

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset for the partition (None without a group or a commit)."""
        if self.group_id is None:
            return None
        t = self._topic(topic)
        return OffsetStore(GroupPaths(t.path, self.group_id, t.identity), topic).committed(partition)

    def commit(self, offsets: dict[tuple[str, int], Any] | None = None) -> None:
        """Commit ``offsets`` (default: the current positions) synchronously and durably.

        Raises CommitFailedError when a partition is no longer ours (the group moved it on).
        """
        if self.group_id is None:
            raise GroupError("commit() needs a group_id")
        if offsets is None:
            offsets = {tp: p for tp, p in self._positions.items() if tp in self._readers}
        by_topic: dict[str, dict[int, int]] = {}
        for (topic, partition), value in offsets.items():
            offset = getattr(value, "offset", value)
            end = self._reader(topic, partition).high_watermark()
            if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= end:
                raise OffsetOutOfRangeError(f"cannot commit offset {offset!r} for {topic}-{partition}: the log "
                                            f"end offset is {end}", topic=topic, partition=partition, offset=offset)
            by_topic.setdefault(topic, {})[partition] = offset
        for topic, parts in by_topic.items():
            member = self._members.get(topic)
            if member is not None:
                member.commit(parts)
            else:
                self._commit_unmanaged(topic, parts)

    def _commit_unmanaged(self, topic: str, parts: dict[int, int]) -> None:
        """A commit from a manually assigned consumer: allowed only while the group has no live member."""
        t = self._topic(topic)
        paths = GroupPaths(t.path, self.group_id, t.identity)
        paths.ensure()
        with paths.locked():
            refuse_if_live(paths, lambda live: CommitFailedError(
                f"cannot commit for manually assigned partitions of {topic}: group {self.group_id!r} has live "
                f"members {live}", topic=topic))
            now = int(time.time() * 1000)
            OffsetStore(paths, topic).commit({p: CommittedOffset(o, 0, self.member_id, now) for p, o in parts.items()})

    def _on_revoke(self, topic: str, partitions: list[int]) -> None:
        if self.enable_auto_commit:
            offsets = {p: self._positions[TopicPartition(topic, p)] for p in partitions
                       if TopicPartition(topic, p) in self._positions}
            try:
                self._members[topic].commit(offsets)
            except (CommitFailedError, TopicDeletedError) as exc:
                log.warning("%s", exc)
        for p in partitions:
            self._remove(TopicPartition(topic, p))

    # -- group upkeep -------------------------------------------------------------------------

    def _maintain(self, force: bool = False) -> None:
        for name in self._topics.deleted():
            self._follow(name)
        if self._topics.looking:
            self._look_for_recreated()
        for topic, member in list(self._members.items()):
            try:
                revoked, lost, acquired = member.check(force)
            except (TopicDeletedError, FileNotFoundError, NotADirectoryError):
                if self._topics.is_current(topic):
                    raise
                self._follow(topic)
                continue
            for p in lost:
                self._remove(TopicPartition(topic, p))
            for p in acquired:
                self._add(TopicPartition(topic, p))
            if revoked or lost or acquired:
                self._buffer.clear()
        if self.enable_auto_commit and time.monotonic() >= self._next_auto_commit:
            self._next_auto_commit = time.monotonic() + self.auto_commit_interval_ms / 1000
            try:
                self.commit()
            except (CommitFailedError, TopicDeletedError) as exc:
                log.warning("auto-commit failed: %s", exc)

    def _follow(self, name: str) -> None:
        """The topic ``name`` this consumer opened was deleted: drop it, and follow a re-creation."""
        t = self._topics.forget(name)
        gone = t.identity.deleted_error()
        self._forget(name)
        t.close()
        if self.auto_offset_reset == "none":
            raise TopicDeletedError(f"{gone}; auto_offset_reset is 'none', so there is no position to follow "
                                    f"a re-created topic from", topic=name, partition=None, topic_id=t.topic_id)
        log.warning("%s; its partitions are dropped, and a topic created again under that name is read "
                    "from auto_offset_reset=%s", gone, self.auto_offset_reset)
        self._topics.look_for(name)
        self._look_for_recreated()

    def _forget(self, name: str) -> None:
        """Let go of everything of a deleted topic, touching none of its files."""
        member = self._members.pop(name, None)
        if member is not None:
            member.abandon()
        for tps in (self._readers, self._side_readers):
            for tp in [tp for tp in tps if tp.topic == name]:
                tps.pop(tp).close()
                watch = self._watches.pop(tp, None)
                if watch is not None:
                    watch.close()
                self._positions.pop(tp, None)
        self._buffer.clear()

    def _look_for_recreated(self) -> None:
        for name, t in self._topics.recreated():
            log.warning("topic %r exists again (topic id %s); following it from auto_offset_reset=%s",
                        name, t.topic_id, self.auto_offset_reset)
            if name in self._subscription:
                try:
                    self._start_topic(name)
                except TopicDeletedError:
                    self._follow(name)  # deleted once more meanwhile
            elif self._manual is not None:
                for tp in self._manual:
                    if tp.topic == name and tp.partition < t.partitions:
                        self._add(tp)

    def close(self, autocommit: bool = True) -> None:
        """Commit (with auto-commit), leave the groups and close every file."""
        if self._closed:
            return
        try:
            if autocommit and self.enable_auto_commit and self._members:
                try:
                    # As Kafka, commit the position of every assigned partition, polled yet or not: a
                    # group that started --from-beginning must not come back at "latest" on the others.
                    for tp in list(self._readers):
                        try:
                            self.position(*tp)
                        except OffsetOutOfRangeError:
                            pass  # auto_offset_reset "none": nothing to commit for it
                    self.commit()
                except (CommitFailedError, TopicDeletedError) as exc:
                    log.warning("commit on close failed: %s", exc)
        finally:
            self._closed = True
            for name in list(self._subscription):
                self._drop_topic(name)
            for tp in list(self._readers):
                self._remove(tp)
            for reader in self._side_readers.values():
                reader.close()
            self._side_readers.clear()
            self._topics.close()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        # Leaving the block by an exception: the records being handled were not processed, so
        # they must not be committed (at-least-once); a clean exit commits as close() does.
        self.close(autocommit=exc_type is None)

    # -- internals ----------------------------------------------------------------------------

    def topic(self, name: str) -> Topic:
        """The :class:`Topic` this consumer reads ``name`` through (opened on first use;
        UnknownTopicError when it does not exist)."""
        return self._topic(name)

    def _topic(self, name: str) -> Topic:
        return self._topics.get(name)

    def _drop_topic(self, name: str) -> None:
        member = self._members.get(name)
        if member is not None:
            if not self._closed:
                # Unsubscribing hands the partitions back: commit them first, as a rebalance does.
                self._on_revoke(name, member.owned)
            del self._members[name]
            member.leave()
        for tp in [tp for tp in self._readers if tp.topic == name]:
            self._remove(tp)
        self._subscription.remove(name)
        self._topics.stop_looking(name)

    def _add(self, tp: TopicPartition) -> None:
        if tp not in self._readers:
            self._readers[tp] = self._topic(tp.topic).reader(tp.partition)
            self._watches[tp] = PartitionWatch(self._readers[tp].directory)
            self._positions.pop(tp, None)

    def _remove(self, tp: TopicPartition) -> None:
        reader = self._readers.pop(tp, None)
        if reader is not None:
            reader.close()
            self._watches.pop(tp).close()
        self._positions.pop(tp, None)

    def _assigned(self, topic: str, partition: int) -> TopicPartition:
        tp = TopicPartition(topic, partition)
        if tp not in self._readers:
            raise UnknownPartitionError(f"partition {topic}-{partition} is not assigned to this consumer",
                                        topic=topic, partition=partition)
        return tp

    def _reader(self, topic: str, partition: int) -> PartitionReader:
        tp = TopicPartition(topic, partition)
        reader = self._readers.get(tp) or self._side_readers.get(tp)
        if reader is None:  # a partition we do not read (offset lookups): kept until close()
            reader = self._side_readers[tp] = self._topic(topic).reader(partition)
        return reader

