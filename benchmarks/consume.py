"""Consume throughput from offset 0 against plain reads of the same segment files. Markdown table.

    python benchmarks/consume.py [--runs 5] [--full]

One partition is filled once with N orders by the Producer (default batching, 16 KiB batches), then:

- consume-parsed: PartitionReader.read(offset, 500) to the high watermark, values decoded;
  baseline: read each segment file, split on LF, orjson.loads every line;
- consume-raw: PartitionReader.read(offset, 500, raw=True), values left as JSON bytes;
  baseline: read each segment file, split on LF, crc32 every line.

Both readers verify every checksum (one line crc and one batch crc per batch). The page cache is
warm: this measures CPU, not the disk.
"""

from __future__ import annotations

import time

import common
from logbroker.producer import Producer
from logbroker.topic import Topic


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
            count += len(recs)
            offset = recs[-1].offset + 1
        elapsed = time.perf_counter() - start
    finally:
        reader.close()
        t.close()
    return count / elapsed


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
        }, args.runs)
    med = {k: common.median(v) for k, v in res.items()}
    print(common.table(["workload", "records/s", "baseline", "baseline records/s", "ratio"], [
        ["consume-parsed", common.rate(med["consume-parsed"]), "read + split + orjson.loads",
         common.rate(med["read+split+orjson.loads"]), common.ratio(med["consume-parsed"], med["read+split+orjson.loads"])],
        ["consume-raw", common.rate(med["consume-raw"]), "read + split + crc32",
         common.rate(med["read+split+crc32"]), common.ratio(med["consume-raw"], med["read+split+crc32"])],
    ]))
    print()


if __name__ == "__main__":
    main()
