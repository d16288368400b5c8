"""Produce throughput by batch size, against the raw durable/fast baseline. Prints a Markdown table.

    python benchmarks/produce.py [--runs 5] [--full] [--plot FILE.png]

Workloads (250-byte orders, one partition, logbroker.tools.bench.produce_perf, i.e. Producer.send with
the latency bookkeeping of `logbroker bench produce`):

- produce-durable: fsync=always, one fdatasync per batch, batch sizes 1, 10, 100, 1000 records;
- produce-fast: fsync=never, the same batch sizes;
- bulk-durable: Producer.send_batch (the bulk path: one call per batch, no future per record),
  fsync=always, batches of 100 and 1000.

Baseline of each row, run interleaved with it: orjson encode + crc32 per record, one write per
batch (+ one fdatasync per batch for durable) to one file (benchmarks/common.py, raw_produce).
"""

from __future__ import annotations

import os

import common

BATCHES = (1, 10, 100, 1000)
BULK_BATCHES = (100, 1000)


def _row(workload: str, batch: int, n: int, res: dict[str, list[float]]) -> dict:
    return {"workload": workload, "batch": batch, "records": n, "logbroker": common.median(res["logbroker"]),
            "raw": common.median(res["raw"]), "ratio": common.paired_ratio(res, "logbroker", "raw")}


def sizes(full: bool) -> tuple[int, int]:
    """(records per run cap, fdatasyncs per durable run): a durable batch of 1 costs one sync."""
    return (200_000, 2_000) if full else (20_000, 400)


def run(args) -> list[dict]:
    cap, syncs = sizes(args.full)
    values = common.orders()
    rows = []
    with common.temp_dir(args.dir) as d:
        common.header("Produce throughput by batch size", d, "always / never", args.runs,
                      f"records per run: min({cap:,}, batch x {syncs}) durable, {cap:,} fast")
        for workload, fsync in (("produce-durable", "always"), ("produce-fast", "never")):
            for batch in BATCHES:
                n = min(cap, batch * syncs) if fsync == "always" else cap
                durable = fsync == "always"
                res = common.interleave({
                    "logbroker": lambda: common.logbroker_produce(d, values, n, batch, fsync),
                    "raw": lambda: common.raw_produce(os.path.join(d, "raw.log"), values, n, batch, durable),
                }, args.runs)
                rows.append(_row(workload, batch, n, res))
        for batch in BULK_BATCHES:
            n = min(cap, batch * syncs)
            res = common.interleave({
                "logbroker": lambda: common.logbroker_send_batch(d, values, n, batch, "always"),
                "raw": lambda: common.raw_produce(os.path.join(d, "raw.log"), values, n, batch, True),
            }, args.runs)
            rows.append(_row("bulk-durable", batch, n, res))
    print(common.table(
        ["workload", "batch", "records/run", "logbroker rec/s", "raw baseline rec/s", "ratio (paired)"],
        [[r["workload"], r["batch"], f"{r['records']:,}", common.rate(r["logbroker"]), common.rate(r["raw"]),
          f"{r['ratio']:.2f}x"] for r in rows]))
    print()
    return rows


def plot(rows: list[dict], path: str) -> bool:
    """records/s versus batch size (log-log), logbroker and raw, durable and fast. False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for workload, style in (("produce-durable", "-"), ("produce-fast", "--"), ("bulk-durable", ":")):
        rs = [r for r in rows if r["workload"] == workload]
        ax.plot([r["batch"] for r in rs], [r["logbroker"] for r in rs], "o" + style, label=f"logbroker {workload}")
        if workload.startswith("produce-"):  # bulk-durable shares produce-durable's baseline
            ax.plot([r["batch"] for r in rs], [r["raw"] for r in rs], "x" + style,
                    label=f"raw baseline ({workload[8:]})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (records)")
    ax.set_ylabel("records/s (median)")
    ax.set_title("logbroker produce throughput vs batch size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main() -> None:
    parser = common.arg_parser(__doc__)
    parser.add_argument("--plot", default=None, help="write a records/s vs batch size PNG (needs matplotlib)")
    args = parser.parse_args()
    rows = run(args)
    if args.plot:
        print(f"Plot written to {args.plot}." if plot(rows, args.plot) else "matplotlib not importable: no plot.")


if __name__ == "__main__":
    main()
