"""The console consumer loop (what ``logbroker consume`` and kafka-console-consumer do).

Kafka's rules: without a group nothing is committed and reading starts at the end unless
``from_beginning``; with a group it resumes from the committed offset (``from_beginning`` then only
decides where a group with no commit starts, and ``on_notice`` is told once that it was ignored). It
stops after ``max_messages``, after ``timeout_ms`` with no new record, or on Ctrl+C, and always
closes the consumer cleanly and leaves the group.

What is committed (with a group): on ``max_messages``, ``timeout_ms`` or Ctrl+C, exactly the records
handed to ``sink``. When the output is gone (``sink`` raises BrokenPipeError, or ``output_closed()``
turns true while waiting: the reader of a pipe, such as ``head``, exited), nothing more is committed
than the last automatic commit: a pipe reader may have taken records from the pipe without showing
them, so they are delivered to the group again rather than skipped (at-least-once). A topic that
does not exist yet is waited for (the tutorial starts its consumers before its producer) and then
read from its log start offset: every record in it was published after the consumer started.
"""

from __future__ import annotations

import errno
import os
import time
from functools import partial
from typing import Callable

from ..groups.admin import parse_datetime_ms
from ..storage.datadir import data_dir_path, resolve_data_dir
from ..clients.consumer import Consumer
from ..storage.consumer_record import Record
from ..errors import InvalidConfigError, OffsetOutOfRangeError, UnknownTopicError
from ..groups.offsets import GroupPaths, OffsetStore
from ..storage.topic import Topic

__all__ = ["consume", "parse_offset"]


def consume(data_dir: str | None, topic: str, sink: Callable[[Record, int], None], *, group: str | None = None,
            from_beginning: bool = False, partition: int | None = None, offset: int | str | None = None,
            from_time: str | None = None, max_messages: int | None = None,
            timeout_ms: int | None = None, on_notice: Callable[[str], None] | None = None,
            on_waiting: Callable[[str], None] | None = None,
            output_closed: Callable[[], bool] | None = None, cluster=None,
            flush: Callable[[], None] | None = None) -> int:
    """Feed records of ``topic`` to ``sink(record, n)`` (n counts from 1); returns how many.

    ``flush()``, when given, is called after each record is counted (a console flushing its output
    while it follows a topic): the record is in the output's buffer then, so a Ctrl+C landing in
    the flush (where a follower mostly is) leaves it counted and committed, since it is written at
    exit; raised from ``sink`` instead, the record is taken as not handed over.

    ``cluster`` (a :class:`logbroker.remote.cluster.Cluster`) reads a Kafka cluster instead of
    ``data_dir``, by the same rules: it supplies the consumer, the wait for the topic and the
    look at the group's commits.

    ``on_notice(text)`` hears what a user should know once (a ``--from-beginning`` that does not
    apply, a topic waited for); ``on_waiting(text)`` hears once that the consumer reached the end
    of the log and waits; ``output_closed()`` is asked while waiting whether the output has gone.
    """
    if isinstance(offset, str):
        offset = parse_offset(offset)
    if offset in ("earliest", "latest"):
        if from_beginning and offset == "latest":
            raise InvalidConfigError("--offset latest contradicts --from-beginning; give one")
        from_beginning, offset = offset == "earliest", None
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
    notice = on_notice or (lambda text: None)
    started = time.monotonic()
    # With a timeout the wait ends in a one-line error if the topic never comes: say it only on a terminal.
    wait_notice = notice if timeout_ms is None else on_waiting or (lambda text: None)
    if cluster is None:
        wait_for_topic, has_commits = partial(_wait_for_topic, data_dir), partial(_has_commits, data_dir)
        new_consumer = partial(Consumer, data_dir=data_dir)
    else:
        wait_for_topic, has_commits, new_consumer = cluster.wait_for_topic, cluster.has_commits, cluster.consumer
    if partition is None and wait_for_topic(topic, timeout_ms, wait_notice, output_closed):
        from_beginning = True
    if from_beginning and group is not None and has_commits(topic, group):
        notice(f"--from-beginning is ignored: group {group} has committed offsets on {topic} and resumes "
               f"from them (Kafka's rule). To read {topic} again from its log start: "
               f"logbroker groups reset-offsets {group} --topic {topic} --to-earliest --execute")
    consumer = new_consumer(group_id=group, auto_offset_reset="earliest" if from_beginning else "latest")
    count = 0
    output_gone = False
    try:
        if group is not None:
            consumer.subscribe([topic])
        else:
            t = consumer.topic(topic)
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
        idle_since = started
        while max_messages is None or count < max_messages:
            wait = 100 if timeout_ms is None else max(0, timeout_ms - (time.monotonic() - idle_since) * 1000)
            want = consumer.max_poll_records if max_messages is None else min(max_messages - count,
                                                                              consumer.max_poll_records)
            batch = consumer.poll(timeout_ms=min(wait, 100), max_records=want)
            if not batch:
                if output_closed is not None and output_closed():
                    raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")
                if on_waiting is not None:
                    on_waiting(_waiting_text(topic, group, count, from_beginning))
                    on_waiting = None
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
                    if flush is not None:
                        try:
                            flush()
                        except BaseException:
                            _rewind(consumer, batch, tp, record.offset + 1)
                            raise
            idle_since = time.monotonic()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        output_gone = True
        raise
    finally:
        consumer.close(autocommit=not output_gone)
    return count


def parse_offset(text: str) -> int | str:
    """``--offset``: an offset, or Kafka's ``earliest`` / ``latest``."""
    if text in ("earliest", "latest"):
        return text
    try:
        return int(text)
    except ValueError:
        raise InvalidConfigError(f"Invalid value for '--offset': {text!r} is not an integer offset, "
                                 f"earliest or latest") from None


def _waiting_text(topic: str, group: str | None, count: int, from_beginning: bool) -> str:
    read = f"read {count:,} record{'' if count == 1 else 's'}, " if count else ""
    if count or from_beginning:
        how = "new records appear as they are published"
    elif group is None:
        how = f"to read the records already there: logbroker consume {topic} --from-beginning"
    else:
        how = (f"group {group} reads from its committed offsets; to read {topic} from its log start: "
               f"logbroker groups reset-offsets {group} --topic {topic} --to-earliest --execute")
    return f"Waiting at the end of the log of {topic} ({read}Ctrl+C to stop); {how}"


def _has_commits(data_dir: str | None, topic: str, group: str) -> bool:
    t = Topic(resolve_data_dir(data_dir, create=False), topic)
    try:
        return bool(OffsetStore(GroupPaths(t.path, group), topic).read())
    finally:
        t.close()


def _wait_for_topic(data_dir: str | None, topic: str, timeout_ms: int | None, notice: Callable[[str], None],
                    output_closed: Callable[[], bool] | None) -> bool:
    """Block until ``topic`` exists; True when it had to wait. UnknownTopicError after ``timeout_ms``."""
    path = data_dir_path(data_dir)
    if os.path.lexists(path):
        resolve_data_dir(path, create=False)  # DataDirError when it is not a directory
    deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    waited = False
    while True:
        try:
            Topic(path, topic).close()
            return waited
        except UnknownTopicError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise UnknownTopicError(f"{exc}; create it with `logbroker topics create {topic}` "
                                        f"(or publish to it)", topic=topic) from None
            if not waited:
                notice(f"Topic {topic} does not exist yet in {path}; waiting for it to be created "
                       f"(`logbroker topics create {topic}` or `logbroker publish {topic}`); Ctrl+C to stop.")
                waited = True
        if output_closed is not None and output_closed():
            raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")
        time.sleep(0.1)


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

