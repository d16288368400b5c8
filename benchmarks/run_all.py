"""Run every benchmark in sequence and collect the Markdown into one report.

    python benchmarks/run_all.py [--full] [--runs 5] [--out benchmarks/results]

Small sizes by default (a few minutes on 2 cores); --full uses the issue's sizes (10^6-record
partitions and more; 10^7 stays behind `seek.py --huge`). Writes OUT/results.md and, when matplotlib
is importable (`pip install -e .[bench]`), OUT/produce_batch.png (records/s versus batch size).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["produce.py", "produce_scaling.py", "consume.py", "seek.py", "peers.py", "e2e.py",
           "cli_pipeline.py", "generate.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--dir", default=None, help="where the temp data directories go")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report = [f"# logbroker benchmarks ({'full' if args.full else 'small'} sizes)\n"]
    for script in SCRIPTS:
        cmd = [sys.executable, os.path.join(HERE, script), "--runs", str(args.runs)]
        if script == "generate.py":  # not ours: its own flags
            cmd += ["--records", "1000000" if args.full else "200000"]
        else:
            cmd += (["--full"] if args.full else []) + (["--dir", args.dir] if args.dir else [])
        if script == "produce.py":
            cmd += ["--plot", os.path.join(args.out, "produce_batch.png")]
        sys.stderr.write(f"== {script}\n")
        start = time.monotonic()
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        sys.stdout.write(out)
        sys.stdout.flush()
        report.append(out)
        sys.stderr.write(f"== {script} took {time.monotonic() - start:.0f} s\n")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(report))
    print(f"Report written to {os.path.join(args.out, 'results.md')}.")


if __name__ == "__main__":
    main()
