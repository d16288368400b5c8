"""Log compaction: a cleaning pass's throughput, and what it does to a producer running meanwhile.

    python benchmarks/compaction.py [--runs 5] [--full]

- compact-pass: one forced pass (``clean_partition``) over a partition of N records (100,000;
  1,000,000 with --full) of ~250-byte orders under 1,000 keys (or 100,000 keys: few records
  dropped), 1 MiB segments, built with fsync=never. Records/s scanned and MB/s scanned; baseline:
  reading the same partition whole (``PartitionReader.read``, parsed), the least a pass must do.
- producer latency: a producer appending batches of 10 keyed records (fsync=always, one fsync per
  batch) to the compacted topic, alone and while another process runs passes back to back; median
  and 99th percentile of the per-batch ``append`` latency.

Each run rebuilds the partition (a pass changes it). Medians of --runs interleaved runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson

import common
from logbroker.storage.cleaner import clean_partition
from logbroker.storage.fsutil import FsyncPolicy
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic

T0 = 1_764_230_400_000
BATCH = 64
NEVER = FsyncPolicy("never")
_built = [0]


def build(data_dir: str, n: int, keys: int, values: list[bytes]) -> Topic:
    _built[0] += 1
    t = Topic.create(data_dir, f"c{_built[0]}", 1, {"cleanup.policy": "compact", "segment.bytes": 1 << 20})
    log = t.log(0)
    for base in range(0, n, BATCH):
        log.append([PendingRecord(T0 + i, f"key-{i % keys}", None, None, value_json=values[i % len(values)])
                    for i in range(base, min(n, base + BATCH))], NEVER)
    log.append([PendingRecord(T0 + n, "roll", None, None, value_json=b"1")] * 1, NEVER)
    return t


def pass_rate(data_dir: str, n: int, keys: int, values: list[bytes], out: dict) -> float:
    t = build(data_dir, n, keys, values)
    start = time.perf_counter()
    report = clean_partition(t.log(0), now=T0 + 10 * n, force=True)
    elapsed = time.perf_counter() - start
    out.setdefault("kept", []).append(report.records_after)
    out.setdefault("mb", []).append(report.bytes_before / 1e6 / elapsed)
    t.close()
    return report.records_before / elapsed


def read_rate(data_dir: str, n: int, keys: int, values: list[bytes]) -> float:
    t = build(data_dir, n, keys, values)
    reader = t.reader(0)
    start = time.perf_counter()
    offset, count = 0, 0
    while True:
        got = reader.read(offset, 1000)
        if not got:
            break
        count += len(got)
        offset = got[-1].offset + 1
    elapsed = time.perf_counter() - start
    reader.close()
    t.close()
    return count / elapsed


CLEANER = r"""
import sys
from logbroker.storage.cleaner import clean_partition
from logbroker.storage.topic import Topic
t = Topic(sys.argv[1], sys.argv[2])
while True:
    clean_partition(t.log(0), force=True)
"""


def producer_latencies(data_dir: str, n: int, values: list[bytes], with_cleaner: bool) -> list[float]:
    t = build(data_dir, n, 1000, values)
    cleaner = None
    if with_cleaner:
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        cleaner = subprocess.Popen([sys.executable, "-c", CLEANER, data_dir, t.name], env=env)
        time.sleep(0.3)
    log = t.log(0)
    always = FsyncPolicy("always")
    lat = []
    try:
        for i in range(300):
            recs = [PendingRecord(T0 + n + i, f"key-{(i * 10 + j) % 1000}", None, None, value_json=values[j])
                    for j in range(10)]
            start = time.perf_counter()
            log.append(recs, always)
            lat.append((time.perf_counter() - start) * 1e3)
    finally:
        if cleaner is not None:
            cleaner.kill()
            cleaner.wait()
        t.close()
    return lat


def main() -> None:
    parser = common.arg_parser(__doc__)
    args = parser.parse_args()
    n = 10**6 if args.full else 10**5
    values = [orjson.dumps(v) for v in common.orders()]
    with common.temp_dir(args.dir) as d:
        common.header("Log compaction", d, "never (build), always (producer)", args.runs,
                      f"{n:,} records, 1 MiB segments; producer: 300 batches of 10 keyed records")
        extra: dict[str, dict] = {"1000 keys": {}, "100000 keys": {}}
        work = {
            "read (baseline)": lambda: read_rate(d, n, 1000, values),
            "compact, 1000 keys": lambda: pass_rate(d, n, 1000, values, extra["1000 keys"]),
            "compact, 100000 keys": lambda: pass_rate(d, n, 100_000, values, extra["100000 keys"]),
        }
        res = common.interleave(work, args.runs)
        lat: dict[str, list[list[float]]] = {"alone": [], "with cleaner": []}
        for _ in range(args.runs):
            for name in lat:
                lat[name].append(producer_latencies(d, 20_000, values, name == "with cleaner"))
    base = common.median(res["read (baseline)"])
    rows = [["read (baseline)", common.rate(base), "-", "-", "1.00x"]]
    for keys in ("1000 keys", "100000 keys"):
        m = common.median(res[f"compact, {keys}"])
        rows.append([f"compact-pass, {keys}", common.rate(m), f"{common.median(extra[keys]['mb']):.1f}",
                     f"{common.median(extra[keys]['kept']):,.0f}",
                     f"{common.paired_ratio(res, f'compact, {keys}', 'read (baseline)'):.2f}x"])
    print(common.table(["workload", "records/s scanned", "MB/s scanned", "records kept", "ratio to read"], rows))
    print()
    rows = []
    for name, runs in lat.items():
        p50 = common.median([sorted(r)[len(r) // 2] for r in runs])
        p99 = common.median([sorted(r)[int(len(r) * 0.99)] for r in runs])
        rows.append([f"producer {name}", f"{p50:.2f}", f"{p99:.2f}"])
    print(common.table(["workload", "append p50 ms", "append p99 ms"], rows))
    print()


if __name__ == "__main__":
    main()
