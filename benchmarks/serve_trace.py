"""Where the end-to-end latency through ``logbroker serve`` goes, record by record.

    python benchmarks/serve_trace.py [--linger-ms N] [--seconds 5] [--rate 1000]

The e2e workload of ``serve.py`` (a confluent-kafka producer, acks=all, to a confluent-kafka
consumer in another process, fetch.wait.max.ms 100), with a server that stamps its own events:
each group commit's append (start, and end = fdatasync done), each partition read of a fetch, each
wake of a waiting fetch, each lock retry, each garbage collection, and every turn of its event
loop that came more than 4 ms late. Joined with the clients' stamps (the send time each record
carries, its receive time), each record's latency splits into:

- send -> append start: the producer's linger.ms, the request's trip, and any wait for the
  event loop (which runs the fdatasync of an earlier group commit); split at the time the first
  produce request of the group commit was read (its frame complete) into the client's share and
  the trip, and the server's (waiting for the loop, decoding, the group commit's turn);
- append: its write and fdatasync;
- append end -> the fetch's read of it: waking the waiting fetch;
- that read -> received: encoding, the trip back, the consumer's own thread hand-off.

The server stamps by wrapping its own methods in its process (private names: a measuring tool of
this version, not an interface). Wall-clock figures, so say how loaded the machine was.

    python benchmarks/serve_trace.py --woken-instructions [--rounds 200]

The server's instructions per woken fetch, counted by callgrind (needs valgrind), which the
machine's load cannot move: in one process and without a network, rounds of a long poll parked at
the end of a partition, a produce (acks=all) through the server's request handling, and the
poll's answer bytes; minus the same rounds without the poll. Each is run over ``--rounds`` and
twice as many, and the difference taken, so start-up cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

_SERVER = "server"


def traced_server(data_dir: str, out_path: str) -> None:
    """Run a server on a free port, its events stamped, written as JSON to ``out_path`` at exit."""
    import atexit

    from logbroker.kafka import handlers, server, storage
    events: list = []
    now = time.time

    def wrap(cls, name, before_after):
        real = getattr(cls, name)
        setattr(cls, name, before_after(real))

    arrivals: list[float] = []  # produce requests read since the last append

    def handle(real):
        def handling(self, frame, conn):  # called as the request is read, before its task runs
            if frame[:2] == b"\x00\x00":
                arrivals.append(now())
            return real(self, frame, conn)
        return handling

    def append(real):
        def appended(self, topic, partition, batches):
            t = now()
            first = arrivals[0] if arrivals else t
            arrivals.clear()
            results = real(self, topic, partition, batches)
            events.append(("append", t, now(), results[0].base_offset, sum(r.count for r in results), first))
            return results
        return appended

    def fetch_partition(real):
        def read(self, name, partition, offset, *rest):
            out = real(self, name, partition, offset, *rest)
            events.append(("read", now(), offset, out["HighWatermark"], len(out["Records"])))
            return out
        return read

    def wait_append(real):
        async def woke(self, fut, timeout):
            t = now()
            moved = await real(self, fut, timeout)
            events.append(("woke", t, now(), moved))
            return moved
        return woke

    def retry(real):
        def retried(self, *args):
            events.append(("lock retry", now()))
            return real(self, *args)
        return retried

    wrap(server.KafkaServer, "_handle", handle)
    wrap(storage.Storage, "append", append)
    wrap(storage.Storage, "wait_append", wait_append)
    wrap(storage.Storage, "_retry_commit", retry)
    wrap(handlers.DataHandlers, "_fetch_partition", fetch_partition)
    started: list[float] = []
    gc.callbacks.append(lambda phase, info: started.append(now()) if phase == "start" else
                        events.append(("gc", started[-1], now(), info["generation"])))

    async def lag_probe() -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.001)
            late = time.monotonic() - t - 0.001
            if late > 0.004:
                events.append(("late turn", now(), late))
    atexit.register(lambda: json.dump(events, open(out_path, "w")))

    def ready(s) -> None:
        print(f"listening on 127.0.0.1:{s.port}", flush=True)
        asyncio.get_running_loop().create_task(lag_probe())
    server.serve(data_dir, handlers.ServerConfig(port=0), ready)


def woken_rounds(with_poll: bool, rounds: int) -> None:
    """``rounds`` produce requests of one record through the server's handlers, each waking a
    long poll parked before it when ``with_poll`` (runs under callgrind)."""
    from logbroker.kafka.batch import encode_batch
    from logbroker.kafka.schemas import FETCH, PRODUCE
    from logbroker.kafka.server import Connection, KafkaServer
    from logbroker.kafka.wire import encode
    from logbroker.storage.topic import Topic

    def frame(api, key: int, version: int, correlation: int, body: dict) -> bytes:
        out = bytearray(struct.pack(">hhih", key, version, correlation, 5) + b"trace")
        encode(api.request, body, version, False, out)
        return bytes(out)
    value = b'{"item":"lightstick","qty":2,"price":12.5}'

    async def main(data_dir: str) -> None:
        Topic.create(data_dir, "trace", 1).close()
        server = KafkaServer(data_dir)
        producer, consumer = Connection("producer"), Connection("consumer")
        for i in range(rounds):
            poll = None
            if with_poll:
                poll = asyncio.ensure_future(server._handle(frame(FETCH, 1, 11, i, {
                    "MaxWaitMs": 30_000, "MinBytes": 1, "Topics": [{"Topic": "trace", "Partitions": [
                        {"Partition": 0, "FetchOffset": i, "PartitionMaxBytes": 1 << 20}]}]}), consumer))
            for _ in range(3):  # in both, so that the difference is the poll's
                await asyncio.sleep(0)
            if poll is not None:
                assert not poll.done(), "the long poll did not park"
            batch = encode_batch(0, [(0, int(time.time() * 1000), None, [], value)])
            await server._handle(frame(PRODUCE, 0, 8, i, {"TransactionalId": None, "Acks": -1, "TimeoutMs": 30000,
                                                            "TopicData": [{"Name": "trace", "PartitionData": [
                                                                {"Index": 0, "Records": batch}]}]}), producer)
            if poll is not None:
                assert value in await poll, "the woken poll did not answer with the record"
        producer.close()
        consumer.close()
        await server.close()
    with tempfile.TemporaryDirectory(prefix="serve-woken-") as d:
        asyncio.run(main(d))


def woken_instructions(rounds: int) -> dict[str, float]:
    """Instructions per round with and without the poll, and per woken poll (their difference)."""
    import re
    counts = {}
    for mode in ("poll", "produce"):
        for n in (rounds, 2 * rounds):
            done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                                   __file__, "woken", mode, str(n)], capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONHASHSEED": "0"})
            counts[mode, n] = int(re.search(r"Collected : (\d+)", done.stderr).group(1))
    per = {mode: (counts[mode, 2 * rounds] - counts[mode, rounds]) / rounds for mode in ("poll", "produce")}
    return {"round with a woken poll": per["poll"], "round without": per["produce"],
            "woken poll": per["poll"] - per["produce"]}


_CONSUMER = """
import json, struct, sys, time
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "trace", "enable.auto.commit": False,
              "fetch.wait.max.ms": 100})
c.assign([TopicPartition(sys.argv[2], 0, 1)])
print("ready", flush=True)
got, n = [], int(sys.argv[3])
while len(got) < n:
    m = c.poll(5)
    if m is not None and not m.error():
        got.append((m.offset(), struct.unpack(">d", m.headers()[0][1])[0], time.time()))
print(json.dumps(got), flush=True)
"""


def run(linger_ms: int | None, seconds: float, rate: int) -> tuple[list, list]:
    """The server's events and the consumer's (offset, send time, receive time) per record."""
    from confluent_kafka import Producer
    base = tempfile.mkdtemp(prefix="serve-trace-")
    events_path = os.path.join(base, "events.json")
    server = subprocess.Popen([sys.executable, __file__, _SERVER, os.path.join(base, "data"), events_path],
                              stdout=subprocess.PIPE, text=True)
    bootstrap = server.stdout.readline().split()[2]
    settings = {"bootstrap.servers": bootstrap, "acks": "all"}
    if linger_ms is not None:
        settings["linger.ms"] = linger_ms
    p = Producer(settings)
    p.produce("trace", value=b"warm", partition=0)
    p.flush(10)
    n = int(seconds * rate)
    consumer = subprocess.Popen([sys.executable, "-c", _CONSUMER, bootstrap, "trace", str(n)],
                                stdout=subprocess.PIPE, text=True)
    consumer.stdout.readline()
    time.sleep(1.0)
    value = b'{"item":"lightstick","qty":2,"price":12.5}'
    t0 = time.perf_counter()
    for i in range(n):
        while time.perf_counter() < t0 + i / rate:
            p.poll(0)
        p.produce("trace", value=value, partition=0, headers=[("sent", struct.pack(">d", time.time()))])
        p.poll(0)
    p.flush(30)
    got = json.loads(consumer.stdout.readline())
    consumer.wait()
    server.terminate()
    server.wait()
    with open(events_path) as f:
        return json.load(f), got


def stages(events: list, got: list) -> list[tuple[float, ...]]:
    """Per record, in ms: total, send -> append start, append, append end -> read, read -> received;
    then send -> append start split at the first produce request of the group commit read."""
    appends = sorted((e for e in events if e[0] == "append"), key=lambda e: e[3])
    bases = [a[3] for a in appends]
    reads = [e for e in events if e[0] == "read" and e[4] > 0]
    rows = []
    for offset, sent, received in got:
        i = bisect.bisect_right(bases, offset) - 1
        read = next((r for r in reads if r[2] <= offset < r[3]), None)
        if i < 0 or read is None:
            continue
        _, start, end, _, _, first = appends[i]
        rows.append(tuple(1000 * x for x in (received - sent, start - sent, end - start, read[1] - end,
                                             received - read[1], first - sent, start - first)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--linger-ms", type=int, default=None, help="the producer's linger.ms (default: librdkafka's, 5)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--woken-instructions", action="store_true",
                    help="count the server's instructions per woken long poll instead (callgrind)")
    ap.add_argument("--rounds", type=int, default=200, help="rounds of --woken-instructions (and twice as many)")
    args = ap.parse_args()
    if args.woken_instructions:
        print("| instructions (callgrind) | per round |\n|---|---:|")
        for name, count in woken_instructions(args.rounds).items():
            print(f"| {name} | {count:,.0f} |")
        return
    events, got = run(args.linger_ms, args.seconds, args.rate)
    rows = stages(events, got)
    print(f"# {len(rows)} records at {args.rate}/s, linger.ms {args.linger_ms if args.linger_ms is not None else 5}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| stage (ms) | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|")
    names = ("send -> received", "send -> append start", "append (write + fdatasync)", "append end -> fetch read",
             "fetch read -> received", "(send -> request read)", "(request read -> append start)")
    for j, name in enumerate(names):
        xs = sorted(r[j] for r in rows)
        q = [xs[min(len(xs) - 1, int(len(xs) * p))] for p in (0.5, 0.9, 0.99)]
        print(f"| {name} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {xs[-1]:.2f} |")
    gcs = [e for e in events if e[0] == "gc"]
    late = [e[2] * 1000 for e in events if e[0] == "late turn"]
    print(f"\nlock retries {sum(1 for e in events if e[0] == 'lock retry')}; garbage collections {len(gcs)}, "
          f"longest {max([(e[2] - e[1]) * 1000 for e in gcs], default=0):.1f} ms; event-loop turns > 4 ms late: "
          f"{len(late)}, longest {max(late, default=0):.1f} ms")


if __name__ == "__main__":
    if sys.argv[1:2] == [_SERVER]:
        traced_server(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["woken"]:
        woken_rounds(sys.argv[2] == "poll", int(sys.argv[3]))
    else:
        main()
