"""The facade over a data directory: what the CLI and a Python user call first.

A :class:`Broker` is not a server: it is a handle on a directory. Any number of them, in any number
of processes, may be open on the same directory at once; all coordination goes through the files
and their locks. ``Broker().list_topics()`` in a fresh process sees what every other process wrote.

:func:`republish` appends records (e.g. from :func:`~logbroker.groups.admin.replay`) to another topic.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any, Callable, Iterable, Iterator

from .errors import CorruptionError, TopicExistsError, UnsafePathError
from .groups import admin as group_admin
from .groups.admin import describe_group, list_groups
from .groups.membership import scan_members
from .groups.offsets import GroupPaths, OffsetStore, topic_groups
from .storage.config import DEFAULT_MAX_BLOCK_MS, DEFAULT_PARTITIONS, check_max_block_ms
from .storage.consumer_record import Record
from .storage.datadir import data_dir_path, resolve_data_dir
from .storage.log import RecoveryReport, RetentionReport
from .storage.topic import Topic, finish_deletions, list_topics

__all__ = ["Broker", "GroupAdmin", "republish"]

log = logging.getLogger("logbroker")

class Broker:
    """A handle on one data directory.

    With ``create`` (the default) a missing data directory is created (``created`` tells whether
    this call did). Without it nothing is ever created: a missing directory reads as one holding no
    topics (``exists`` is false), which is what read-only commands want. ``max_block_ms``: how long
    retention and recovery wait for a partition lock another process holds (Kafka's max.block.ms).
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, *, create: bool = True,
                 max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS) -> None:
        path = data_dir_path(data_dir)
        self.created = create and not os.path.lexists(path)
        self.exists = create or os.path.lexists(path)
        self.data_dir = resolve_data_dir(path, create=True) if self.exists else path
        self.max_block_ms = None if max_block_ms is None else check_max_block_ms(max_block_ms)

    # -- topics -------------------------------------------------------------------------------

    def list_topics(self) -> list[str]:
        return list_topics(self.data_dir) if self.exists else []

    def topic(self, name: str) -> Topic:
        return Topic(self.data_dir, name, self.max_block_ms)

    def create_topic(self, name: str, partitions: int = DEFAULT_PARTITIONS,
                     config: dict[str, Any] | None = None, exist_ok: bool = False) -> Topic:
        """Create ``name``; TopicExistsError when it exists, unless ``exist_ok`` (kafka-topics'
        ``--if-not-exists``): then the existing topic is returned unchanged, whatever its partitions
        and config."""
        try:
            return Topic.create(self.data_dir, name, partitions, config)
        except TopicExistsError:
            if not exist_ok:
                raise
            return self.topic(name)

    def delete_topic(self, name: str) -> None:
        self.topic(name).delete()

    def alter_topic(self, name: str, config: dict[str, Any] | None = None,
                    partitions: int | None = None) -> Topic:
        return self.topic(name).alter(config, partitions)

    def describe_topic(self, name: str) -> dict[str, Any]:
        """Partitions with log start/end offsets, segments and sizes, and the topic's config."""
        t = self.topic(name)
        parts = []
        for p in range(t.partitions):
            reader = t.reader(p)
            try:
                state = reader.state()
                log_start = reader.log_start_offset()
                segments = []
                from .storage.segment import list_segments, log_name
                for base in list_segments(reader.directory):
                    path = os.path.join(reader.directory, log_name(base))
                    try:
                        st = os.lstat(path)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        raise UnsafePathError(f"segment file {path} is a symbolic link; logbroker refuses "
                                              f"to follow it", path=path)
                    size = st.st_size
                    segments.append({"base_offset": base, "size": size, "file": log_name(base)})
            finally:
                reader.close()
            parts.append({
                "partition": p,
                "log_start_offset": log_start,
                "log_end_offset": state.high_watermark,
                "records": state.high_watermark - log_start,
                "size": sum(s["size"] for s in segments),
                "segments": segments,
            })
        return {"topic": name, "topic_id": t.topic_id, "partitions": t.partitions, "config": t.config.to_kafka(),
                "partition_details": parts}

    def get_topic_stats(self, name: str) -> dict[str, Any]:
        """A topic at a glance (the tutorial's call): partitions, records retained, bytes, groups,
        live consumers.

        ``queue_size`` is the records retained (log end minus log start, over the partitions): a log
        is not a queue, reading removes nothing, so it is what any new group could still read.
        ``consumer_count`` counts the live group members reading the topic; consumers without a
        group leave no trace in the files and are not counted.
        """
        info = self.describe_topic(name)
        details = info["partition_details"]
        groups = {}
        for group in self.topic_groups(name):
            groups[group] = sum(m.live for m in scan_members(GroupPaths(os.path.join(self.data_dir, name), group)))
        records = sum(p["records"] for p in details)
        return {"topic": name, "partitions": info["partitions"], "records": records, "queue_size": records,
                "log_end_offsets": {p["partition"]: p["log_end_offset"] for p in details},
                "size": sum(p["size"] for p in details), "groups": sorted(groups),
                "consumer_count": sum(groups.values()), "status": "active"}

    def topic_groups(self, topic: str) -> list[str]:
        """The consumer groups with state on ``topic``, sorted."""
        return topic_groups(os.path.join(self.data_dir, topic))

    # -- groups -------------------------------------------------------------------------------

    def list_groups(self) -> list[str]:
        """Every consumer group with state on some topic, sorted (``logbroker groups list``)."""
        return list_groups(self.data_dir)

    def describe_group(self, group: str) -> list[Any]:
        """One :class:`~logbroker.groups.admin.PartitionLag` per partition the group has state on: committed
        offset, log end offset, lag and owner (``logbroker groups describe``)."""
        return describe_group(self.data_dir, group)

    # -- clients ------------------------------------------------------------------------------

    def producer(self, **kwargs: Any):
        from .clients.producer import Producer  # loaded on use: topics and groups commands need no writer
        return Producer(self.data_dir, **kwargs)

    # -- maintenance --------------------------------------------------------------------------

    def apply_retention(self, topic: str | None = None, dry_run: bool = False,
                        now: int | None = None) -> list[RetentionReport]:
        """Run retention on every partition of ``topic`` (default: every topic)."""
        return self._each_log(topic, lambda log: log.apply_retention(now=now, dry_run=dry_run))

    def compact(self, topic: str | None = None, dry_run: bool = False, now: int | None = None,
                force: bool = False) -> list:
        """One cleaning pass (:mod:`logbroker.storage.cleaner`) on every partition of ``topic``, or of every
        topic whose ``cleanup.policy`` includes ``compact``; a list of CleaningReport."""
        from .storage.cleaner import clean_partition
        if topic is None:
            names = [n for n in self.list_topics() if self.topic(n).config.compact]
        else:
            names = [topic]
        reports = []
        for name in names:
            reports.extend(self._each_log(name, lambda log: clean_partition(log, now=now, dry_run=dry_run,
                                                                            force=force)))
        return reports

    def delete_records(self, offsets: list[tuple[str, int, int]]) -> list[RetentionReport]:
        """Kafka's DeleteRecords: for each ``(topic, partition, before_offset)`` advance the log start
        offset (``-1``: to the high watermark) and delete the segments wholly below it. Every
        topic and partition is checked before anything changes."""
        topics = {}
        for name, partition, _offset in offsets:
            t = topics.get(name) or topics.setdefault(name, self.topic(name))
            t.check_partition(partition)
        try:
            return [topics[name].log(p).delete_records(offset) for name, p, offset in offsets]
        finally:
            for t in topics.values():
                t.close()

    def recover(self, topic: str | None = None) -> list[RecoveryReport]:
        """Run a full recovery on every partition of ``topic`` (default: every topic), after
        finishing the deletions that stopped half-way, then repair the committed offsets of its
        groups. Damage found and left alone is in each report's ``problems`` (with the command that
        gets out of it), never raised, so every partition is seen."""
        for entry in finish_deletions(self.data_dir, topic):
            log.warning("finished the deletion left in %s", os.path.join(self.data_dir, entry))
        reports = self._each_log(topic, _recover_one)
        for name in [topic] if topic is not None else self.list_topics():
            reports.extend(_recover_groups(self.topic(name)))
        return reports

    def _each_log(self, topic: str | None, action):
        reports = []
        for name in [topic] if topic is not None else self.list_topics():
            t = self.topic(name)
            try:
                reports.extend(action(t.log(p)) for p in range(t.partitions))
            finally:
                t.close()
        return reports


def _recover_one(log) -> RecoveryReport:
    """A partition's recovery report; damage it found is in ``problems``, not raised, so the other
    partitions are still recovered."""
    try:
        return log.recover()
    except CorruptionError as exc:
        report = getattr(exc, "report", None)
        if report is None:
            raise
        return report


def _recover_groups(topic: Topic) -> list[RecoveryReport]:
    reports = []
    for group in topic_groups(topic.path):
        paths = GroupPaths(topic.path, group)
        with paths.locked():
            done, problem = OffsetStore(paths, topic.name).repair()
        if done or problem:
            reports.append(RecoveryReport(topic.name, -1, [done] if done else [], problems=[problem] if problem else [],
                                          subject=f"{topic.name} group {group}"))
    return reports


# -- republish -----------------------------------------------------------------------------------

def republish(data_dir: str | None, records: Iterable[Record], to_topic: str,
              on_progress: Callable[[int], None] | None = None) -> int:
    """Append ``records`` (e.g. from :func:`~logbroker.groups.admin.replay`) to ``to_topic`` with
    their keys, headers and timestamps, partitioned by key as a producer would; returns how many."""
    from .clients.producer import Producer
    count = 0
    with Producer(data_dir, batch_size=256 * 1024) as producer:
        for r in records:
            producer.send(to_topic, r.value, key=r.key, timestamp_ms=r.timestamp, headers=dict(r.headers) or None)
            count += 1
            if on_progress is not None:
                on_progress(count)
    return count


class GroupAdmin:
    """The group functions of :mod:`logbroker.groups.admin` and :func:`republish` bound to one
    data directory, as methods: the same calls the command line makes on a
    :class:`logbroker.remote.cluster.Cluster` for a Kafka cluster."""

    def __init__(self, data_dir: str | None) -> None:
        self.data_dir = data_dir

    def list_groups(self) -> list[str]:
        return group_admin.list_groups(self.data_dir)

    def describe_group(self, group: str, now_ms: int | None = None) -> list[group_admin.PartitionLag]:
        return group_admin.describe_group(self.data_dir, group, now_ms)

    def group_members(self, group: str) -> list[group_admin.GroupMemberInfo]:
        return group_admin.group_members(self.data_dir, group)

    def delete_group(self, group: str) -> None:
        group_admin.delete_group(self.data_dir, group)

    def plan_reset_offsets(self, group: str, topic: str | None, partitions: list[int] | None, spec,
                           now_ms: int | None = None) -> group_admin.ResetPlan:
        return group_admin.plan_reset_offsets(self.data_dir, group, topic, partitions, spec, now_ms)

    def execute_reset(self, plan: group_admin.ResetPlan) -> None:
        group_admin.execute_reset(plan)

    def replay(self, topic: str, from_offset: int | None = None, to_offset: int | None = None,
               partition: int | None = None, **times) -> Iterator[Record]:
        return group_admin.replay(self.data_dir, topic, from_offset, to_offset, partition, **times)

    def republish(self, records: Iterable[Record], to_topic: str,
                  on_progress: Callable[[int], None] | None = None) -> int:
        return republish(self.data_dir, records, to_topic, on_progress)
