"""What the benchmark scripts share: temp directories, interleaved runs, Markdown tables, the
environment header, and the baselines and peers that logbroker is compared with.

Every script measures its baseline in the same process and the same run as the workload, and
interleaves them (run 1 of each workload, then run 2 of each, ... with the order rotated every run),
so a noisy neighbour on the shared machine slows both sides of a ratio, not one. Rates are medians;
ratios are the median of the per-round ratios (:func:`paired_ratio`), each taken between two runs
made back to back, which cancels the slow drifts of a shared machine's speed.

Baselines and peers (each returns records per second):

- :func:`raw_produce`: orjson encode + crc32 per record, one ``write`` per batch (+ one ``fdatasync``
  per batch when durable) to one file: the floor for any JSON-lines log in Python.
- :func:`plain_read_loads` / :func:`plain_read_crc`: read the segment files, split on LF, then
  ``orjson.loads`` or ``crc32`` every line: the floor for reading them back.
- :func:`sqlite_wal`: SQLite in WAL mode, ``synchronous=FULL``, ``executemany`` in transactions
  of 1,000 records.
- :func:`queue_pipeline`: the tutorial's design: a producer thread puts each record on an
  in-memory ``queue.Queue``, a consumer thread takes it off. Fast, and loses everything on exit.
"""

from __future__ import annotations

import argparse
import os
import queue
import sqlite3
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import orjson  # noqa: E402

from logbroker.tools import bench  # noqa: E402
from logbroker.storage.segment import list_segments, log_name  # noqa: E402

RECORD_SIZE = 250


def arg_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per workload (median reported; >= 5)")
    parser.add_argument("--dir", default=None, help="where to create temp directories (default: $TMPDIR)")
    parser.add_argument("--full", action="store_true", help="the issue's sizes (slower)")
    return parser


def temp_dir(base: str | None) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="logbroker-bench-", dir=base)


def header(title: str, data_dir: str, fsync: str | None, runs: int, extra: str = "") -> None:
    env = bench.environment(data_dir, fsync=fsync, record_size=f"~{RECORD_SIZE} B orders")
    print(f"## {title}\n")
    print(f"- {bench.format_environment(env).lstrip('# ')}")
    runs_note = f"; median of {runs} interleaved runs" if runs else ""
    print(f"- {time.strftime('%Y-%m-%d %H:%M')}, commit {git_head()}{runs_note}")
    if extra:
        print(f"- {extra}")
    print()


def git_head() -> str:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def interleave(workloads: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Run every workload ``runs`` times, one round at a time, rotating the order each round."""
    names = list(workloads)
    results: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            results[name].append(workloads[name]())
            sys.stderr.write(".")
            sys.stderr.flush()
    sys.stderr.write("\n")
    return results


def median(xs: Sequence[float]) -> float:
    return bench.median(xs)


def paired_ratio(results: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``results[name][i] / results[base][i]`` (runs of the same round)."""
    return median([x / b for x, b in zip(results[name], results[base]) if b])


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rate(x: float) -> str:
    return f"{x:,.0f}"


def ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}x" if base else "-"


def orders(n: int = 1000) -> list[dict]:
    """Realistic order values, exactly RECORD_SIZE bytes of JSON each (generate_orders, trimmed or
    padded by bench.make_values)."""
    return bench.make_values(n, RECORD_SIZE)


def partition_logs(directory: str) -> list[str]:
    return [os.path.join(directory, log_name(b)) for b in list_segments(directory)]


# -- baselines -------------------------------------------------------------------------------------

def raw_produce(path: str, values: Sequence[Any], n: int, batch: int, durable: bool) -> float:
    """orjson + crc32 per record, one write (+ fdatasync) per batch; records per second."""
    dumps, crc = orjson.dumps, zlib.crc32
    nv = len(values)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        start = time.perf_counter()
        i = 0
        while i < n:
            m = min(batch, n - i)
            lines = []
            for j in range(i, i + m):
                body = dumps(values[j % nv])
                lines.append(b"%08x %b\n" % (crc(body), body))
            os.write(fd, b"".join(lines))
            if durable:
                os.fdatasync(fd)
            i += m
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)
    return n / elapsed


def _plain_read(paths: Sequence[str], per_line: Callable[[bytes], object]) -> float:
    start = time.perf_counter()
    count = 0
    for path in paths:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        lines.pop()
        for line in lines:
            per_line(line)
        count += len(lines)
    return count / (time.perf_counter() - start)


def plain_read_loads(paths: Sequence[str]) -> float:
    """Read each file, split on LF, orjson.loads every line; records per second."""
    return _plain_read(paths, orjson.loads)


def plain_read_crc(paths: Sequence[str]) -> float:
    """Read each file, split on LF, crc32 every line; records per second."""
    return _plain_read(paths, zlib.crc32)


def sqlite_wal(path: str, values: Sequence[Any], n: int, txn: int = 1000) -> float:
    """SQLite, journal_mode=WAL, synchronous=FULL, executemany per transaction of ``txn``."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE records (offset INTEGER PRIMARY KEY, timestamp INTEGER, key TEXT, value TEXT)")
        dumps = orjson.dumps
        nv = len(values)
        start = time.perf_counter()
        i = 0
        while i < n:
            m = min(txn, n - i)
            ts = int(time.time() * 1000)
            db.execute("BEGIN")
            db.executemany("INSERT INTO records VALUES (?, ?, NULL, ?)",
                           [(j, ts, dumps(values[j % nv]).decode()) for j in range(i, i + m)])
            db.execute("COMMIT")
            i += m
        elapsed = time.perf_counter() - start
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
    return n / elapsed


def queue_pipeline(values: Sequence[Any], n: int) -> float:
    """A producer thread puts n records on a queue.Queue; a consumer thread takes them; records/s."""
    q: queue.Queue = queue.Queue()
    got = [0]

    def consume() -> None:
        get = q.get
        count = 0
        while get() is not None:
            count += 1
        got[0] = count

    consumer = threading.Thread(target=consume)
    nv = len(values)
    start = time.perf_counter()
    consumer.start()
    put = q.put
    for i in range(n):
        put(values[i % nv])
    put(None)
    consumer.join()
    elapsed = time.perf_counter() - start
    assert got[0] == n
    return n / elapsed


@contextmanager
def fresh_topic(data_dir: str, prefix: str, partitions: int = 1) -> Iterator[str]:
    """The name of a topic created for one run (``prefix`` and a unique number), deleted afterwards."""
    from logbroker.storage.topic import Topic
    topic = f"{prefix}{time.monotonic_ns()}"
    Topic.create(data_dir, topic, partitions).close()
    try:
        yield topic
    finally:
        Topic(data_dir, topic).delete()


def logbroker_send_batch(data_dir: str, values: Sequence[Any], n: int, batch: int, fsync: str) -> float:
    """``Producer.send_batch`` of ``batch`` values at a time (the bulk path) into a fresh one-partition
    topic, deleted afterwards; records per second."""
    from logbroker.clients.producer import Producer
    chunks = [list(values[i:i + batch]) for i in range(0, len(values) - batch + 1, batch)] or [list(values)]
    with fresh_topic(data_dir, "b") as topic:
        producer = Producer(data_dir, fsync=fsync)
        try:
            producer._topic(topic).log(0)  # open the partition before the clock starts, as produce_perf does
            send_batch = producer.send_batch
            start = time.perf_counter()
            sent = 0
            while sent < n:
                chunk = chunks[(sent // batch) % len(chunks)][:n - sent]
                send_batch(topic, chunk, partition=0)
                sent += len(chunk)
            elapsed = time.perf_counter() - start
        finally:
            producer.close()
    return n / elapsed


def logbroker_produce(data_dir: str, values: Sequence[Any], n: int, batch: int, fsync: str,
                      producers: int = 1, partitions: int = 1) -> float:
    """bench.produce_perf into a fresh topic, deleted afterwards; records per second."""
    with fresh_topic(data_dir, "p", partitions) as topic:
        result = bench.produce_perf(data_dir, topic, n, values=values, batch_size=batch, fsync=fsync,
                                    producers=producers, partitions=partitions)
    return result.records_per_sec


def logbroker_send(data_dir: str, values: Sequence[Any], n: int, flush_every: int | None,
                   partitions: int = 1, **producer_config: Any) -> float:
    """A plain ``Producer.send`` loop with the producer's **default** settings (fsync=always, linger
    5 ms, batch.size 16 KiB) into a fresh topic, deleted afterwards: ``flush()`` every
    ``flush_every`` records, or never (``None``: the sender thread and linger alone), then
    ``close()``, inside the clock; records per second."""
    from logbroker.clients.producer import Producer
    with fresh_topic(data_dir, "s", partitions) as topic:
        producer = Producer(data_dir, **producer_config)
        try:
            t = producer._topic(topic)
            for p in range(partitions):
                t.log(p)  # open the partitions before the clock starts, as produce_perf does
            send, flush = producer.send, producer.flush
            nv = len(values)
            start = time.perf_counter()
            if flush_every is None:
                for i in range(n):
                    send(topic, values[i % nv])
            else:
                for i in range(n):
                    send(topic, values[i % nv])
                    if i % flush_every == flush_every - 1:
                        flush()
            producer.close()
            elapsed = time.perf_counter() - start
        finally:
            producer.close()
    return n / elapsed
