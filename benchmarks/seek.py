"""Time to the first record at a random offset and at a random timestamp, by partition size.

    python benchmarks/seek.py [--runs 5] [--full] [--huge] [--seeks 50]

Partitions of 10^4 and 10^5 records (default), plus 10^6 (--full) and 10^7 (--huge: ~3.5 GB of disk
and minutes to build), 16 MiB segments (the default segment.bytes). They are built directly with
PartitionLog.append (batches of 64 records, about the Producer's 16 KiB default, fsync=never, timestamps 1 ms apart) to save time.

- seek-offset: PartitionReader.read(random offset, 1) on a reader that last read elsewhere, so it
  goes through the segment list, the offset index and a short scan;
- seek-timestamp: offset_for_timestamp(random timestamp) then read(that offset, 1).

Each run averages --seeks random seeks per partition (the page cache is warm). Baseline: the same
seek on the 10^4-record partition, interleaved; "flat" means a ratio near 1.00x.
"""

from __future__ import annotations

import random
import time

import common
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic

T0 = 1_764_230_400_000
BATCH = 64  # about what the Producer's default 16 KiB batch.size holds


def build(data_dir: str, name: str, n: int, values) -> Topic:
    import orjson
    t = Topic.create(data_dir, name, 1)
    encoded = [orjson.dumps(v) for v in values]
    log = t.log(0)
    for base in range(0, n, BATCH):
        log.append([PendingRecord(T0 + i, None, None, None, value_json=encoded[i % len(encoded)])
                    for i in range(base, min(n, base + BATCH))], _NEVER)
    t.close()
    return Topic(data_dir, name)


def seek_offsets(reader, n: int, seeks: int, rng: random.Random) -> float:
    """Mean µs to the first record at a random offset."""
    total = 0.0
    for _ in range(seeks):
        off = rng.randrange(n)
        reader.read(0, 1)  # move the cursor away
        start = time.perf_counter()
        rec = reader.read(off, 1)[0]
        total += time.perf_counter() - start
        assert rec.offset == off
    return total / seeks * 1e6


def seek_timestamps(reader, n: int, seeks: int, rng: random.Random) -> float:
    """Mean µs to the first record at or after a random timestamp."""
    total = 0.0
    for _ in range(seeks):
        ts = T0 + rng.randrange(n)
        start = time.perf_counter()
        off = reader.offset_for_timestamp(ts)
        rec = reader.read(off, 1)[0]
        total += time.perf_counter() - start
        assert rec.timestamp == ts
    return total / seeks * 1e6


def main() -> None:
    from logbroker.storage.fsutil import FsyncPolicy
    global _NEVER
    _NEVER = FsyncPolicy("never")
    parser = common.arg_parser(__doc__)
    parser.add_argument("--huge", action="store_true", help="add a 10^7-record partition (~3.5 GB, slow)")
    parser.add_argument("--seeks", type=int, default=50, help="random seeks per run and partition")
    args = parser.parse_args()
    sizes = [10**4, 10**5] + ([10**6] if args.full or args.huge else []) + ([10**7] if args.huge else [])
    values = common.orders()
    rng = random.Random(7)
    with common.temp_dir(args.dir) as d:
        common.header("Seek: time to the first record", d, "never (build)", args.runs,
                      f"partition sizes {', '.join(f'{n:,}' for n in sizes)}; {args.seeks} random seeks per run")
        readers = {}
        for n in sizes:
            t = build(d, f"s{n}", n, values)
            readers[n] = t.reader(0)
        work = {}
        for n in sizes:
            work[f"offset {n}"] = lambda n=n: seek_offsets(readers[n], n, args.seeks, rng)
            work[f"timestamp {n}"] = lambda n=n: seek_timestamps(readers[n], n, args.seeks, rng)
        res = common.interleave(work, args.runs)
        segments = {n: len(common.partition_logs(readers[n].directory)) for n in sizes}
        for r in readers.values():
            r.close()
    rows = []
    for kind in ("offset", "timestamp"):
        base = common.median(res[f"{kind} {sizes[0]}"])
        for n in sizes:
            m = common.median(res[f"{kind} {n}"])
            rows.append([f"seek-{kind}", f"{n:,}", segments[n], f"{m:,.1f}", common.ratio(m, base)])
    print(common.table(["workload", "records", "segments", "µs to first record", "ratio to 10^4"], rows))
    print()


if __name__ == "__main__":
    main()
