"""logbroker serve against logbroker's own API, Kafka clients on one side, the library on the other.

    python benchmarks/serve.py [--records 50000] [--rounds 5] [--dir DIR]

Workloads (medians of interleaved rounds; the ratio is the median of per-round ratios, each
between runs made back to back on this noisy shared machine):

- produce: a confluent-kafka producer, acks=all, linger.ms=5, the topic's default fsync=always,
  records of one order (~100 B of compact JSON) to one partition, through a server in another
  process; baseline: ``Producer.send_batch`` of the same values in batches of 1,000 (fsync=always).
- consume: a confluent-kafka consumer assigned to that partition reads it from offset 0; baseline:
  a native ``Consumer`` poll loop (max_poll_records 500) over the same partition.
- e2e: confluent producer (acks=all, default linger.ms) -> confluent consumer (another process,
  fetch.wait.max.ms 100) through the server at 1,000 records/s for 5 s: p50 and p99 of
  (receive time - create timestamp).
- idle: the server's CPU while 100 confluent consumers assigned at a partition's end long-poll it.
- server RSS after the rounds (VmRSS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

VALUE = json.dumps({"txid": "5f1e0f3c-1f0e-4c1e-9d7e-3b2a1f0e9d7e", "item": "lightstick", "qty": 2,
                    "price": 12.5}, separators=(",", ":")).encode()


def start_server(data_dir: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "logbroker", "serve", "--port", "0", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().split()[2]


def kafka_produce(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=VALUE, partition=0)
                break
            except BufferError:
                p.poll(0.005)
    assert p.flush(120) == 0
    return n / (time.perf_counter() - t0)


def native_produce(data_dir: str, topic: str, n: int) -> float:
    from logbroker import Broker, Producer
    Broker(data_dir).create_topic(topic, 1)
    values = [json.loads(VALUE)] * n
    with Producer(data_dir) as p:
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            p.send_batch(topic, values[i:i + 1000], partition=0)
        p.flush()
        return n / (time.perf_counter() - t0)


def kafka_consume(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, t0 = 0, time.perf_counter()
    while got < n:
        got += sum(1 for m in c.consume(1000, 5.0) if not m.error())
    rate = n / (time.perf_counter() - t0)
    c.close()
    return rate


def native_consume(data_dir: str, topic: str, n: int) -> float:
    from logbroker import Consumer
    c = Consumer(topic, data_dir=data_dir, auto_offset_reset="earliest")
    got, t0 = 0, time.perf_counter()
    while got < n:
        got += sum(len(rs) for rs in c.poll(timeout_ms=1000).values())
    rate = n / (time.perf_counter() - t0)
    c.close()
    return rate


_E2E_CONSUMER = """
import sys, time
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "e2e", "enable.auto.commit": False,
              "fetch.wait.max.ms": 100})
c.assign([TopicPartition(sys.argv[2], 0, 0)])
print("ready", flush=True)
lat, n = [], int(sys.argv[3])
while len(lat) < n:
    m = c.poll(5)
    if m is not None and not m.error():
        lat.append(time.time() * 1000 - m.timestamp()[1])
lat.sort()
print(lat[len(lat) // 2], lat[int(len(lat) * 0.99)], flush=True)
"""


def e2e(bootstrap: str, topic: str, seconds: float = 5.0, rate: int = 1000) -> tuple[float, float]:
    from confluent_kafka import Producer
    n = int(seconds * rate)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})  # librdkafka's default linger.ms (5)
    p.produce(topic, value=b"warm", partition=0)
    p.flush(10)
    consumer = subprocess.Popen([sys.executable, "-c", _E2E_CONSUMER, bootstrap, topic, str(n + 1)],
                                stdout=subprocess.PIPE, text=True)
    consumer.stdout.readline()
    time.sleep(1.0)
    t0 = time.perf_counter()
    for i in range(n):
        while time.perf_counter() < t0 + i / rate:
            p.poll(0)
        p.produce(topic, value=VALUE, partition=0, timestamp=int(time.time() * 1000))
        p.poll(0)
    p.flush(30)
    p50, p99 = map(float, consumer.stdout.readline().split())
    consumer.wait()
    return p50, p99


def idle_cpu(server: subprocess.Popen, bootstrap: str, consumers: int = 100, seconds: float = 10.0) -> float:
    """The server's CPU (% of a core) while ``consumers`` confluent consumers, assigned at the end of
    a partition, long-poll it with nothing to read."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce("idle", b"x", partition=0)
    p.flush(10)
    cs = []
    for i in range(consumers):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"idle-{i}", "enable.auto.commit": False})
        c.assign([TopicPartition("idle", 0, 1)])
        cs.append(c)
    time.sleep(5)

    def cpu() -> float:
        fields = open(f"/proc/{server.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    c0, t0 = cpu(), time.monotonic()
    time.sleep(seconds)
    used = 100 * (cpu() - c0) / (time.monotonic() - t0)
    for c in cs:
        c.close()
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="serve-bench-", dir=args.dir)
    import confluent_kafka
    from logbroker.kafka.crc32c import NATIVE
    print(f"# Python {sys.version.split()[0]}, confluent-kafka {confluent_kafka.version()[0]} (librdkafka "
          f"{confluent_kafka.libversion()[0]}), CRC-32C {'google-crc32c' if NATIVE else 'pure Python'}, "
          f"{os.cpu_count()} CPUs, {args.records} records of {len(VALUE)} B, {args.rounds} rounds")
    server, bootstrap = start_server(os.path.join(base, "served"))
    native_dir = os.path.join(base, "native")
    rows: dict[str, list] = {"produce": [], "consume": []}
    for r in range(args.rounds):
        topic = f"r{r}"
        k = kafka_produce(bootstrap, topic, args.records)
        nat = native_produce(native_dir, topic, args.records)
        rows["produce"].append((k, nat))
        k = kafka_consume(bootstrap, topic, args.records)
        nat = native_consume(native_dir, topic, args.records)
        rows["consume"].append((k, nat))
    p50, p99 = e2e(bootstrap, "e2e")
    idle = idle_cpu(server, bootstrap)
    rss = int(open(f"/proc/{server.pid}/status").read().split("VmRSS:")[1].split()[0]) / 1024
    server.terminate()
    server.wait()
    print("\n| workload | through the server (records/s) | native | ratio |\n|---|---|---|---|")
    for name, pairs in rows.items():
        print(f"| {name} | {statistics.median(k for k, _ in pairs):,.0f} | "
              f"{statistics.median(n for _, n in pairs):,.0f} | {statistics.median(k / n for k, n in pairs):.2f}x |")
    print(f"\ne2e at 1,000 records/s for 5 s: p50 {p50:.1f} ms, p99 {p99:.1f} ms; server RSS {rss:.1f} MB; "
          f"idle with 100 assigned consumers: {idle:.1f}% of a core")


if __name__ == "__main__":
    main()
