"""Peak resident memory of a publishing and a consuming process, against the size of the log.

Runs `logbroker generate N | logbroker publish T` and `logbroker consume T --from-beginning
--max-messages N > /dev/null` as real processes for growing N and prints each one's peak RSS
(ru_maxrss of the finished child), beside `python -c pass` as the floor. Flat means bounded memory.

    python benchmarks/memory.py                # N = 10^4, 10^5, 10^6
    python benchmarks/memory.py --max 10000000 # up to 10^7 (minutes, a few GB of disk)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, os.path.join(ROOT, "cli.py")]


def peak_rss_mb(argv: list[str], env: dict, stdin=None, stdout=None) -> tuple[float, float]:
    """Run one command; its peak RSS in MB and wall seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=stdout or subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed with {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where the data goes (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        env = {**os.environ, "LOGBROKER_DATA_DIR": d, "PYTHONPATH": ROOT}
        floor, _ = peak_rss_mb([sys.executable, "-c", "pass"], env)
        print(f"Python {sys.version.split()[0]}, floor (`python -c pass`): {floor:.1f} MB\n")
        print("| records | publish peak RSS | publish s | consume peak RSS | consume s |")
        print("|---:|---:|---:|---:|---:|")
        n = 10_000
        while n <= args.max:
            topic = f"mem{n}"
            gen = subprocess.Popen(CLI + ["generate", str(n), "--seed", "1"], env=env, stdout=subprocess.PIPE)
            pub_mb, pub_s = peak_rss_mb(CLI + ["publish", topic, "--partitions", "1"], env, stdin=gen.stdout)
            gen.wait()
            con_mb, con_s = peak_rss_mb(CLI + ["consume", topic, "--from-beginning", "--max-messages", str(n)], env)
            print(f"| {n:,} | {pub_mb:.1f} MB | {pub_s:.1f} | {con_mb:.1f} MB | {con_s:.1f} |", flush=True)
            n *= 10


if __name__ == "__main__":
    main()
