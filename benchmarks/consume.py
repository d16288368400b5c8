"""Consume throughput from offset 0 against plain reads of the same segment files. Markdown table.

    python benchmarks/consume.py [--runs 5] [--full]

One partition is filled once with N orders by the Producer (default batching, 16 KiB batches), then:

- consume-parsed: PartitionReader.read(offset, 500) to the high watermark, values decoded, each
  record's value touched;
  baseline: read each segment file, split on LF, orjson.loads every line;
- consume-raw: PartitionReader.read(offset, 500, raw=True), values left as JSON bytes (touched);
  baseline: read each segment file, split on LF, crc32 every line;
- consume-group: a Consumer in another process, in a new group each run, auto-committing every 5 s,
  polling (max.poll.records: Kafka's default, 500) until it has every record and touching each
  record's value; baseline: consume-parsed's.

Both readers verify every checksum (one line crc and one batch crc per batch). The page cache is
warm: this measures CPU, not the disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import common
from logbroker.clients.producer import Producer
from logbroker.storage.topic import Topic


def fill(data_dir: str, topic: str, n: int, values) -> None:
    Topic.create(data_dir, topic, 1)
    with Producer(data_dir, fsync="never") as p:
        for i in range(n):
            p.send(topic, values[i % len(values)], partition=0)


def read_all(data_dir: str, topic: str, raw: bool) -> float:
    t = Topic(data_dir, topic)
    reader = t.reader(0)
    try:
        start = time.perf_counter()
        offset, hw, count = 0, reader.high_watermark(), 0
        while offset < hw:
            recs = reader.read(offset, 500, raw)
            for r in recs:  # touch every value, as the group consumer does
                r.value
            count += len(recs)
            offset = recs[-1].offset + 1
        elapsed = time.perf_counter() - start
    finally:
        reader.close()
        t.close()
    return count / elapsed


_GROUP_CONSUMER = """
import sys, time
from logbroker.clients.consumer import Consumer

def main(data_dir, topic, group, n):  # a function, as the baseline: its loop uses fast locals
    c = Consumer(topic, data_dir=data_dir, group_id=group, auto_offset_reset="earliest",
                 auto_commit_interval_ms=5000)  # max.poll.records: Kafka's 500
    start, count = time.perf_counter(), 0
    while count < n:
        for records in c.poll(timeout_ms=1000).values():
            count += len(records)
            for r in records:
                r.value
    elapsed = time.perf_counter() - start
    c.close()
    return count / elapsed

print(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def group_consume(data_dir: str, topic: str, n: int) -> float:
    """Records/s of a group member in its own process (its start-up is not timed)."""
    group = f"bench-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    done = subprocess.run([sys.executable, "-c", _GROUP_CONSUMER, data_dir, topic, group, str(n)],
                          capture_output=True, text=True, env=env, check=True)
    return float(done.stdout)


def main() -> None:
    args = common.arg_parser(__doc__).parse_args()
    n = 1_000_000 if args.full else 200_000
    values = common.orders()
    with common.temp_dir(args.dir) as d:
        common.header("Consume throughput from offset 0", d, "never (fill)", args.runs,
                      f"{n:,} records in one partition, read 500 records per call")
        fill(d, "c", n, values)
        paths = common.partition_logs(Topic(d, "c").partition_path(0))
        res = common.interleave({
            "consume-parsed": lambda: read_all(d, "c", False),
            "read+split+orjson.loads": lambda: common.plain_read_loads(paths),
            "consume-raw": lambda: read_all(d, "c", True),
            "read+split+crc32": lambda: common.plain_read_crc(paths),
            "consume-group": lambda: group_consume(d, "c", n),
        }, args.runs)
    med = {k: common.median(v) for k, v in res.items()}

    def pr(name: str, base: str) -> str:
        return f"{common.paired_ratio(res, name, base):.2f}x"

    print(common.table(["workload", "records/s", "baseline", "baseline records/s", "ratio (paired)"], [
        ["consume-parsed", common.rate(med["consume-parsed"]), "read + split + orjson.loads",
         common.rate(med["read+split+orjson.loads"]), pr("consume-parsed", "read+split+orjson.loads")],
        ["consume-raw", common.rate(med["consume-raw"]), "read + split + crc32",
         common.rate(med["read+split+crc32"]), pr("consume-raw", "read+split+crc32")],
        ["consume-group (Consumer, another process)", common.rate(med["consume-group"]),
         "read + split + orjson.loads", common.rate(med["read+split+orjson.loads"]),
         pr("consume-group", "read+split+orjson.loads")],
    ]))
    print()


if __name__ == "__main__":
    main()
