"""Instructions per record, counted by valgrind's callgrind: ratios that a noisy machine cannot move.

    python benchmarks/instructions.py [--small N] [--large N] [--only send-default,raw-produce]

Wall-clock ratios on a shared 2-core machine swing by +-30% from run to run. Instruction counts do
not: the same program on the same input executes the same instructions whatever else runs. Each
workload runs twice under callgrind, over ``--small`` and ``--large`` records; the difference
divided by the difference in records is the cost of one record, with start-up, imports and the
creation of test data cancelled out. Ratios are baseline / workload (higher is better, as for
the wall-clock ratios of the other scripts).

Pairs (the same workloads as produce.py and consume.py):

- bulk-durable (Producer.send_batch of 1,000, fsync=always), produce-durable without the
  latency bookkeeping (a plain Producer.send loop, batches of ~1,000) and send-default (send.py's
  send loop: the producer's default settings, ``flush()`` every 1,000) against the raw loop;
- consume-parsed (PartitionReader.read) and consume-group (a Consumer in a group, touching every
  value) against read + split + orjson.loads;
- serve-produce and serve-consume: the instructions of a ``logbroker serve`` process (the server
  alone runs under callgrind) per record a confluent-kafka client produces (acks=all, linger.ms 5,
  the topic's default fsync=always, to one partition) or fetches (a consumer assigned to one
  partition, reading it from offset 0 to its end), against the native bulk-durable and
  consume-group: the server's CPU per record beside the library's own path (needs confluent-kafka).

What instruction counts miss: time spent waiting (fdatasync, page faults) and how fast each
instruction runs; large copies done with ``rep movsb`` count one instruction per byte, which
overstates them. They are a noise-free view of CPU work, not a replacement for the wall clock.
Needs valgrind (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import common

PAIRS = [("bulk-durable", "raw-produce"), ("send-loop", "raw-produce"), ("send-default", "raw-produce"),
         ("consume-parsed", "plain-read-loads"), ("consume-group", "plain-read-loads"),
         ("serve-produce", "bulk-durable"), ("serve-consume", "consume-group")]
SERVED = ("serve-produce", "serve-consume")  # workloads whose measured process is a server


def child(workload: str, data_dir: str, n: int) -> None:
    """One workload over the first ``n`` records (runs under callgrind)."""
    values = common.orders()
    if workload == "raw-produce":
        common.raw_produce(os.path.join(data_dir, "raw.log"), values, n, 1000, True)
    elif workload == "bulk-durable":
        common.logbroker_send_batch(data_dir, values, n, 1000, "always")
    elif workload == "send-loop":
        from logbroker.clients.producer import Producer
        with common.fresh_topic(data_dir, "s") as topic:
            with Producer(data_dir, fsync="always", batch_size=1000 * 374) as p:  # ~1,000 records a batch
                send = p.send
                for i in range(n):
                    send(topic, values[i % len(values)], partition=0)
    elif workload == "send-default":
        common.logbroker_send(data_dir, values, n, 1000)
    elif workload == "plain-read-loads":
        import orjson
        count = 0
        for path in common.partition_logs(os.path.join(data_dir, "c", "c-0")):
            with open(path, "rb") as f:
                lines = f.read().split(b"\n")
            lines.pop()
            for line in lines[:n - count]:
                orjson.loads(line)
            count += min(len(lines), n - count)
            if count >= n:
                break
    elif workload == "consume-parsed":
        from logbroker.storage.topic import Topic
        reader = Topic(data_dir, "c").reader(0)
        offset = 0
        while offset < n:
            recs = reader.read(offset, min(500, n - offset))
            for r in recs:  # touch every value, as consume.py does
                r.value
            offset = recs[-1].offset + 1
    elif workload == "consume-group":
        from logbroker.clients.consumer import Consumer
        c = Consumer("c", data_dir=data_dir, group_id=f"g{time.monotonic_ns()}", auto_offset_reset="earliest",
                     auto_commit_interval_ms=5000)  # max.poll.records: Kafka's 500
        count = 0
        while count < n:
            for records in c.poll(timeout_ms=1000, max_records=min(500, n - count)).values():
                count += len(records)
                for r in records:
                    r.value
        c.close()
    else:
        raise SystemExit(f"unknown workload {workload!r}")


def _collected(workload: str, stderr: str) -> int:
    match = re.search(r"Collected : (\d+)", stderr)
    if not match:
        raise RuntimeError(f"no instruction count from callgrind for {workload}: {stderr[-500:]}")
    return int(match.group(1))


def instructions(workload: str, data_dir: str, n: int, out_file: str = "/dev/null") -> int:
    if workload in SERVED:
        return served_instructions(workload, data_dir, n, out_file)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable,
                           os.path.abspath(__file__), "--child", workload, data_dir, str(n)],
                          capture_output=True, text=True, env=env, check=True)
    return _collected(workload, done.stderr)


def served_instructions(workload: str, data_dir: str, n: int, out_file: str) -> int:
    """Run ``logbroker serve`` under callgrind on a fresh data directory, drive it with a
    confluent-kafka client over ``n`` records, stop it with SIGTERM: the server's instructions."""
    import orjson
    from confluent_kafka import Consumer, Producer, TopicPartition
    from consume import fill
    from logbroker.storage.topic import Topic
    d = os.path.join(data_dir, f"{workload}-{n}")
    os.makedirs(d)
    values = [orjson.dumps(v) for v in common.orders()]
    if workload == "serve-consume":
        fill(d, "c", n, common.orders())
    else:
        Topic.create(d, "p", 1)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable,
                               "-m", "logbroker", "serve", "--port", "0", "--data-dir", d],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        bootstrap = server.stdout.readline().split()[2]
        if workload == "serve-produce":
            p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
            for i in range(n):
                while True:
                    try:
                        p.produce("p", value=values[i % len(values)], partition=0)
                        break
                    except BufferError:
                        p.poll(0.05)
            if p.flush(600) != 0:
                raise RuntimeError("the producer did not deliver every record in 600 s")
            del p  # disconnects before the server stops
        else:
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "instructions", "enable.auto.commit": False})
            c.assign([TopicPartition("c", 0, 0)])
            got = 0
            while got < n:
                got += sum(1 for m in c.consume(1000, 60.0) if not m.error())
            c.close()
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=600)
    return _collected(workload, stderr)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=30_000)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--callgrind-out", default=None, metavar="DIR",
                        help="keep each run's callgrind profile there (WORKLOAD-N.out), for callgrind_annotate")
    parser.add_argument("--only", default=None,
                        help="comma-separated workloads (default: every pair's); a pair is shown when both ran")
    args = parser.parse_args()
    wanted = None if args.only is None else set(args.only.split(","))
    known = {w for pair in PAIRS for w in pair}
    if wanted is not None and not wanted <= known:
        raise SystemExit(f"unknown workload(s) {sorted(wanted - known)}; known: {sorted(known)}")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    from consume import fill
    with common.temp_dir(args.dir) as d:
        common.header("Instructions per record (callgrind)", d, "always (produce) / never (fill)", 0,
                      f"differential between {args.small:,} and {args.large:,} records; PYTHONHASHSEED=0")
        fill(d, "c", args.large, common.orders())
        per = {}
        for workload in dict.fromkeys(w for pair in PAIRS for w in pair if wanted is None or w in wanted):
            out = [os.path.join(os.path.abspath(args.callgrind_out), f"{workload}-{n}.out") if args.callgrind_out
                   else "/dev/null" for n in (args.small, args.large)]
            small, large = instructions(workload, d, args.small, out[0]), instructions(workload, d, args.large, out[1])
            per[workload] = (large - small) / (args.large - args.small)
            sys.stderr.write(f"{workload}: {per[workload]:,.0f} instructions per record\n")
    print(common.table(["workload", "instructions/record", "baseline", "baseline instructions/record",
                        "ratio (baseline / workload)"],
                       [[w, f"{per[w]:,.0f}", b, f"{per[b]:,.0f}", f"{per[b] / per[w]:.2f}x"] for w, b in PAIRS
                        if w in per and b in per]))
    print()


if __name__ == "__main__":
    main()
