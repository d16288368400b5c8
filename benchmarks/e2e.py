"""Producer -> consumer latency across two processes at a fixed rate. Markdown table.

    python benchmarks/e2e.py [--runs 5] [--full] [--rate 1000] [--fsync always]

logbroker.tools.bench.e2e_perf: this process sends each order with a default Producer (fsync=always,
linger.ms 5, no flush(): its sender thread writes) at --rate records/s; a spawned process tails the partition with PartitionReader.read,
polling every 0.2 ms when it is at the high watermark, and takes time.time_ns() minus the ts_ns
the producer put in the value. Baseline, interleaved: the same two processes and rate with each
value sent through a multiprocessing Pipe instead (serialization and a process hop, no file).
"""

from __future__ import annotations

import multiprocessing
import time

import common
from logbroker.tools import bench


def _pipe_reader(conn, n: int, results) -> None:
    import orjson
    from array import array
    lat = array("q")
    conn.send_bytes(b"ready")
    while len(lat) < n:
        data = conn.recv_bytes()
        lat.append(time.time_ns() - orjson.loads(data)["ts_ns"])
    results.put(lat.tobytes())


def pipe_e2e(rate: float, n: int, values) -> list[float]:
    import orjson
    from array import array
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    results = ctx.Queue()
    proc = ctx.Process(target=_pipe_reader, args=(theirs, n, results), daemon=True)
    proc.start()
    ours.recv_bytes()
    start, interval = time.monotonic(), 1.0 / rate
    for i in range(n):
        wait = start + i * interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        value = dict(values[i % len(values)])
        value["ts_ns"] = time.time_ns()
        ours.send_bytes(orjson.dumps(value))
    lat = array("q")
    lat.frombytes(results.get(timeout=60))
    proc.join(timeout=10)
    return bench.percentiles(lat)


def main() -> None:
    parser = common.arg_parser(__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--fsync", default="always", choices=("always", "interval", "never"))
    args = parser.parse_args()
    n = 10_000 if args.full else 2_000
    values = common.orders()
    with common.temp_dir(args.dir) as d:
        common.header("End-to-end latency", d, args.fsync, args.runs, f"{n:,} records per run at {args.rate:,.0f} records/s")

        def logbroker() -> list[float]:
            r = bench.e2e_perf(d, args.rate, n, fsync=args.fsync)
            return [r.p50_ms, r.p95_ms, r.p99_ms, r.p999_ms]

        res = common.interleave({"logbroker": logbroker, "pipe": lambda: pipe_e2e(args.rate, n, values)}, args.runs)
    rows = []
    for i, label in enumerate(("p50", "p95", "p99", "p99.9")):
        lb = common.median([r[i] for r in res["logbroker"]])
        pipe = common.median([r[i] for r in res["pipe"]])
        rows.append([label, f"{lb:.3f}", f"{pipe:.3f}", common.ratio(lb, pipe)])
    print(common.table(["percentile", "logbroker (ms)", "Pipe baseline (ms)", "ratio"], rows))
    print()


if __name__ == "__main__":
    main()
