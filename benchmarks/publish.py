"""``logbroker publish`` as a whole process against the raw durable baseline, and how live it is.

    python benchmarks/publish.py [--runs 5] [--full]

Throughput (records per second of the whole process's wall time, start-up included, into a fresh
auto-created topic, default settings: 3 partitions, fsync=always), N orders of ~250 bytes:

- `logbroker publish T --file F`;
- `cat F | logbroker publish T`.

Baseline, interleaved with them: orjson + crc32 per record, one write and one fdatasync per 1,000
records to one file, in this process (common.raw_produce): the issue's figure.

Before timing, logbroker's modules are compiled to bytecode (``compileall``), as ``pip install .``
does: an editable install under PYTHONDONTWRITEBYTECODE would otherwise compile every module from
source at each process start (~0.1 s of CPU a run, measured as start-up it is not).

Live: `logbroker publish T` with its stdin a pipe held open; a line is written every 20 ms and the
time until a reader in this process sees it (polling the partition every 0.2 ms) is recorded:
p50 / p99 over the lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson

import common


def publish_process(args: list[str], env: dict, n: int, stdin_path: str | None = None) -> float:
    start = time.perf_counter()
    if stdin_path is None:
        subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        cat = subprocess.Popen(["cat", stdin_path], stdout=subprocess.PIPE)
        subprocess.run(args, stdin=cat.stdout, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        cat.stdout.close()
        cat.wait()
    return n / (time.perf_counter() - start)


def live_latencies(data_dir: str, lines: int = 200, gap_s: float = 0.02) -> list[float]:
    from logbroker.broker import Broker
    topic = f"live{time.monotonic_ns()}"
    Broker(data_dir).create_topic(topic, 1)
    env = {**os.environ, "LOGBROKER_DATA_DIR": data_dir}
    proc = subprocess.Popen([sys.executable, "-m", "logbroker", "publish", topic], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    reader = Broker(data_dir).topic(topic).reader(0)
    out = []
    try:
        for i in range(lines):
            line = orjson.dumps({"i": i}) + b"\n"
            t0 = time.perf_counter()
            proc.stdin.write(line)
            proc.stdin.flush()
            while reader.high_watermark() <= i:
                time.sleep(0.0002)
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(gap_s)
    finally:
        proc.stdin.close()
        proc.wait(60)
    return out[5:]  # the first lines include the publisher's start-up


def compile_logbroker() -> None:
    """Write the bytecode of logbroker's modules (what ``pip install .`` does at install time)."""
    import compileall

    import logbroker
    compileall.compile_dir(os.path.dirname(logbroker.__file__), quiet=1)


def main() -> None:
    args = common.arg_parser(__doc__).parse_args()
    compile_logbroker()
    n = 1_000_000 if args.full else 100_000
    values = common.orders()
    with common.temp_dir(args.dir) as d:
        path = os.path.join(d, "orders.jsonl")
        with open(path, "wb") as f:
            for i in range(n):
                f.write(orjson.dumps(values[i % len(values)]) + b"\n")
        common.header("logbroker publish, whole process", d, "always", args.runs, f"{n:,} records per run")
        data = os.path.join(d, "data")
        os.mkdir(data)
        env = {**os.environ, "LOGBROKER_DATA_DIR": data}
        cmd = [sys.executable, "-m", "logbroker", "publish"]

        def fresh() -> str:
            return f"t{time.monotonic_ns()}"

        def cleanup() -> None:
            import shutil
            for name in os.listdir(data):
                shutil.rmtree(os.path.join(data, name), ignore_errors=True)

        def with_cleanup(fn):
            def run() -> float:
                try:
                    return fn()
                finally:
                    cleanup()
            return run

        res = common.interleave({
            "raw": lambda: common.raw_produce(os.path.join(d, "raw.log"), values, n, 1000, True),
            "file": with_cleanup(lambda: publish_process([*cmd, fresh(), "--file", path], env, n)),
            "pipe": with_cleanup(lambda: publish_process([*cmd, fresh()], env, n, stdin_path=path)),
        }, args.runs)
        lat = sorted(live_latencies(data))
    names = {"raw": "raw durable baseline (in process, write + fdatasync per 1,000)",
             "file": "logbroker publish T --file F (whole process)",
             "pipe": "cat F | logbroker publish T (whole process)"}
    print(common.table(["workload", "records/s", "ratio to raw (paired)"],
                       [[names[k], common.rate(common.median(res[k])), f"{common.paired_ratio(res, k, 'raw'):.2f}x"]
                        for k in names]))
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"\nlive: a line written to publish's stdin (pipe held open) is readable after p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, max {lat[-1]:.2f} ms ({len(lat)} lines, one every 20 ms)\n")


if __name__ == "__main__":
    main()
