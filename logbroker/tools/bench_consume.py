"""Kafka's consumer-perf-test for logbroker: :func:`consume_perf` and its :class:`ConsumeResult`.

:func:`consume_perf` reads a topic from its log start offset with
:class:`~logbroker.storage.reader.PartitionReader` (or a group consumer) and returns Kafka's
consumer-perf columns (:data:`CONSUME_COLUMNS`). Consumer processes are started with
multiprocessing's "spawn" method, never fork.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .bench_common import MB, environment, result_dict, run_children

__all__ = ["CONSUME_COLUMNS", "ConsumeResult", "consume_perf"]

CONSUME_COLUMNS = ("start.time", "end.time", "data.consumed.in.MB", "MB.sec", "data.consumed.in.nMsg",
                   "nMsg.sec", "rebalance.time.ms", "fetch.time.ms", "fetch.MB.sec", "fetch.nMsg.sec")


@dataclass
class ConsumeResult:
    """One consumer-perf run, in Kafka's columns. ``bytes`` counts the record lines as stored."""

    start_ms: int
    end_ms: int
    bytes: int
    records: int
    rebalance_ms: float
    elapsed_s: float
    expected: int | None = None
    consumers: int = 1
    group: str | None = None
    reader: str = "PartitionReader"
    environment: dict = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        mb = self.bytes / MB
        secs = max(self.elapsed_s, 1e-9)
        fetch_s = max(secs - self.rebalance_ms / 1000, 1e-9)
        return {
            "start.time": _kafka_time(self.start_ms),
            "end.time": _kafka_time(self.end_ms),
            "data.consumed.in.MB": round(mb, 4),
            "MB.sec": round(mb / secs, 4),
            "data.consumed.in.nMsg": self.records,
            "nMsg.sec": round(self.records / secs, 4),
            "rebalance.time.ms": round(self.rebalance_ms),
            "fetch.time.ms": round(fetch_s * 1000),
            "fetch.MB.sec": round(mb / fetch_s, 4),
            "fetch.nMsg.sec": round(self.records / fetch_s, 4),
        }

    def table(self) -> str:
        """Kafka's header line and result row."""
        cols = self.columns()
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in cols.values()]
        return ", ".join(cols) + "\n" + ", ".join(cells)

    def warning(self) -> str | None:
        if self.expected is not None and self.records < self.expected:
            return (f"WARNING: Exiting before consuming the expected number of messages: consumed "
                    f"{self.records} of {self.expected} (the topic holds no more).")
        return None

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self, {**self.columns(), "consumers": self.consumers, "group": self.group,
                                  "reader": self.reader, "expected": self.expected, "bytes": self.bytes,
                                  "elapsed_s": self.elapsed_s})


def _kafka_time(ms: int) -> str:
    t = time.localtime(ms / 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + f":{ms % 1000:03d}"


def _partition_bytes(directory: str) -> int:
    from ..storage.segment import list_segments, log_name
    total = 0
    for base in list_segments(directory):
        try:
            total += os.path.getsize(os.path.join(directory, log_name(base)))
        except FileNotFoundError:
            pass
    return total


def _read_partitions(data_dir: str, topic: str, partitions: Sequence[int], limit: int | None,
                     raw: bool, max_records: int, progress: Callable[[int], None] | None = None):
    """Read the given partitions from their log start offsets to the high watermark seen at start
    (or ``limit`` records in all). Returns (records, bytes as stored, start_ns, end_ns)."""
    from ..storage.topic import Topic

    t = Topic(data_dir, topic)
    readers = [t.reader(p) for p in partitions]
    try:
        plan = []
        for r in readers:
            start_off, hw = r.log_start_offset(), r.high_watermark()
            plan.append((r, start_off, hw, _partition_bytes(r.directory)))
        count = nbytes = 0
        last_report = time.monotonic()
        t0 = time.monotonic_ns()
        for r, offset, hw, size in plan:
            first, read = offset, r.read
            while offset < hw and (limit is None or count < limit):
                want = max_records if limit is None else min(max_records, limit - count)
                recs = read(offset, want, raw)
                if not recs:
                    break
                count += len(recs)
                offset = recs[-1].offset + 1
                if progress is not None and time.monotonic() - last_report >= 1:
                    last_report = time.monotonic()
                    progress(count)
            if hw > first:
                nbytes += size * (offset - first) // (hw - first)
        return count, nbytes, t0, time.monotonic_ns()
    finally:
        for r in readers:
            r.close()
        t.close()


def _consume_child(data_dir, topic, partitions, limit, raw, max_records, group, ready, go, results,
                   shared) -> None:
    try:
        ready.put(os.getpid())
        go.wait()
        if group is not None:
            results.put((*_group_read(data_dir, topic, group, limit, raw, max_records, None, shared), None))
        else:
            results.put((*_read_partitions(data_dir, topic, partitions, limit, raw, max_records), 0.0, None))
    except BaseException as exc:
        results.put((0, 0, 0, 0, 0.0, f"{type(exc).__name__}: {exc}"))


def _consumer_class():
    """logbroker.clients.consumer.Consumer when that module exists (it is written separately)."""
    try:
        from ..clients.consumer import Consumer
    except ImportError:
        return None
    return Consumer


def _group_read(data_dir, topic, group, limit, raw, max_records, progress, shared=None):
    """Read through a group consumer; returns (records, bytes, start_ns, end_ns, rebalance_ms).

    The Consumer API used is Kafka's: subscribe, poll (timeout ms, max records), close. Bytes are
    unknown there, so the partition sizes are prorated by the records read; rebalance.time.ms runs
    from creating the consumer until its first poll returns. ``shared``: a counter
    of the records read by all the group's processes, which stop together at the target."""
    from ..storage.topic import Topic

    Consumer = _consumer_class()
    t = Topic(data_dir, topic)
    total_bytes = sum(_partition_bytes(t.partition_path(p)) for p in range(t.partitions))
    available = 0
    for p in range(t.partitions):
        r = t.reader(p)
        available += r.high_watermark() - r.log_start_offset()
        r.close()
    t.close()
    target = available if limit is None else min(limit, available)
    t0 = time.monotonic_ns()
    # Auto-commit (Kafka's default): partitions moved by a rebalance resume at the last commit.
    consumer = Consumer(data_dir=data_dir, group_id=group, auto_offset_reset="earliest", max_poll_records=max_records)
    try:
        consumer.subscribe([topic])
        rebalance_end = None
        count, idle_since = 0, time.monotonic()
        last_report = time.monotonic()
        while (count if shared is None else shared.value) < target and time.monotonic() - idle_since < 10:
            batch = consumer.poll(timeout_ms=100)
            if rebalance_end is None:
                rebalance_end = time.monotonic_ns()
            got = sum(len(v) for v in batch.values()) if isinstance(batch, dict) else len(batch)
            if got:
                count += got
                idle_since = time.monotonic()
                if shared is not None:
                    with shared.get_lock():
                        shared.value += got
            if progress is not None and time.monotonic() - last_report >= 1:
                last_report = time.monotonic()
                progress(count)
        end = time.monotonic_ns()
    finally:
        consumer.close()
    nbytes = total_bytes * count // available if available else 0
    rebalance_ms = ((rebalance_end or end) - t0) / 1e6
    return count, nbytes, t0, end, rebalance_ms


def _consumed_progress(count: int) -> None:
    sys.stderr.write(f"\rconsumed {count:,} records...")
    sys.stderr.flush()


def consume_perf(data_dir: str, topic: str, num_records: int | None = None, *, group: str | None = None,
                 consumers: int = 1, raw: bool = False, max_records: int = 500,
                 progress: bool = False) -> ConsumeResult:
    """Kafka's consumer-perf-test: read ``num_records`` (default: all) from the log start offset.

    Without ``group``: PartitionReaders, C > 1 consumers in spawned processes each reading the
    partitions p with p % C == its index. With ``group``: the group consumer of
    :mod:`logbroker.clients.consumer` (C processes joining the group), else PartitionReaders.
    """
    from ..storage.topic import Topic

    if consumers < 1:
        raise ValueError("consumers must be at least 1")
    t = Topic(data_dir, topic)
    nparts, seg_bytes = t.partitions, t.config.segment_bytes
    env = environment(data_dir, fsync=t.config.fsync, record_size="as stored", segment_bytes=seg_bytes)
    t.close()
    use_group = group is not None and _consumer_class() is not None
    reader = "Consumer (group)" if use_group else "PartitionReader"
    report = _consumed_progress if progress else None
    start_ms = int(time.time() * 1000)
    if consumers == 1:
        if use_group:
            count, nbytes, t0, t1, rebalance = _group_read(data_dir, topic, group, num_records, raw,
                                                           max_records, report)
        else:
            count, nbytes, t0, t1 = _read_partitions(data_dir, topic, range(nparts), num_records, raw,
                                                     max_records, report)
            rebalance = 0.0
        if progress:
            sys.stderr.write("\n")
    else:
        count, nbytes, t0, t1, rebalance = _run_consumers(data_dir, topic, nparts, num_records, raw,
                                                          max_records, group if use_group else None, consumers)
    elapsed = (t1 - t0) / 1e9
    return ConsumeResult(start_ms=start_ms, end_ms=start_ms + int(elapsed * 1000), bytes=nbytes, records=count,
                         rebalance_ms=rebalance, elapsed_s=elapsed, expected=num_records, consumers=consumers,
                         group=group, reader=reader, environment=env)


def _run_consumers(data_dir, topic, nparts, limit, raw, max_records, group, consumers):
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    share = None if limit is None or group is not None else -(-limit // consumers)
    shared = ctx.Value("q", 0)
    procs = [ctx.Process(target=_consume_child, daemon=True,
                         args=(data_dir, topic, [p for p in range(nparts) if p % consumers == i], share, raw,
                               max_records, group, ready, go, results, shared))
             for i in range(consumers)]
    outs = run_children(procs, ready, go, results, "a consumer process")
    count = sum(o[0] for o in outs)
    if limit is not None:
        count = min(count, limit)
    return (count, sum(o[1] for o in outs), min(o[2] for o in outs), max(o[3] for o in outs),
            max(o[4] for o in outs))
