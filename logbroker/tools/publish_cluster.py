"""Publishing JSON lines to a Kafka cluster: ``logbroker publish --bootstrap-server``.

The same lines are accepted and refused as by :func:`logbroker.tools.publish.publish_lines` (its line
reader and checks), and the same :class:`~logbroker.tools.publish.PublishSummary` is filled: only
acknowledged records count, per partition with the last offset. Each value is sent as its
compact JSON, so consumers of the cluster (and of the data directory behind ``logbroker serve``)
read it as the JSON value. A missing topic is created with ``num_partitions`` first, as the local
command does. The cluster's acknowledgments are awaited at the end and every ``linger.ms``.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO, Callable

import orjson

from .. import errors
from .publish import PublishSummary, iter_line_chunks, parse_line

__all__ = ["publish_lines"]

log = logging.getLogger("logbroker")


def publish_lines(cluster: Any, topic: str, stream: BinaryIO, *, key_field: str | None = None,
                  key: str | None = None, partition: int | None = None, num_partitions: int = 3,
                  on_error: Callable[[str], None] | None = None, on_progress: Callable[[int], None] | None = None,
                  key_separator: str | None = None, headers: dict[str, str] | None = None,
                  summary: PublishSummary | None = None) -> PublishSummary:
    """Publish each line of ``stream`` to ``topic`` on ``cluster`` (a
    :class:`logbroker.remote.cluster.Cluster`); fills and returns ``summary``.
    Ctrl+C stops reading (``summary.interrupted``) after what was read is acknowledged."""
    summary = summary if summary is not None else PublishSummary()
    if topic not in cluster.list_topics():
        try:
            cluster.create_topic(topic, num_partitions)
            log.warning("created topic %r with %d partition%s (auto-create; set the count with "
                        "`logbroker topics create`)", topic, num_partitions, "" if num_partitions == 1 else "s")
            summary.created = True
        except errors.TopicExistsError:
            pass  # another client created it first
    meta = cluster.topic(topic)
    summary.partitions = meta.partitions
    if partition is not None and not 0 <= partition < meta.partitions:
        raise errors.UnknownPartitionError(f"partition {partition!r} does not exist: topic {topic!r} has "
                                           f"partitions 0-{meta.partitions - 1}", topic=topic, partition=partition)
    limit = int(meta.config.to_kafka().get("max.message.bytes", 1024 * 1024))

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            summary.not_acknowledged += 1
            if summary.error is None:
                summary.error = errors.ClusterError(f"publish to {topic}-{msg.partition()}: {err.name()}: "
                                                    f"{err.str()}")
            return
        p = msg.partition()
        summary.published += 1
        summary.per_partition[p] = summary.per_partition.get(p, 0) + 1
        summary.last_offsets[p] = max(summary.last_offsets.get(p, -1), msg.offset())

    producer = cluster.producer()
    try:
        for first, lines in iter_line_chunks(stream, limit):
            summary.lines_read = first + len(lines) - 1
            for number, line in enumerate(lines, first):
                if line is not None and (not line or line.isspace()):
                    summary.skipped += 1
                    continue
                try:
                    k, line, value = parse_line(line, limit, key, key_separator)
                    if key_field is not None and isinstance(value, dict) and value.get(key_field) is not None:
                        k = str(value[key_field])
                    producer.send_bytes(topic, orjson.dumps(value), k, partition, headers, on_delivery=delivered)
                except (ValueError, errors.LogBrokerError) as exc:
                    summary.failed += 1
                    if on_error:
                        on_error(f"line {number}: {exc}")
            producer.poll(0)
            if on_progress:
                on_progress(summary.published)
            if summary.error is not None:
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        try:
            producer.flush()
        except errors.ClusterError as exc:
            summary.error = summary.error or exc
        if on_progress:
            on_progress(summary.published)
    if summary.error is not None:
        raise summary.error
    return summary
