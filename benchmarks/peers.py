"""logbroker's durable produce against its peers on the same records. Markdown table.

    python benchmarks/peers.py [--runs 5] [--full]

Rows, interleaved, 250-byte orders, records per second:

- logbroker produce-durable, batch 1000 (the baseline: ratio 1.00x): fsync=always, one partition,
  Producer.send per record (Kafka's producer-perf-test);
- logbroker bulk-durable, batch 1000: Producer.send_batch of 1,000 values, fsync=always;
- SQLite, journal_mode=WAL, synchronous=FULL, executemany in transactions of 1,000 records
  (a row per record: offset, timestamp, key, the value's JSON text);
- logbroker produce-fast, batch 1000 (fsync=never), for scale;
- the tutorial's in-memory design: a producer thread puts each record on a queue.Queue and a
  consumer thread takes it off. No file, no durability, one process: what logbroker replaces.
"""

from __future__ import annotations

import os

import common


def main() -> None:
    args = common.arg_parser(__doc__).parse_args()
    n = 200_000 if args.full else 20_000
    values = common.orders()
    with common.temp_dir(args.dir) as d:
        common.header("logbroker and its peers", d, "always (FULL for SQLite)", args.runs, f"{n:,} records per run")
        res = common.interleave({
            "durable": lambda: common.logbroker_produce(d, values, n, 1000, "always"),
            "bulk": lambda: common.logbroker_send_batch(d, values, n, 1000, "always"),
            "sqlite": lambda: common.sqlite_wal(os.path.join(d, "peer.db"), values, n),
            "fast": lambda: common.logbroker_produce(d, values, n, 1000, "never"),
            "queue": lambda: common.queue_pipeline(values, n),
        }, args.runs)
    med = {k: common.median(v) for k, v in res.items()}
    base = med["durable"]
    names = {"durable": "logbroker produce-durable, batch 1000 (baseline)",
             "bulk": "logbroker bulk-durable (send_batch), batch 1000",
             "sqlite": "SQLite WAL, synchronous=FULL, executemany x 1,000 per transaction",
             "fast": "logbroker produce-fast, batch 1000",
             "queue": "queue.Queue between two threads (in memory, not durable)"}
    print(common.table(["system", "records/s", "ratio to logbroker durable"],
                       [[names[k], common.rate(med[k]), f"{common.paired_ratio(res, k, 'durable'):.2f}x"]
                        for k in names]))
    print(f"\nlogbroker durable (send) / SQLite WAL FULL: {common.paired_ratio(res, 'durable', 'sqlite'):.2f}x; "
          f"bulk (send_batch) / SQLite: {common.paired_ratio(res, 'bulk', 'sqlite'):.2f}x (medians of paired runs)\n")


if __name__ == "__main__":
    main()
