"""Group administration and replay: what ``kafka-consumer-groups.sh`` does, as library calls.

Each function reads the files of :mod:`logbroker.groups.offsets` and :mod:`logbroker.groups.membership` directly; none
needs a running consumer. The CLI renders their results.

- :func:`list_groups`, :func:`describe_group` (Kafka's columns plus the age of the oldest unconsumed
  record), :func:`delete_group` (refused while a member is live).
- :func:`plan_reset_offsets` computes where ``--reset-offsets`` would move each partition (clamped
  into [log start offset, log end offset]); :func:`execute_reset` applies a plan, under the group
  lock, refusing with :class:`~logbroker.errors.GroupNotEmptyError` while the group has live members.
- :func:`replay` yields the records of an offset or time range without touching any group's offsets.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator, NamedTuple

from ..storage import fsutil
from ..storage.config import validate_group_name
from ..errors import (CorruptionError, GroupError, GroupNotEmptyError, InvalidConfigError, OffsetOutOfRangeError,
                     UnknownGroupError)
from .membership import partition_owner, refuse_if_live, scan_members
from .offsets import GROUPS_DIR, CommittedOffset, GroupPaths, OffsetStore, topic_groups
from ..storage.consumer_record import Record
from ..storage.datadir import data_dir_path, resolve_data_dir
from ..storage.topic import Topic, list_topics

__all__ = ["list_groups", "describe_group", "group_members", "GroupMemberInfo", "delete_group", "group_topics", "PartitionLag",
           "ResetRow", "ResetPlan", "RESET_KINDS", "plan_reset_offsets", "execute_reset", "replay",
           "parse_reset_spec", "reset_target", "check_replay_bounds", "replay_range",
           "parse_datetime_ms", "parse_duration_ms"]

RESET_KINDS = ("to-earliest", "to-latest", "to-current", "to-offset", "shift-by", "to-datetime", "by-duration")
log = logging.getLogger("logbroker")


def _data_dir(data_dir: str | None) -> str:
    """The data directory as a read-only command sees it: never created when missing (then it
    holds no topics); DataDirError when it is not a directory."""
    path = data_dir_path(data_dir)
    return resolve_data_dir(path) if os.path.lexists(path) else path


def list_groups(data_dir: str | None = None) -> list[str]:
    """Every group that has state on some topic, sorted."""
    path = _data_dir(data_dir)
    return sorted({group for topic in list_topics(path) for group in topic_groups(os.path.join(path, topic))})


def group_topics(data_dir: str | None, group: str) -> list[Topic]:
    """The topics on which ``group`` has state; UnknownGroupError when none."""
    validate_group_name(group)
    path = _data_dir(data_dir)
    topics = [Topic(path, name) for name in list_topics(path) if GroupPaths(os.path.join(path, name), group).exists()]
    if not topics:
        raise UnknownGroupError(f"consumer group {group!r} does not exist", group=group)
    return topics


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One row of ``describe``: Kafka's columns, plus ``lag_ms``, the age of the oldest unconsumed record."""

    group: str
    topic: str
    partition: int
    current_offset: int | None  # the committed offset; None when never committed
    log_end_offset: int
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None
    lag_ms: int | None  # now - timestamp of the record at the committed offset; 0 when caught up
    pid: int | None = None  # the owner's process id (on ``host``), to find the member to stop


@dataclass(frozen=True, slots=True)
class GroupMemberInfo:
    """A live member of a group on one topic, with the partitions it owns (none: it is idle)."""

    group: str
    topic: str
    consumer_id: str
    host: str
    pid: int
    client_id: str
    partitions: tuple[int, ...]


def group_members(data_dir: str | None, group: str) -> list[GroupMemberInfo]:
    """The live members of ``group`` on every topic, idle ones included (Kafka's ``--members``)."""
    out = []
    for topic in group_topics(data_dir, group):
        paths = GroupPaths(topic.path, group)
        owners = {p: partition_owner(paths, p) for p in range(topic.partitions)}
        for m in scan_members(paths):
            if m.live:
                hb = m.heartbeat
                out.append(GroupMemberInfo(group, topic.name, m.member, hb.host, hb.pid, hb.client_id,
                                           tuple(p for p, owner in owners.items() if owner == m.member)))
        topic.close()
    return sorted(out, key=lambda m: (m.topic, m.consumer_id))


def describe_group(data_dir: str | None, group: str, now_ms: int | None = None) -> list[PartitionLag]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    rows = []
    for topic in group_topics(data_dir, group):
        paths = GroupPaths(topic.path, group)
        members = {m.member: m for m in scan_members(paths)}
        committed = OffsetStore(paths, topic.name).read()
        for p in range(topic.partitions):
            reader = topic.reader(p)
            try:
                end = reader.high_watermark()
                c = committed.get(p)
                current = None if c is None else c.offset
                lag = None if current is None else max(0, end - current)
                lag_ms = None
                if lag == 0:
                    lag_ms = 0
                elif lag:
                    try:
                        first = reader.read(max(current, reader.log_start_offset()), 1)
                        lag_ms = max(0, now_ms - first[0].timestamp) if first else None
                    except OffsetOutOfRangeError:
                        lag_ms = None
            finally:
                reader.close()
            owner = partition_owner(paths, p)
            status = members.get(owner) if owner else None
            hb = status.heartbeat if status is not None and status.live else None
            rows.append(PartitionLag(group, topic.name, p, current, end, lag, owner if hb else None,
                                     hb.host if hb else None, hb.client_id if hb else None, lag_ms,
                                     hb.pid if hb else None))
        topic.close()
    return rows


def delete_group(data_dir: str | None, group: str) -> None:
    """Remove the group's offsets and membership files on every topic; refused while a member is live."""
    for topic in group_topics(data_dir, group):
        paths = GroupPaths(topic.path, group, topic.identity)
        with paths.locked():
            refuse_if_live(paths, lambda live: GroupNotEmptyError(
                f"consumer group {group!r} has live members {live} on topic {topic.name!r}; stop them first",
                group=group))
            doomed = os.path.join(topic.path, GROUPS_DIR, f"__deleting-{group}-{secrets.token_hex(4)}")
            fsutil.rename_durably(paths.root, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


# -- reset ----------------------------------------------------------------------------------------

class ResetRow(NamedTuple):
    topic: str
    partition: int
    old: int | None  # the committed offset before the reset (None: never committed)
    new: int


class ResetPlan(list):
    """A list of :class:`ResetRow` that remembers its data directory, group and the topics it was
    computed on (their identities: executing it on a topic re-created since is refused)."""

    def __init__(self, data_dir: str, group: str, rows: list[ResetRow] = ()) -> None:
        super().__init__(rows)
        self.data_dir = data_dir
        self.group = group
        self.topics: dict[str, Topic] = {}


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?\Z")


def parse_duration_ms(text: str) -> int:
    """ISO-8601 duration ``PnDTnHnMn.nS`` (Java's Duration.parse, as Kafka's --by-duration) in ms."""
    m = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise InvalidConfigError(f"duration {text!r} is not ISO-8601 like PT1H, PT30M, P1DT2H or PT0.5S")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return int(round((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000))


def parse_datetime_ms(text: str) -> int:
    """ISO-8601 date-time in ms since the epoch; UTC when it names no offset (Kafka's rule)."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidConfigError(f"date-time {text!r} is not ISO-8601 like 2025-11-27T08:00:00.000 "
                                 f"(UTC unless an offset such as Z or +02:00 is given)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def parse_reset_spec(spec) -> tuple[str, object]:
    """(kind, value) of a reset spec (see :func:`plan_reset_offsets`), checked."""
    if isinstance(spec, str):
        kind, _, value = spec.lstrip("-").partition("=")
        spec = (kind, value or None)
    kind, value = spec[0].lstrip("-"), spec[1] if len(spec) > 1 else None
    if kind not in RESET_KINDS:
        raise InvalidConfigError(f"unknown reset {kind!r}; use one of {', '.join(RESET_KINDS)}")
    if kind in ("to-offset", "shift-by"):
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise InvalidConfigError(f"--{kind} needs an integer, got {value!r}") from None
        if kind == "to-offset" and value < 0:
            raise InvalidConfigError(f"--to-offset must be 0 or more, got {value}")
    elif kind == "to-datetime":
        value = value if isinstance(value, int) else parse_datetime_ms(str(value))
    elif kind == "by-duration":
        value = parse_duration_ms(str(value))
    return kind, value


def plan_reset_offsets(data_dir: str | None, group: str, topic: str | None, partitions: list[int] | None,
                       spec, now_ms: int | None = None) -> ResetPlan:
    """Where each partition's committed offset would go (Kafka's ``--reset-offsets``, dry run).

    ``spec`` is ``"to-earliest"``, ``"to-offset=5"``, ``("shift-by", -3)``, ``("to-datetime",
    "2025-11-27T08:00:00Z")``, ``("by-duration", "PT1H")``... ``topic`` None means every topic the
    group has offsets on. New offsets are clamped into [log start offset, log end offset]. The group
    need not exist yet (resetting is how a new group starts somewhere else than its reset policy).
    """
    validate_group_name(group)
    kind, value = parse_reset_spec(spec)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    path = _data_dir(data_dir)
    topics = [Topic(path, topic)] if topic is not None else group_topics(path, group)
    plan = ResetPlan(path, group)
    for t in topics:
        try:
            committed = OffsetStore(GroupPaths(t.path, group), t.name).read()
        except CorruptionError as exc:
            # Damaged offsets are what a reset gets out of: --execute overwrites them.
            log.warning("%s; the current offsets are unknown and --execute overwrites them", exc)
            committed = {}
        for p in (range(t.partitions) if partitions is None else partitions):
            t.check_partition(p)
            reader = t.reader(p)
            try:
                old = committed[p].offset if p in committed else None
                new = reset_target(group, t.name, p, kind, value, old, reader.log_start_offset(),
                                   reader.high_watermark(), now_ms, reader.offset_for_timestamp)
            finally:
                reader.close()
            plan.append(ResetRow(t.name, p, old, new))
        plan.topics[t.name] = t
        t.close()
    return plan


def reset_target(group: str, topic: str, partition: int, kind: str, value: object, old: int | None, start: int,
                 end: int, now_ms: int, offset_for_timestamp: Callable[[int], int | None]) -> int:
    """Where ``--reset-offsets`` moves one partition: ``kind``/``value`` from :func:`parse_reset_spec`,
    ``old`` the committed offset (None: none), [``start``, ``end``] its log start and end offsets,
    ``offset_for_timestamp`` Kafka's lookup. Clamped into [start, end], with a warning when it was
    outside; the same rule for the data directory and a cluster."""
    if kind == "to-earliest":
        new = start
    elif kind == "to-latest":
        new = end
    elif kind == "to-current":
        new = end if old is None else old
    elif kind == "to-offset":
        new = value
    elif kind == "shift-by":
        if old is None:
            raise GroupError(f"--shift-by needs a committed offset, and group {group!r} has none "
                             f"for {topic}-{partition}", group=group, topic=topic, partition=partition)
        new = old + value
    else:
        found = offset_for_timestamp(value if kind == "to-datetime" else now_ms - value)
        if found is None:
            log.warning("partition %d of topic %s has no record at or after that time; "
                        "falling back to the log end offset %d", partition, topic, end)
        # A lookup may answer below a log start that delete-records moved inside a segment: the
        # first record kept is the first at or after that time then (not a request out of range).
        new = end if found is None else max(found, start)
    clamped = min(max(new, start), end)
    if clamped != new:
        log.warning("new offset %d for %s-%d is outside [%d, %d]; using %d", new, topic, partition, start, end, clamped)
    return clamped


def execute_reset(plan: ResetPlan) -> None:
    """Commit a plan's new offsets (backwards too), refusing while the group has a live member."""
    by_topic: dict[str, dict[int, int]] = {}
    for row in plan:
        by_topic.setdefault(row.topic, {})[row.partition] = row.new
    path = _data_dir(plan.data_dir)
    now = int(time.time() * 1000)
    for name, offsets in by_topic.items():
        t = plan.topics.get(name) or Topic(path, name)
        t.identity.check()  # offsets planned on a topic deleted since mean nothing in a new one
        paths = GroupPaths(t.path, plan.group, t.identity)
        paths.ensure()
        with paths.locked():
            refuse_if_live(paths, lambda live: GroupNotEmptyError(
                f"offsets of group {plan.group!r} can only be reset while it has no live members; "
                f"{len(live)} {'is' if len(live) == 1 else 'are'} live on topic {name!r}: {', '.join(live)}",
                group=plan.group, topic=name))
            OffsetStore(paths, name).commit({p: CommittedOffset(o, 0, "reset", now) for p, o in offsets.items()},
                                            allow_backwards=True)


# -- replay ---------------------------------------------------------------------------------------

def replay(data_dir: str | None, topic: str, from_offset: int | None = None, to_offset: int | None = None,
           partition: int | None = None, *, from_time: int | str | None = None,
           to_time: int | str | None = None) -> Iterator[Record]:
    """The records of ``[from, to)`` partition by partition, touching no group's offsets.

    A time bound (ms since the epoch, or an ISO-8601 date-time) stands for the first offset whose
    timestamp is >= it, Kafka's lookup. Missing bounds are the log start offset and the high
    watermark at the call; ``to`` past the high watermark stops there. A ``from`` below the log start
    offset (those records were removed by retention) or beyond the high watermark raises
    OffsetOutOfRangeError, a negative bound or ``to < from`` InvalidConfigError; every partition is
    checked before the first record is yielded.
    """
    check_replay_bounds(from_offset, to_offset)
    bounds = [_bound_ms(from_time), _bound_ms(to_time)]
    t = Topic(_data_dir(data_dir), topic)
    try:
        parts = range(t.partitions) if partition is None else [t.check_partition(partition)]
        # Every partition's range is checked before the first record is yielded, so a bad bound
        # fails the whole replay at once instead of after some partitions were printed.
        ranges = []
        for p in parts:
            reader = t.reader(p)
            try:
                start, stop = replay_range(topic, p, reader.log_start_offset(), reader.high_watermark(), from_offset,
                                           to_offset, bounds, reader.offset_for_timestamp)
                ranges.append((p, start, stop))
            finally:
                reader.close()
        for p, start, stop in ranges:
            reader = t.reader(p)
            try:
                offset = start
                while offset < stop:
                    got = reader.read(offset, min(500, stop - offset))
                    if not got:
                        break
                    yield from got
                    offset = got[-1].offset + 1
            finally:
                reader.close()
    finally:
        t.close()


def check_replay_bounds(from_offset: int | None, to_offset: int | None) -> None:
    """InvalidConfigError for a negative or non-integer bound, or ``to`` before ``from``."""
    for name, value in (("--from-offset", from_offset), ("--to-offset", to_offset)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidConfigError(f"{name} must be an integer >= 0, got {value!r}")
    if from_offset is not None and to_offset is not None and to_offset < from_offset:
        raise InvalidConfigError(f"--to-offset {to_offset} is before --from-offset {from_offset}")


def replay_range(topic: str, partition: int, log_start: int, end: int, from_offset: int | None,
                 to_offset: int | None, bounds: list, offset_for_timestamp: Callable[[int], int | None]
                 ) -> tuple[int, int]:
    """``[start, stop)`` of one partition for :func:`replay`; OffsetOutOfRangeError when ``from`` is
    outside [log start offset, log end offset]. ``bounds``: [from_ms, to_ms], each None or ms."""
    start = log_start if from_offset is None else from_offset
    if not log_start <= start <= end:
        why = ("retention removed the records below the log start offset" if start < log_start
               else "that is beyond the log end offset")
        raise OffsetOutOfRangeError(
            f"cannot replay {topic}-{partition} from offset {start}: {why}; valid offsets are "
            f"{log_start} (log start) to {end} (log end)", topic=topic, partition=partition, offset=start,
            log_start_offset=log_start, log_end_offset=end)
    stop = end if to_offset is None else min(to_offset, end)
    if bounds[0] is not None:
        found = offset_for_timestamp(bounds[0])
        start = max(start, end if found is None else found)
    if bounds[1] is not None:
        found = offset_for_timestamp(bounds[1])
        stop = min(stop, end if found is None else found)
    return start, stop


def _bound_ms(value: int | str | None) -> int | None:
    return parse_datetime_ms(value) if isinstance(value, str) else value



def parse_offsets_json(data: bytes, path: str) -> list[tuple[str, int, int]]:
    """Kafka's ``kafka-delete-records --offset-json-file``:
    ``{"partitions":[{"topic":"t","partition":0,"offset":10}],"version":1}`` as (topic, partition,
    offset) triples; any other shape is an error naming the file and the entry."""
    import orjson
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidConfigError(f"{path}: not JSON ({exc})", path=path) from None
    entries = doc.get("partitions") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidConfigError(f'{path}: expected {{"partitions":[{{"topic":..,"partition":..,"offset":..}}],'
                                 f'"version":1}} with at least one partition', path=path)
    out = []
    for i, e in enumerate(entries):
        ok = (isinstance(e, dict) and isinstance(e.get("topic"), str)
              and all(type(e.get(k)) is int for k in ("partition", "offset"))
              and e["partition"] >= 0 and e["offset"] >= -1)
        if not ok:
            raise InvalidConfigError(f"{path}: partitions[{i}] must have a string topic, a partition >= 0 and "
                                     f"an integer offset >= -1, got {orjson.dumps(e).decode()}", path=path)
        out.append((e["topic"], e["partition"], e["offset"]))
    return out

