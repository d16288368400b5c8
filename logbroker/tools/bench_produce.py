"""Kafka's producer-perf-test for logbroker: :func:`produce_perf` and its :class:`ProduceResult`.

:func:`produce_perf` sends ``num_records`` values through :class:`~logbroker.clients.producer.Producer`,
optionally from P processes, and measures each record's latency from ``send()`` to its
acknowledgement (the moment its future is seen resolved, checked after each send: after the sender
thread wrote its batch and, under ``fsync=always``, fdatasynced it). :meth:`ProduceResult.summary_line` is Kafka's final line.

Producer processes are started with multiprocessing's "spawn" method, never fork: a forked child
would inherit open descriptors and locks of the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .bench_common import (MB, PROGRESS_WINDOW_S, encoded_bytes, environment, latency_fields, make_values,
                           percentiles_text, result_dict, run_children, stderr_progress)

__all__ = ["ProduceResult", "produce_perf"]


@dataclass
class ProduceResult:
    """One producer-perf run. Latencies are kept (ns) for callers that want their own statistics."""

    records: int
    bytes: int
    elapsed_s: float
    avg_latency_ms: float
    max_latency_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    batch_size: int = 0
    producers: int = 1
    partitions: int = 1
    fsync: str | None = None
    environment: dict = field(default_factory=dict)

    @property
    def records_per_sec(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_sec(self) -> float:
        return self.bytes / MB / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary_line(self) -> str:
        """Kafka's final line; percentiles get two decimals since ours are often below 1 ms."""
        return (f"{self.records} records sent, {self.records_per_sec:.1f} records/sec "
                f"({self.mb_per_sec:.2f} MB/sec), {self.avg_latency_ms:.2f} ms avg latency, "
                f"{self.max_latency_ms:.2f} ms max latency, {percentiles_text(self)}")

    def to_dict(self) -> dict[str, Any]:
        d = result_dict(self)
        d["records_per_sec"] = self.records_per_sec
        d["mb_per_sec"] = self.mb_per_sec
        return d


def _produce_loop(data_dir: str, topic: str, num_records: int, values: Sequence[Any], batch_size: int,
                  fsync: str | None, partitions: int, throughput: float, first_partition: int,
                  progress: Callable[[str], None] | None, start_event=None):
    """Send ``num_records`` values; returns (start_ns, end_ns, latencies_ns as array('q'))."""
    from ..clients.producer import Producer
    from ..storage.record import PendingRecord

    # Kafka's batch.size is in bytes: choose it so a batch closes at ``batch_size`` records.
    sizes = [PendingRecord(0, None, None, v).size for v in values[:1000]]
    mean = sum(sizes) / len(sizes)
    producer = Producer(data_dir, fsync=fsync, batch_size=max(1, int(batch_size * mean - mean / 2)),
                        num_partitions=partitions)
    try:
        nparts = len(producer.partitions_for(topic))
        for p in range(nparts):  # open the partition logs before the clock starts
            producer.topic(topic).log(p)
        if start_event is not None:
            start_event.wait()
        lat = array("q", bytes(8 * num_records))
        pending: dict[int, list[tuple[int, int]]] = {p: [] for p in range(nparts)}
        nv = len(values)
        clock = time.monotonic_ns
        send = producer.send
        interval_ns = int(1e9 / throughput) if throughput and throughput > 0 else 0
        start = clock()
        window_start, window_first = start, 0
        for i in range(num_records):
            if interval_ns:
                wait = start + i * interval_ns - clock()
                if wait > 0:
                    time.sleep(wait / 1e9)
            p = (first_partition + i) % nparts
            t0 = clock()
            fut = send(topic, values[i % nv], partition=p)
            waiting = pending[p]
            waiting.append((i, t0, fut))
            if waiting[0][2].done():  # the sender thread appended (and synced) the oldest ones
                ack = clock()
                k = 0
                for j, t, f in waiting:
                    if not f.done():
                        break
                    lat[j] = ack - t
                    k += 1
                del waiting[:k]
                if progress is not None and ack - window_start >= PROGRESS_WINDOW_S * 1e9:
                    w = lat[window_first:i + 1]
                    secs = (ack - window_start) / 1e9
                    nbytes = encoded_bytes(values, len(w))
                    progress(f"{len(w)} records sent, {len(w) / secs:.1f} records/sec "
                             f"({nbytes / MB / secs:.2f} MB/sec), {sum(w) / len(w) / 1e6:.1f} ms avg latency, "
                             f"{max(w) / 1e6:.1f} ms max latency.")
                    window_start, window_first = ack, i + 1
        producer.flush()
        ack = clock()
        for waiting in pending.values():
            for j, t, _f in waiting:
                lat[j] = ack - t
        return start, ack, lat
    finally:
        producer.close()


def _produce_child(data_dir, topic, num_records, values, batch_size, fsync, partitions, throughput,
                   first_partition, ready, go, results) -> None:
    class _Signal:
        def wait(self) -> None:
            ready.put(os.getpid())
            go.wait()

    try:
        start, end, lat = _produce_loop(data_dir, topic, num_records, values, batch_size, fsync, partitions,
                                        throughput, first_partition, None, _Signal())
        results.put((start, end, lat.tobytes(), None))
    except BaseException as exc:  # reported by the parent
        ready.put(os.getpid())
        results.put((0, 0, b"", f"{type(exc).__name__}: {exc}"))


def produce_perf(data_dir: str, topic: str, num_records: int, *, record_size: int | None = None,
                 payload_file: str | None = None, values: Sequence[Any] | None = None,
                 batch_size: int = 100, fsync: str | None = None, producers: int = 1, partitions: int = 1,
                 throughput: float = -1, progress: bool = False) -> ProduceResult:
    """Kafka's producer-perf-test. ``batch_size`` is in records; ``throughput`` is records/s for
    all producers together (-1: unthrottled); P > 1 producers run in spawned processes, each
    sending its share round-robin over the partitions from a different starting partition."""
    from ..clients.producer import Producer

    if num_records < 1 or batch_size < 1 or producers < 1 or partitions < 1:
        raise ValueError("num_records, batch_size, producers and partitions must be at least 1")
    if values is None:
        values = make_values(min(num_records, 1000), record_size, payload_file)
    size_label = record_size if record_size is not None else (
        f"{encoded_bytes(values, len(values)) // len(values)} B average" if payload_file else None)
    # Create the topic (or find it) once here, so P producers never race to create it.
    with Producer(data_dir, num_partitions=partitions) as p:
        topic_obj = p.topic(topic)
        nparts, seg_bytes = topic_obj.partitions, topic_obj.config.segment_bytes
    env = environment(data_dir, fsync=fsync or topic_obj.config.fsync, record_size=size_label,
                      segment_bytes=seg_bytes)
    report = stderr_progress if progress else None
    if producers == 1:
        start, end, lat = _produce_loop(data_dir, topic, num_records, values, batch_size, fsync, nparts,
                                        throughput, 0, report)
        lats = [lat]
    else:
        start, end, lats = _run_producers(data_dir, topic, num_records, values, batch_size, fsync, nparts,
                                          throughput, producers)
    all_lat = lats[0] if len(lats) == 1 else array("q", b"".join(x.tobytes() for x in lats))
    return ProduceResult(records=num_records, bytes=encoded_bytes(values, num_records),
                         elapsed_s=(end - start) / 1e9, batch_size=batch_size, producers=producers,
                         partitions=nparts, fsync=env["fsync"], environment=env, **latency_fields(all_lat))


def _run_producers(data_dir, topic, num_records, values, batch_size, fsync, nparts, throughput, producers):
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [num_records // producers + (1 if i < num_records % producers else 0) for i in range(producers)]
    rate = throughput / producers if throughput and throughput > 0 else -1
    procs = [ctx.Process(target=_produce_child, daemon=True,
                         args=(data_dir, topic, shares[i], values, batch_size, fsync, nparts, rate,
                               i * max(1, nparts // producers), ready, go, results))
             for i in range(producers) if shares[i]]
    outs = run_children(procs, ready, go, results, "a producer process")
    lats = []
    for _, _, raw, _ in outs:
        a = array("q")
        a.frombytes(raw)
        lats.append(a)
    return min(o[0] for o in outs), max(o[1] for o in outs), lats
