"""logbroker serve against logbroker's own API, Kafka clients on one side, the library on the other.

    python benchmarks/serve.py [--records 50000] [--rounds 5] [--dir DIR] [--rss-sizes 100000,1000000]
    python benchmarks/serve.py --idle-instructions

Workloads (medians of interleaved rounds; the ratio is the median of per-round ratios, each
between runs made back to back on this noisy shared machine):

- produce: a confluent-kafka producer, acks=all, linger.ms=5, the topic's default fsync=always,
  records of one order (~100 B of compact JSON) to one partition, through a server in another
  process; baseline: ``Producer.send_batch`` of the same values in batches of 1,000 (fsync=always).
- consume: a confluent-kafka consumer assigned to that partition reads it from offset 0; baseline:
  a native ``Consumer`` poll loop (max_poll_records 500) over the same partition.
- redis: Redis Streams, XADD of the same values pipelined by 1,000 (AOF on, appendfsync everysec),
  against the produce through the server of the same round; skipped, saying so, when no
  ``redis-server`` is on PATH (a benchmark-only tool, never needed by the tests).
- client alone: the produce loop into a confluent-kafka producer with no reachable broker (its
  records only queue): what the client itself costs, a ceiling for any server.
- e2e: confluent producer (acks=all; librdkafka's default linger.ms of 5, then linger.ms 0) ->
  confluent consumer (another process, fetch.wait.max.ms 100) through the server at 1,000
  records/s for 5 s: p50 and p99 of (receive time - CreateTime), and of (receive time - the send
  time each record carries in a header, which CreateTime's whole milliseconds truncate).
- idle: the server's CPU while 100 confluent consumers assigned at a partition's end long-poll it;
  with ``--idle-instructions`` (and nothing else), the server's instructions per idle long poll
  under callgrind instead, the load cannot move them.
- server RSS after the rounds (VmRSS), and with ``--rss-sizes``, a fresh server's VmRSS and peak
  (VmHWM) after each size's records were produced and read back through it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
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


def client_alone(n: int) -> float:
    """The same ``produce()`` loop into a producer whose broker is unreachable (its records only
    queue): the client's own cost per record, a ceiling no server can lift."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": max(n, 1000),
                  "linger.ms": 5, "log_level": 0})
    t0 = time.perf_counter()
    for _ in range(n):
        p.produce("t", value=VALUE, partition=0)
    rate = n / (time.perf_counter() - t0)
    p.purge()
    return rate


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


def redis_xadd(data_dir: str, stream: str, n: int) -> float | str:
    """XADD ``n`` values pipelined by 1,000 to a fresh redis-server (AOF, appendfsync everysec):
    records/s, or why it was skipped. Speaks RESP over a socket (no client package needed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        return "skipped: no redis-server on PATH (apt-get install redis-server)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.makedirs(data_dir, exist_ok=True)
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir, "--save", "",
                             "--appendonly", "yes", "--appendfsync", "everysec"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            return "skipped: redis-server did not start"
        name = stream.encode()
        command = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%b\r\n$1\r\n*\r\n$1\r\nv\r\n$%d\r\n%b\r\n" % (
            len(name), name, len(VALUE), VALUE)
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            k = min(1000, n - i)
            conn.sendall(command * k)
            replies, buf = 0, b""
            while replies < k:  # each reply: "$<len>" and the id, two lines
                buf += conn.recv(1 << 16)
                if b"-" in buf[:1]:
                    raise RuntimeError(f"redis refused XADD: {buf[:200]!r}")
                replies = buf.count(b"\r\n") // 2
        rate = n / (time.perf_counter() - t0)
        conn.close()
        return rate
    finally:
        proc.terminate()
        proc.wait()


_E2E_CONSUMER = """
import struct, sys, time
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "e2e", "enable.auto.commit": False,
              "fetch.wait.max.ms": 100})
c.assign([TopicPartition(sys.argv[2], 0, 1)])  # after the warm-up record
print("ready", flush=True)
created, sent, n = [], [], int(sys.argv[3])
while len(sent) < n:
    m = c.poll(5)
    if m is not None and not m.error():
        now = time.time()
        created.append(now * 1000 - m.timestamp()[1])
        sent.append((now - struct.unpack(">d", m.headers()[0][1])[0]) * 1000)
for lat in (created, sent):
    lat.sort()
    print(lat[len(lat) // 2], lat[int(len(lat) * 0.99)], end=" ")
print(flush=True)
"""


def e2e(bootstrap: str, topic: str, seconds: float = 5.0, rate: int = 1000,
        linger_ms: int | None = None) -> tuple[float, float, float, float]:
    """p50 and p99 of (receive time - CreateTime), then of (receive time - the send time the record
    carries in a header): CreateTime is in whole milliseconds, truncated, which adds 0.5 ms on
    average to the first pair."""
    from confluent_kafka import Producer
    n = int(seconds * rate)
    settings = {"bootstrap.servers": bootstrap, "acks": "all"}  # None: librdkafka's default linger.ms (5)
    if linger_ms is not None:
        settings["linger.ms"] = linger_ms
    p = Producer(settings)
    p.produce(topic, value=b"warm", partition=0)
    p.flush(10)
    consumer = subprocess.Popen([sys.executable, "-c", _E2E_CONSUMER, bootstrap, topic, str(n)],
                                stdout=subprocess.PIPE, text=True)
    consumer.stdout.readline()
    # The throughput workloads before this one (and Redis's AOF) leave hundreds of MB for the
    # kernel to write back; an fdatasync queued behind that writeback took 30-200 ms in traces
    # (serve_trace.py), which measures the disk's backlog, not the server: write it back first.
    os.sync()
    time.sleep(1.0)
    t0 = time.perf_counter()
    for i in range(n):
        while time.perf_counter() < t0 + i / rate:
            p.poll(0)
        now = time.time()
        p.produce(topic, value=VALUE, partition=0, timestamp=int(now * 1000), headers=[("sent", struct.pack(">d", now))])
        p.poll(0)
    p.flush(30)
    p50, p99, sent50, sent99 = map(float, consumer.stdout.readline().split())
    consumer.wait()
    return p50, p99, sent50, sent99


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


def _idle_fetch_frame(wait_ms: int) -> bytes:
    """The Fetch v11 an idle consumer sends every long poll: partition idle-0 at offset 1, its end."""
    from logbroker.kafka.schemas import FETCH
    from logbroker.kafka.wire import encode
    body = bytearray(struct.pack(">hhih", 1, 11, 7, 4) + b"idle")
    encode(FETCH.request, {"MaxWaitMs": wait_ms, "MinBytes": 1, "Topics": [{"Topic": "idle", "Partitions": [
        {"Partition": 0, "FetchOffset": 1, "PartitionMaxBytes": 1 << 20}]}]}, 11, False, body)
    return struct.pack(">i", len(body)) + bytes(body)


def _idle_server_instructions(base: str, fetches: int, connections: int, wait_ms: int) -> int:
    """Instructions (callgrind, the whole server process) of a server started, sent ``fetches``
    idle long polls by ``connections`` connections (each re-sent as soon as it is answered), and
    stopped."""
    import re
    import selectors
    import signal
    from logbroker import Broker, Producer
    data_dir = tempfile.mkdtemp(dir=base)
    Broker(data_dir).create_topic("idle", 1)
    with Producer(data_dir) as p:
        p.send("idle", {"n": 1}, partition=0)
    server = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
                               "logbroker", "serve", "--port", "0", "--data-dir", data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    host, port = server.stdout.readline().split()[2].rsplit(":", 1)
    frame, sel = _idle_fetch_frame(wait_ms), selectors.DefaultSelector()
    for _ in range(min(connections, fetches)):
        s = socket.create_connection((host, int(port)))
        sel.register(s, selectors.EVENT_READ, bytearray())
        s.sendall(frame)
    answered, sent = 0, min(connections, fetches)
    while answered < fetches:
        for key, _ in sel.select(60):
            buf = key.data
            buf += key.fileobj.recv(1 << 16)
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                del buf[:4 + struct.unpack_from(">i", buf)[0]]
                answered += 1
                if sent < fetches:
                    key.fileobj.sendall(frame)
                    sent += 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate()
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {err[-500:]}")
    return int(found.group(1))


def idle_instructions(base: str, connections: int = 100, wait_ms: int = 500) -> float:
    """Instructions per idle long poll of the server process (callgrind; needs valgrind): the
    difference of two runs, 300 and 1,300 polls, over the 1,000 polls between them."""
    small = _idle_server_instructions(base, 300, connections, wait_ms)
    large = _idle_server_instructions(base, 1300, connections, wait_ms)
    return (large - small) / 1000


def _rss(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (peak) of a process, in MB."""
    status = open(f"/proc/{pid}/status").read()
    return tuple(int(status.split(f"{k}:")[1].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


def rss_by_size(base: str, sizes: list[int]) -> list[tuple[int, float, float]]:
    """A fresh server per size: that many records produced (confluent) and read back (confluent)."""
    out = []
    for n in sizes:
        server, bootstrap = start_server(os.path.join(base, f"rss-{n}"))
        try:
            kafka_produce(bootstrap, "rss", n)
            kafka_consume(bootstrap, "rss", n)
            out.append((n, *_rss(server.pid)))
        finally:
            server.terminate()
            server.wait()
        shutil.rmtree(os.path.join(base, f"rss-{n}"), ignore_errors=True)
    return out


def rounds_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the benchmarks against a ``logbroker serve``: records per round, rounds, and
    where their temp directories go."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None)
    return ap


def client_versions() -> str:
    """The start of the environment line of those benchmarks: Python and the Kafka client's versions."""
    import confluent_kafka
    return (f"Python {sys.version.split()[0]}, confluent-kafka {confluent_kafka.version()[0]} (librdkafka "
            f"{confluent_kafka.libversion()[0]})")


def main() -> None:
    ap = rounds_parser(__doc__)
    ap.add_argument("--rss-sizes", default="", help="comma-separated record counts, e.g. 100000,1000000")
    ap.add_argument("--idle-instructions", action="store_true",
                    help="only count the server's instructions per idle long poll (callgrind, ~3 min)")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="serve-bench-", dir=args.dir)
    if args.idle_instructions:
        print(f"instructions per idle long poll (100 connections, MaxWaitMs 500, whole server process): "
              f"{idle_instructions(base):,.0f}")
        return
    from logbroker.kafka.crc32c import NATIVE
    print(f"# {client_versions()}, CRC-32C {'google-crc32c' if NATIVE else 'pure Python'}, "
          f"{os.cpu_count()} CPUs, {args.records} records of {len(VALUE)} B, {args.rounds} rounds")
    server, bootstrap = start_server(os.path.join(base, "served"))
    native_dir = os.path.join(base, "native")
    rows: dict[str, list] = {"produce": [], "consume": [], "produce vs Redis XADD": [],
                             "produce vs the client alone (no broker)": []}
    redis_skipped = None
    for r in range(args.rounds):
        topic = f"r{r}"
        k = kafka_produce(bootstrap, topic, args.records)
        nat = native_produce(native_dir, topic, args.records)
        rows["produce"].append((k, nat))
        rows["produce vs the client alone (no broker)"].append((k, client_alone(args.records)))
        red = redis_xadd(os.path.join(base, f"redis-{r}"), topic, args.records)
        if isinstance(red, str):
            redis_skipped = red
        else:
            rows["produce vs Redis XADD"].append((k, red))
        k = kafka_consume(bootstrap, topic, args.records)
        nat = native_consume(native_dir, topic, args.records)
        rows["consume"].append((k, nat))
    latencies = {"linger.ms 5 (default)": e2e(bootstrap, "e2e"), "linger.ms 0": e2e(bootstrap, "e2e0", linger_ms=0)}
    idle = idle_cpu(server, bootstrap)
    rss = _rss(server.pid)[0]
    server.terminate()
    server.wait()
    print("\n| workload | through the server (records/s) | baseline | ratio |\n|---|---|---|---|")
    for name, pairs in rows.items():
        if pairs:
            print(f"| {name} | {statistics.median(k for k, _ in pairs):,.0f} | "
                  f"{statistics.median(n for _, n in pairs):,.0f} | {statistics.median(k / n for k, n in pairs):.2f}x |")
    if redis_skipped:
        print(f"\nRedis: {redis_skipped}")
    for name, (p50, p99, sent50, sent99) in latencies.items():
        print(f"\ne2e at 1,000 records/s for 5 s, producer {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"(from CreateTime, whole ms); from the send time: p50 {sent50:.1f} ms, p99 {sent99:.1f} ms")
    print(f"\nserver RSS {rss:.1f} MB; idle with 100 assigned consumers: {idle:.1f}% of a core")
    sizes = [int(x) for x in args.rss_sizes.split(",") if x]
    if sizes:
        print("\n| records produced and read back | server VmRSS (MB) | peak VmHWM (MB) |\n|---|---|---|")
        for n, now, peak in rss_by_size(base, sizes):
            print(f"| {n:,} | {now:.1f} | {peak:.1f} |")


if __name__ == "__main__":
    main()
