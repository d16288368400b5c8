"""``logbroker bench produce|consume|e2e --bootstrap-server``: Kafka's perf tools against a cluster
(``cluster``: a :class:`logbroker.remote.cluster.Cluster`), with the local benchmarks' results
(:class:`~logbroker.tools.bench_produce.ProduceResult`, :class:`~logbroker.tools.bench_consume.ConsumeResult`,
:class:`~logbroker.tools.bench_e2e.E2EResult`), so they print the same lines. One producer and one
consumer in this process (librdkafka's own threads do the I/O); latency is send to acknowledgment
(produce) and send to receipt (e2e). The environment header names the cluster where the local one
names the data directory and its file system.
"""

from __future__ import annotations

import time
from array import array
from typing import Any

import orjson

from .. import errors
from .bench_common import encoded_bytes, environment, latency_fields, make_values
from .bench_consume import ConsumeResult
from .bench_e2e import E2EResult
from .bench_produce import ProduceResult

__all__ = ["produce_perf", "consume_perf", "e2e_perf"]


def _environment(cluster: Any, record_size: Any) -> dict[str, Any]:
    env = environment(".", fsync="cluster's", record_size=record_size)
    env.update(data_dir=f"cluster {cluster.bootstrap_servers}", filesystem="Kafka protocol")
    return env


def _ensure_topic(cluster: Any, topic: str, partitions: int) -> int:
    if topic not in cluster.list_topics():
        cluster.create_topic(topic, partitions)
    return cluster.topic(topic).partitions


def produce_perf(cluster: Any, topic: str, num_records: int, *, record_size: int | None = None,
                 payload_file: str | None = None, partitions: int = 1, throughput: float = -1) -> ProduceResult:
    """Kafka's producer-perf-test over the cluster: values sent round-robin over the partitions."""
    if num_records < 1 or partitions < 1:
        raise errors.InvalidConfigError("--num-records and --partitions must be at least 1")
    values = make_values(min(num_records, 1000), record_size, payload_file)
    payloads = [orjson.dumps(v) for v in values]
    nparts = _ensure_topic(cluster, topic, partitions)
    lat = array("q")
    sent_at: dict[int, int] = {}

    def acked(err: Any, msg: Any, n: int) -> None:
        if err is None:
            lat.append(time.perf_counter_ns() - sent_at.pop(n))

    with cluster.producer() as producer:
        start = time.perf_counter_ns()
        for n in range(num_records):
            if throughput > 0:
                ahead = start + n * 1e9 / throughput - time.perf_counter_ns()
                if ahead > 0:
                    time.sleep(ahead / 1e9)
            sent_at[n] = time.perf_counter_ns()
            producer.send_bytes(topic, payloads[n % len(payloads)], partition=n % nparts,
                                on_delivery=lambda err, msg, n=n: acked(err, msg, n))
            if n % 1000 == 999:
                producer.poll(0)
        producer.flush()
        end = time.perf_counter_ns()
    env = _environment(cluster, record_size)
    return ProduceResult(records=num_records, bytes=encoded_bytes(values, num_records), elapsed_s=(end - start) / 1e9,
                         batch_size=0, producers=1, partitions=nparts, fsync=env["fsync"], environment=env,
                         **latency_fields(lat))


def consume_perf(cluster: Any, topic: str, num_records: int | None = None, *,
                 group: str | None = None) -> ConsumeResult:
    """Kafka's consumer-perf-test over the cluster: read from the log start offset (or the group's
    committed offsets) until ``num_records`` or the log end offsets of the start."""
    count = cluster.topic(topic).partitions
    start_offsets, end_offsets = cluster.start_end_offsets(topic, range(count))
    available = sum(end_offsets[p] - start_offsets[p] for p in range(count))
    want = available if num_records is None else min(num_records, available)
    consumer = cluster.consumer(group_id=group, auto_offset_reset="earliest")
    started_ms, started = int(time.time() * 1000), time.perf_counter()
    if group is None:
        consumer.assign([(topic, p) for p in range(count)])
        for p in range(count):
            consumer.seek(topic, p, start_offsets[p])
    else:
        consumer.subscribe([topic])
    records = size = 0
    first_at = None
    idle_since = time.monotonic()
    try:
        while records < want and time.monotonic() - idle_since < cluster.timeout_ms / 1000:
            batch = consumer.poll(500, max_records=min(500, want - records))
            if batch:
                first_at = first_at or time.perf_counter()
                idle_since = time.monotonic()
            for got in batch.values():
                records += len(got)
                size += sum(len(orjson.dumps(r.value)) for r in got)
    finally:
        consumer.close(autocommit=group is not None)
    elapsed = time.perf_counter() - started
    return ConsumeResult(start_ms=started_ms, end_ms=int(time.time() * 1000), bytes=size, records=records,
                         rebalance_ms=((first_at or started) - started) * 1000 if group else 0.0, elapsed_s=elapsed,
                         expected=num_records, group=group, reader="confluent-kafka",
                         environment=_environment(cluster, None))


def e2e_perf(cluster: Any, rate: float, num_records: int, *, topic: str = "logbroker-e2e") -> E2EResult:
    """Kafka's EndToEndLatency over the cluster: each record's time from send to receipt by a
    consumer assigned to the topic's end (one partition)."""
    if rate <= 0 or num_records < 1:
        raise errors.InvalidConfigError("--rate and --num-records must be positive")
    _ensure_topic(cluster, topic, 1)
    consumer = cluster.consumer(auto_offset_reset="latest")
    consumer.assign([(topic, 0)])
    consumer.seek(topic, 0, cluster.start_end_offsets(topic, [0])[1][0])
    lat = array("q")
    with cluster.producer(**{"linger.ms": 0}) as producer:
        start = time.perf_counter_ns()
        received = 0
        for n in range(num_records):
            ahead = start + n * 1e9 / rate - time.perf_counter_ns()
            if ahead > 0:
                time.sleep(ahead / 1e9)
            producer.send_bytes(topic, orjson.dumps({"n": n, "sent_ns": time.perf_counter_ns()}), partition=0)
            producer.poll(0)
            received += _receive(consumer, lat, 0)
        sent_s = (time.perf_counter_ns() - start) / 1e9
        deadline = time.monotonic() + cluster.timeout_ms / 1000
        while received < num_records and time.monotonic() < deadline:
            received += _receive(consumer, lat, 100)
    consumer.close(autocommit=False)
    return E2EResult(records=len(lat), rate=rate, actual_rate=num_records / sent_s if sent_s else 0.0,
                     fsync="cluster's", reader="confluent-kafka", environment=_environment(cluster, None),
                     **latency_fields(lat))


def _receive(consumer: Any, lat: array, timeout_ms: int) -> int:
    got = 0
    for records in consumer.poll(timeout_ms).values():
        now = time.perf_counter_ns()
        for r in records:
            lat.append(now - r.value["sent_ns"])
            got += 1
    return got
