"""``Producer.send()`` with default settings against the raw durable baseline and SQLite. Markdown table.

    python benchmarks/send.py [--runs 5] [--full]

The path every Kafka user writes: ``send()`` per record, default producer settings (fsync=always,
linger.ms 5, batch.size 16 KiB, buffer.memory 32 MiB), one-partition topic, 250-byte orders:

- send-flush-1000: ``flush()`` after every 1,000 records, then ``close()``;
- send-no-flush: no ``flush()`` at all, the sender thread and linger alone, then ``close()``
  (10^6 records with ``--full``);
- send-no-flush, 3 partitions: the same into a topic with the default partition count;
- bulk: ``send_batch()`` of 1,000 values;
- SQLite WAL, synchronous=FULL, executemany in transactions of 1,000 records.

Baseline (ratio 1.00x), interleaved with every row: orjson + crc32 per record, one write and one
fdatasync per 1,000 records to one file (common.raw_produce). Ratios are medians of paired rounds.
"""

from __future__ import annotations

import os

import common


def main() -> None:
    args = common.arg_parser(__doc__).parse_args()
    n = 300_000 if args.full else 30_000
    big = 1_000_000 if args.full else 100_000
    values = common.orders()
    with common.temp_dir(args.dir) as d:
        common.header("Producer.send() with default settings", d, "always (FULL for SQLite)", args.runs,
                      f"{n:,} records per run, {big:,} for the no-flush rows")
        res = common.interleave({
            "raw": lambda: common.raw_produce(os.path.join(d, "raw.log"), values, n, 1000, True),
            "flush": lambda: common.logbroker_send(d, values, n, 1000),
            "noflush": lambda: common.logbroker_send(d, values, big, None),
            "noflush3": lambda: common.logbroker_send(d, values, big, None, partitions=3),
            "bulk": lambda: common.logbroker_send_batch(d, values, n, 1000, "always"),
            "sqlite": lambda: common.sqlite_wal(os.path.join(d, "peer.db"), values, n),
        }, args.runs)
    names = {"raw": "raw durable baseline (write + fdatasync per 1,000)",
             "flush": "send(), defaults, flush() every 1,000",
             "noflush": f"send(), defaults, no flush() ({big:,} records, then close())",
             "noflush3": f"send(), defaults, no flush(), 3 partitions ({big:,} records)",
             "bulk": "send_batch() of 1,000",
             "sqlite": "SQLite WAL synchronous=FULL, 1,000 per transaction"}
    print(common.table(["workload", "records/s", "ratio to raw (paired)", "ratio to SQLite (paired)"],
                       [[names[k], common.rate(common.median(res[k])), f"{common.paired_ratio(res, k, 'raw'):.2f}x",
                         f"{common.paired_ratio(res, k, 'sqlite'):.2f}x"] for k in names]))
    print(f"\nno-flush / flush-every-1000: {common.paired_ratio(res, 'noflush', 'flush'):.2f}x (medians of paired runs)\n")


if __name__ == "__main__":
    main()
