"""``logbroker mirror`` throughput beside what it is made of: the library's bulk writer on one side,
a Kafka producer through ``logbroker serve`` on the other.

    python benchmarks/mirror.py [--records 50000] [--rounds 5] [--dir DIR]

Each round, in a rotated order (medians of the rounds; ratios are medians of per-round ratios):

- send_batch: ``Producer.send_batch`` of 1,000 values (one order, ~100 B of compact JSON) into a
  one-partition topic of the source data directory (fsync=always); this topic is what is mirrored.
- serve produce: a confluent-kafka producer (acks=all, linger.ms=5) sends the same values through a
  ``logbroker serve`` on another data directory (the target), one partition.
- mirror: ``Mirror(source, target).run()`` of the send_batch topic into that server: connect, plan,
  create the topic, read the source, produce (idempotent, acks=all) and flush; records/s over the
  whole call.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import (VALUE, client_versions, kafka_produce, native_produce, rounds_parser,  # noqa: E402
                   start_server)


def mirror(source: str, bootstrap: str, topic: str, n: int) -> float:
    from logbroker.remote.mirror import Mirror
    t0 = time.perf_counter()
    report = Mirror(source, bootstrap, [topic]).run()
    elapsed = time.perf_counter() - t0
    assert report.rows()[0][1] == n, report.rows()
    return n / elapsed


def main() -> None:
    args = rounds_parser(__doc__).parse_args()
    base = tempfile.mkdtemp(prefix="mirror-bench-", dir=args.dir)
    print(f"# {client_versions()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, {args.records} records of {len(VALUE)} B, {args.rounds} rounds")
    server, bootstrap = start_server(os.path.join(base, "target"))
    source = os.path.join(base, "source")
    rounds = []
    try:
        for r in range(args.rounds):
            topic = f"r{r}"
            rate: dict[str, float] = {}
            steps = [("send_batch", lambda: native_produce(source, topic, args.records)),
                     ("serve produce", lambda: kafka_produce(bootstrap, f"k{topic}", args.records))]
            for name, step in steps[r % 2:] + steps[:r % 2]:
                rate[name] = step()
            rate["mirror"] = mirror(source, bootstrap, topic, args.records)
            rounds.append(rate)
    finally:
        server.terminate()
        server.wait()
    print("\n| workload | records/s (median) | mirror / workload (median of rounds) |\n|---|---:|---:|")
    for name in ("mirror", "send_batch", "serve produce"):
        ratio = statistics.median(r["mirror"] / r[name] for r in rounds)
        print(f"| {name} | {statistics.median(r[name] for r in rounds):,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
