"""Kafka's end-to-end latency test for logbroker: :func:`e2e_perf` and its :class:`E2EResult`.

:func:`e2e_perf` produces at a fixed rate in this process while a spawned process tails the
partition; latency is ``time.time_ns()`` at receipt minus the ``ts_ns`` field of the value.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson

from .bench_common import (PROGRESS_WINDOW_S, environment, latency_fields, make_values, percentiles_text,
                           result_dict, stderr_progress)

__all__ = ["E2EResult", "e2e_perf"]


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
                f"{percentiles_text(self)}")

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self)


def _e2e_consumer(data_dir, topic, num_records, poll_interval, ready, results) -> None:
    """Tail partition 0 from offset 0 until ``num_records`` arrived; latency per record in ns."""
    try:
        from ..storage.topic import Topic
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
    Each record carries ``ts_ns`` = time.time_ns() at send(); the producer has its default settings
    (linger.ms 5, batch.size 16 KiB) and nobody calls flush(): the sender thread alone writes.
    """
    from ..clients.producer import Producer
    from ..storage.topic import Topic

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
        producer = Producer(data_dir, fsync=fsync)
        try:
            producer.topic(topic).log(0)
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
                    stderr_progress(f"{i + 1} records sent...")
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
                     environment=env, **latency_fields(lat))
