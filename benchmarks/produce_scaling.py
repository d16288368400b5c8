"""Produce throughput with 1, 2 and 4 producer processes on 1 and 4 partitions. Markdown table.

    python benchmarks/produce_scaling.py [--runs 5] [--full] [--fsync always|never] [--batch 100]

Each producer is a spawned process (logbroker.tools.bench.produce_perf with producers=P) sending its share
of the records round-robin over the partitions, batches of --batch records. Throughput counts all
records over the wall time from the common start to the last acknowledgement. The baseline, run
interleaved, is one producer on one partition. On one partition every append takes the same
partition lock, so extra producers can only add contention; on 4 partitions they append in parallel,
up to the CPU count (the machine has 2 cores).
"""

from __future__ import annotations

import common

SETUPS = [(1, 1), (2, 1), (4, 1), (1, 4), (2, 4), (4, 4)]


def main() -> None:
    parser = common.arg_parser(__doc__)
    parser.add_argument("--fsync", default="always", choices=("always", "interval", "never"))
    parser.add_argument("--batch", type=int, default=100, help="records per batch")
    args = parser.parse_args()
    n = 100_000 if args.full else 20_000
    values = common.orders()
    with common.temp_dir(args.dir) as d:
        common.header("Produce scaling: producer processes x partitions", d, args.fsync, args.runs,
                      f"{n:,} records per run in all, batches of {args.batch}, processes started with spawn")
        res = common.interleave({
            f"{p}x{k}": (lambda p=p, k=k: common.logbroker_produce(d, values, n, args.batch, args.fsync, p, k))
            for p, k in SETUPS}, args.runs)
    base = common.median(res["1x1"])
    print(common.table(["producers", "partitions", "records/s", "ratio to 1 producer, 1 partition"],
                       [[p, k, common.rate(common.median(res[f"{p}x{k}"])),
                         common.ratio(common.median(res[f"{p}x{k}"]), base)] for p, k in SETUPS]))
    print()


if __name__ == "__main__":
    main()
