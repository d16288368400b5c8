"""How fast does logbroker.tools.generator produce order lines? Prints a Markdown report.

    python benchmarks/generate.py [--records N] [--runs R]

Rows, each the median of R runs writing JSON lines to /dev/null on one core:
  - baseline: the same write loop fed by a generator yielding one constant pre-encoded order line,
    i.e. the cost of the loop itself; the ratio column shows how much the generator costs on top;
  - iter_order_lines: the real generator (pools already built; their one-time build is reported
    below the table);
  - faker per record: what calling faker for every field of every record would give (fewer
    records, since it is ~100x slower), to show why the generator uses pools.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import orjson  # noqa: E402

from logbroker.tools import generator  # noqa: E402
from logbroker.tools.generator import iter_order_lines  # noqa: E402


def constant_lines(n: int, line: bytes):
    for _ in range(n):
        yield line


def faker_lines(n: int, seed: int):
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    items = [(name, price) for name, price, _ in generator.CATALOGUE]
    when = fake.date_time_between(start_date="-30d", end_date="now")
    for _ in range(n):
        item, price = fake.random_element(items)
        order = {
            "txid": fake.uuid4(),
            "item": item,
            "name": fake.name(),
            "email": fake.email(),
            "purchase_time": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "address": fake.address().replace("\n", ", "),
            "price": price,
            "quantity": fake.random_int(1, 5),
        }
        yield orjson.dumps(order, option=orjson.OPT_APPEND_NEWLINE)


def measure(make_lines, n: int, runs: int) -> float:
    """Median records per second over `runs` runs of writing make_lines() to /dev/null."""
    rates = []
    with open(os.devnull, "wb") as sink:
        write = sink.write
        for _ in range(runs):
            lines = make_lines()
            start = time.perf_counter()
            count = 0
            for line in lines:
                write(line)
                count += 1
            elapsed = time.perf_counter() - start
            assert count == n, (count, n)
            rates.append(n / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000, help="records per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--faker-records", type=int, default=2_000)
    args = parser.parse_args()
    n, runs = args.records, args.runs

    start = time.perf_counter()
    line = next(iter_order_lines(1, seed=1))  # builds the pools once
    pool_build = time.perf_counter() - start

    import faker

    print("## Order generator throughput\n")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()}),")
    print(f"  orjson {orjson.__version__}, faker {faker.VERSION}")
    print(f"- CPUs: {os.cpu_count()} ({platform.machine()}, {platform.system()}); one core used")
    print(f"- {n:,} records per run ({args.faker_records:,} for faker), median of {runs} runs,")
    print("  JSON lines written to /dev/null\n")

    baseline = measure(lambda: constant_lines(n, line), n, runs)
    real = measure(lambda: iter_order_lines(n, seed=1), n, runs)
    fk = measure(lambda: faker_lines(args.faker_records, 1), args.faker_records, runs)

    print("| source | orders/s (median) | µs/order | time per order vs baseline |")
    print("|---|---:|---:|---:|")
    for name, rate in [
        ("baseline: constant pre-encoded line", baseline),
        ("`iter_order_lines` (pools)", real),
        ("faker per record", fk),
    ]:
        print(f"| {name} | {rate:,.0f} | {1e6 / rate:.2f} | {baseline / rate:,.1f}x |")
    print(f"\nPools make the generator {real / fk:,.0f}x faster than faker per record.")
    print(f"One-time pool build per process (faker import included): {pool_build:.2f} s.")


if __name__ == "__main__":
    main()
