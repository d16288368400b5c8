"""The perf tools behind ``logbroker bench``: Kafka's producer-perf-test, consumer-perf-test and
end-to-end latency test, for one machine and no server.

- :func:`produce_perf` sends ``num_records`` values through :class:`~logbroker.producer.Producer`,
  optionally from P processes, and measures each record's latency from ``send()`` to its
  acknowledgement (the moment its future is seen resolved: after the batch was written and, under
  ``fsync=always``, fdatasynced). :meth:`ProduceResult.summary_line` is Kafka's final line.
- :func:`consume_perf` reads a topic from its log start offset with
  :class:`~logbroker.reader.PartitionReader` (or a group consumer) and returns Kafka's
  consumer-perf columns (:data:`CONSUME_COLUMNS`).
- :func:`e2e_perf` produces at a fixed rate in this process while a spawned process tails the
  partition; latency is ``time.time_ns()`` at receipt minus the ``ts_ns`` field of the value.
- :func:`environment` is the header every tool prints first.

Processes are started with multiprocessing's "spawn" method, never fork: a forked child would
inherit open descriptors and locks of the parent. Percentiles follow Kafka: a sample of at most
500,000 latencies (every floor(N / min(N, 500000))-th), sorted, value at index floor(p * count).
This module never imports typer; the benchmarks/ scripts and the CLI both call it.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import secrets
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import orjson

__all__ = [
    "MB", "CONSUME_COLUMNS", "PERCENTILES", "environment", "format_environment", "filesystem_type",
    "make_values", "percentiles", "ProduceResult", "ConsumeResult", "E2EResult", "produce_perf",
    "consume_perf", "e2e_perf", "median",
]

MB = 1024 * 1024  # Kafka's MB
PERCENTILES = (0.5, 0.95, 0.99, 0.999)
MAX_SAMPLE = 500_000
CONSUME_COLUMNS = ("start.time", "end.time", "data.consumed.in.MB", "MB.sec", "data.consumed.in.nMsg",
                   "nMsg.sec", "rebalance.time.ms", "fetch.time.ms", "fetch.MB.sec", "fetch.nMsg.sec")
PROGRESS_WINDOW_S = 5.0  # Kafka reports every 5 s


# -- environment ---------------------------------------------------------------------------------

def filesystem_type(path: str) -> str:
    """The file system type of ``path`` from /proc/mounts (longest matching mount point), or "?"."""
    real = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def environment(data_dir: str, *, fsync: str | None, record_size: int | str | None,
                segment_bytes: int | None = None) -> dict[str, Any]:
    """What a reader needs to judge a figure: versions, policy, sizes, CPUs, file system."""
    if segment_bytes is None:
        from .config import TopicConfig
        segment_bytes = TopicConfig().segment_bytes
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "orjson": orjson.__version__,
        "fsync": fsync or "topic default",
        "record_size": record_size,
        "segment.bytes": segment_bytes,
        "cpus": os.cpu_count(),
        "data_dir": os.path.abspath(data_dir),
        "filesystem": filesystem_type(data_dir),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def format_environment(env: dict[str, Any]) -> str:
    size = env["record_size"]
    size = f"{size} B" if isinstance(size, int) else size
    return (f"# Python {env['python']}, orjson {env['orjson']}, fsync={env['fsync']}, record size {size}, "
            f"segment.bytes={env['segment.bytes']}, {env['cpus']} CPUs, data dir {env['data_dir']} "
            f"({env['filesystem']}), {env['platform']}")


# -- payloads ------------------------------------------------------------------------------------

def make_values(count: int, record_size: int | None = None, payload_file: str | None = None,
                seed: int = 1) -> list[Any]:
    """``count`` record values to cycle through.

    ``record_size`` B: realistic orders (:func:`logbroker.generator.generate_orders`, 235-300 bytes)
    made exactly B bytes of JSON: padded with a ``pad`` field, or with the address trimmed (orders
    that cannot be trimmed enough are skipped); when no order fits, strings of B - 2 uppercase
    letters (Kafka's random payload). ``payload_file``: one value per non-empty line, the line's
    JSON when it parses, else the line as a string.
    """
    if payload_file is not None:
        values = []
        with open(payload_file, "rb") as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                try:
                    values.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    values.append(line.decode("utf-8", "replace"))
        if not values:
            raise ValueError(f"payload file {payload_file} holds no payload")
        return values
    if record_size is None or record_size < 2:
        raise ValueError("give --record-size (at least 2 bytes) or --payload-file")
    from .generator import generate_orders
    import random
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    values = []
    for order in generate_orders(count * 4, seed=seed):
        if len(values) == count:
            break
        size = len(orjson.dumps(order))
        room = record_size - size - len(',"pad":""')
        excess = size - record_size
        if room >= 0:
            order["pad"] = "".join(rng.choices(letters, k=room))
        elif 0 < excess < len(order["address"]):
            order["address"] = order["address"][:-excess]  # orders run 235-300 bytes: trim to fit
        if len(orjson.dumps(order)) == record_size:
            values.append(order)
    while len(values) < count:  # too small for an order
        values.append("".join(rng.choices(letters, k=record_size - 2)))
    return values


def _encoded_bytes(values: Sequence[Any], n: int) -> int:
    """Total JSON bytes of the first ``n`` values of ``values`` cycled."""
    sizes = [len(orjson.dumps(v)) for v in values]
    whole, part = divmod(n, len(sizes))
    return whole * sum(sizes) + sum(sizes[:part])


# -- statistics ----------------------------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentiles(latencies_ns: Sequence[int], ps: Sequence[float] = PERCENTILES) -> list[float]:
    """Kafka's percentiles, in ms: sample at most 500,000, sort, value at index floor(p * count)."""
    n = len(latencies_ns)
    if n == 0:
        return [0.0 for _ in ps]
    step = n // min(n, MAX_SAMPLE)
    sample = sorted(latencies_ns[::step])
    return [sample[min(int(p * len(sample)), len(sample) - 1)] / 1e6 for p in ps]


def _latency_fields(lat: Sequence[int]) -> dict[str, float]:
    p50, p95, p99, p999 = percentiles(lat)
    return {"avg_latency_ms": (sum(lat) / len(lat) / 1e6) if lat else 0.0,
            "max_latency_ms": (max(lat) / 1e6) if lat else 0.0,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "p999_ms": p999}


# -- produce -------------------------------------------------------------------------------------

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
                f"{self.max_latency_ms:.2f} ms max latency, {self.p50_ms:.2f} ms 50th, "
                f"{self.p95_ms:.2f} ms 95th, {self.p99_ms:.2f} ms 99th, {self.p999_ms:.2f} ms 99.9th.")

    def to_dict(self) -> dict[str, Any]:
        d = {"environment": self.environment}
        d.update({k: v for k, v in asdict(self).items() if k != "environment"})
        d["records_per_sec"] = self.records_per_sec
        d["mb_per_sec"] = self.mb_per_sec
        return d


def _stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _produce_loop(data_dir: str, topic: str, num_records: int, values: Sequence[Any], batch_size: int,
                  fsync: str | None, partitions: int, throughput: float, first_partition: int,
                  progress: Callable[[str], None] | None, start_event=None):
    """Send ``num_records`` values; returns (start_ns, end_ns, latencies_ns as array('q'))."""
    from .producer import Producer
    from .record import PendingRecord

    # Kafka's batch.size is in bytes: choose it so a batch closes at ``batch_size`` records.
    sizes = [PendingRecord(0, None, None, v).size for v in values[:1000]]
    mean = sum(sizes) / len(sizes)
    producer = Producer(data_dir, fsync=fsync, batch_size=max(1, int(batch_size * mean - mean / 2)),
                        num_partitions=partitions)
    try:
        nparts = len(producer.partitions_for(topic))
        for p in range(nparts):  # open the partition logs before the clock starts
            producer._topic(topic).log(p)
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
            waiting.append((i, t0))
            if fut.done():  # the batch of this partition was just appended (and synced)
                ack = clock()
                for j, t in waiting:
                    lat[j] = ack - t
                waiting.clear()
                if progress is not None and ack - window_start >= PROGRESS_WINDOW_S * 1e9:
                    w = lat[window_first:i + 1]
                    secs = (ack - window_start) / 1e9
                    nbytes = _encoded_bytes(values, len(w))
                    progress(f"{len(w)} records sent, {len(w) / secs:.1f} records/sec "
                             f"({nbytes / MB / secs:.2f} MB/sec), {sum(w) / len(w) / 1e6:.1f} ms avg latency, "
                             f"{max(w) / 1e6:.1f} ms max latency.")
                    window_start, window_first = ack, i + 1
        producer.flush()
        ack = clock()
        for waiting in pending.values():
            for j, t in waiting:
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
    from .producer import Producer

    if num_records < 1 or batch_size < 1 or producers < 1 or partitions < 1:
        raise ValueError("num_records, batch_size, producers and partitions must be at least 1")
    if values is None:
        values = make_values(min(num_records, 1000), record_size, payload_file)
    size_label = record_size if record_size is not None else (
        f"{_encoded_bytes(values, len(values)) // len(values)} B average" if payload_file else None)
    # Create the topic (or find it) once here, so P producers never race to create it.
    with Producer(data_dir, num_partitions=partitions) as p:
        topic_obj = p._topic(topic)
        nparts, seg_bytes = topic_obj.partitions, topic_obj.config.segment_bytes
    env = environment(data_dir, fsync=fsync or topic_obj.config.fsync, record_size=size_label,
                      segment_bytes=seg_bytes)
    report = _stderr_progress if progress else None
    if producers == 1:
        start, end, lat = _produce_loop(data_dir, topic, num_records, values, batch_size, fsync, nparts,
                                        throughput, 0, report)
        lats = [lat]
    else:
        start, end, lats = _run_producers(data_dir, topic, num_records, values, batch_size, fsync, nparts,
                                          throughput, producers)
    all_lat = lats[0] if len(lats) == 1 else array("q", b"".join(x.tobytes() for x in lats))
    return ProduceResult(records=num_records, bytes=_encoded_bytes(values, num_records),
                         elapsed_s=(end - start) / 1e9, batch_size=batch_size, producers=producers,
                         partitions=nparts, fsync=env["fsync"], environment=env, **_latency_fields(all_lat))


def _run_producers(data_dir, topic, num_records, values, batch_size, fsync, nparts, throughput, producers):
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [num_records // producers + (1 if i < num_records % producers else 0) for i in range(producers)]
    rate = throughput / producers if throughput and throughput > 0 else -1
    procs = [ctx.Process(target=_produce_child, daemon=True,
                         args=(data_dir, topic, shares[i], values, batch_size, fsync, nparts, rate,
                               i * max(1, nparts // producers), ready, go, results))
             for i in range(producers) if shares[i]]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        go.set()
        outs = [results.get(timeout=3600) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    errors = [o[3] for o in outs if o[3]]
    if errors:
        raise RuntimeError(f"a producer process failed: {errors[0]}")
    lats = []
    for _, _, raw, _ in outs:
        a = array("q")
        a.frombytes(raw)
        lats.append(a)
    return min(o[0] for o in outs), max(o[1] for o in outs), lats


# -- consume -------------------------------------------------------------------------------------

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
        d = {"environment": self.environment}
        d.update(self.columns())
        d.update(consumers=self.consumers, group=self.group, reader=self.reader,
                 expected=self.expected, bytes=self.bytes, elapsed_s=self.elapsed_s)
        return d


def _kafka_time(ms: int) -> str:
    t = time.localtime(ms / 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + f":{ms % 1000:03d}"


def _partition_bytes(directory: str) -> int:
    from .segment import list_segments, log_name
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
    from .topic import Topic

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
    """logbroker.consumer.Consumer when that module exists (it is written separately)."""
    try:
        from .consumer import Consumer
    except ImportError:
        return None
    return Consumer


def _group_read(data_dir, topic, group, limit, raw, max_records, progress, shared=None):
    """Read through a group consumer; returns (records, bytes, start_ns, end_ns, rebalance_ms).

    The Consumer API used is Kafka's: subscribe, poll (timeout ms, max records), close. Bytes are
    unknown there, so the partition sizes are prorated by the records read; rebalance.time.ms runs
    from creating the consumer until its first poll returns. ``shared``: a counter
    of the records read by all the group's processes, which stop together at the target."""
    from .topic import Topic

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
    :mod:`logbroker.consumer` (C processes joining the group), else PartitionReaders.
    """
    from .topic import Topic

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
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=120)
        go.set()
        outs = [results.get(timeout=3600) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    errors = [o[5] for o in outs if o[5]]
    if errors:
        raise RuntimeError(f"a consumer process failed: {errors[0]}")
    count = sum(o[0] for o in outs)
    if limit is not None:
        count = min(count, limit)
    return (count, sum(o[1] for o in outs), min(o[2] for o in outs), max(o[3] for o in outs),
            max(o[4] for o in outs))


# -- end to end ----------------------------------------------------------------------------------

@dataclass
class E2EResult:
    records: int
    rate: float
    actual_rate: float
    avg_latency_ms: float
    max_latency_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    fsync: str | None = None
    reader: str = "PartitionReader"
    environment: dict = field(default_factory=dict)

    def summary_line(self) -> str:
        return (f"{self.records} records at {self.rate:.1f} records/sec target ({self.actual_rate:.1f} sent), "
                f"end-to-end latency: {self.avg_latency_ms:.2f} ms avg, {self.max_latency_ms:.2f} ms max, "
                f"{self.p50_ms:.2f} ms 50th, {self.p95_ms:.2f} ms 95th, {self.p99_ms:.2f} ms 99th, "
                f"{self.p999_ms:.2f} ms 99.9th.")

    def to_dict(self) -> dict[str, Any]:
        d = {"environment": self.environment}
        d.update({k: v for k, v in asdict(self).items() if k != "environment"})
        return d


def _e2e_consumer(data_dir, topic, num_records, poll_interval, ready, results) -> None:
    """Tail partition 0 from offset 0 until ``num_records`` arrived; latency per record in ns."""
    try:
        from .topic import Topic
        t = Topic(data_dir, topic)
        reader = t.reader(0)
        loads, now_ns, sleep = orjson.loads, time.time_ns, time.sleep
        lat = array("q")
        offset = 0
        deadline = time.monotonic() + 30  # no record for 30 s: give up
        ready.put(os.getpid())
        while len(lat) < num_records:
            recs = reader.read(offset, 500, True)
            if not recs:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(lat)} of {num_records} records arrived")
                sleep(poll_interval)
                continue
            now = now_ns()
            for r in recs:
                lat.append(now - loads(r.value)["ts_ns"])
            offset = recs[-1].offset + 1
            deadline = time.monotonic() + 30
        reader.close()
        t.close()
        results.put((lat.tobytes(), None))
    except BaseException as exc:
        ready.put(os.getpid())
        results.put((b"", f"{type(exc).__name__}: {exc}"))


def e2e_perf(data_dir: str, rate: float, num_records: int, *, fsync: str | None = None,
             record_size: int = 250, poll_interval: float = 0.0002, progress: bool = False) -> E2EResult:
    """Producer -> consumer latency across two processes at ``rate`` records/s.

    A fresh one-partition topic ``bench-e2e-<hex>`` is created in ``data_dir`` and deleted after.
    Each record is sent alone (a batch of one) and carries ``ts_ns`` = time.time_ns() at send().
    """
    from .producer import Producer
    from .topic import Topic

    if rate <= 0 or num_records < 1:
        raise ValueError("rate and num_records must be positive")
    topic = f"bench-e2e-{secrets.token_hex(4)}"
    t = Topic.create(data_dir, topic, 1)
    env = environment(data_dir, fsync=fsync or t.config.fsync, record_size=record_size,
                      segment_bytes=t.config.segment_bytes)
    values = make_values(min(num_records, 1000), max(2, record_size - len(',"ts_ns":1764230400000000000')))
    values = [v if isinstance(v, dict) else {"v": v} for v in values]
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_e2e_consumer, daemon=True,
                       args=(data_dir, topic, num_records, poll_interval, ready, results))
    proc.start()
    try:
        ready.get(timeout=120)
        producer = Producer(data_dir, fsync=fsync, batch_size=0)
        try:
            producer._topic(topic).log(0)
            interval, nv = 1.0 / rate, len(values)
            start = time.monotonic()
            last_report = start
            for i in range(num_records):
                wait = start + i * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                value = dict(values[i % nv])
                value["ts_ns"] = time.time_ns()
                producer.send(topic, value, partition=0)
                if progress and time.monotonic() - last_report >= PROGRESS_WINDOW_S:
                    last_report = time.monotonic()
                    _stderr_progress(f"{i + 1} records sent...")
            producer.flush()
            sent_rate = num_records / max(time.monotonic() - start, 1e-9)
        finally:
            producer.close()
        raw, error = results.get(timeout=120)
        if error:
            raise RuntimeError(f"the consumer process failed: {error}")
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
        t.delete()
    lat = array("q")
    lat.frombytes(raw)
    return E2EResult(records=num_records, rate=rate, actual_rate=sent_rate, fsync=env["fsync"],
                     environment=env, **_latency_fields(lat))
