"""The command line as a user runs it: pipelines and start-up times. Markdown tables.

    python benchmarks/cli_pipeline.py [--runs 5] [--full]

Throughput (records per second of wall time, N orders; baseline `logbroker generate N > /dev/null`):

- `logbroker generate N | logbroker publish T` into a fresh 3-partition topic (fsync=always);
- reading them back: `logbroker consume T --from-beginning --max-messages N > /dev/null`.

Start-up (seconds of wall time; baseline `python -c pass`, the interpreter alone):

- `logbroker --help`;
- a one-record publish process: `echo '{"a":1}' | logbroker publish T`.

Every command runs with LOGBROKER_DATA_DIR set to a temp directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import common


def logbroker_cmd() -> str:
    exe = shutil.which("logbroker")
    return exe if exe else f"{sys.executable} {os.path.join(os.path.dirname(__file__), '..', 'cli.py')}"


def wall(command: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    args = common.arg_parser(__doc__).parse_args()
    n = 1_000_000 if args.full else 100_000
    lb = logbroker_cmd()
    with common.temp_dir(args.dir) as d:
        env = dict(os.environ, LOGBROKER_DATA_DIR=d)
        common.header("CLI pipelines and start-up", d, "always (topic default)", args.runs, f"`logbroker` = {lb}")
        topics = iter(range(10**6))

        def pipeline() -> float:
            t = f"orders{next(topics)}"
            secs = wall(f"{lb} generate {n} | {lb} publish {t}", env)
            pipeline.last = t
            return n / secs

        def read_back() -> float:
            return n / wall(f"{lb} consume {pipeline.last} --from-beginning --max-messages {n}", env)

        # Interleaved by hand: the read-back reads the topic that the pipeline run just before it wrote.
        res = {"generate": [], "pipeline": [], "read": []}
        for _ in range(args.runs):
            res["generate"].append(n / wall(f"{lb} generate {n}", env))
            res["pipeline"].append(pipeline())
            res["read"].append(read_back())
            sys.stderr.write("...")
            sys.stderr.flush()
        sys.stderr.write("\n")
        startup = common.interleave({
            "python": lambda: wall(f"{sys.executable} -c pass", env),
            "help": lambda: wall(f"{lb} --help", env),
            "publish1": lambda: wall(f"echo '{{\"a\":1}}' | {lb} publish one", env),
        }, max(args.runs, 10))
    med = {k: common.median(v) for k, v in res.items()}
    print(common.table(["command", f"records/s ({n:,} orders)", "ratio to generate alone"], [
        [f"`logbroker generate {n}` > /dev/null (baseline)", common.rate(med["generate"]), "1.00x"],
        [f"`logbroker generate {n} \\| logbroker publish T`", common.rate(med["pipeline"]),
         common.ratio(med["pipeline"], med["generate"])],
        [f"`logbroker consume T --from-beginning --max-messages {n}`", common.rate(med["read"]),
         common.ratio(med["read"], med["generate"])],
    ]))
    print()
    smed = {k: common.median(v) for k, v in startup.items()}
    print(common.table(["process", "wall time (s)", "ratio to `python -c pass`"], [
        ["`python -c pass` (baseline)", f"{smed['python']:.3f}", "1.00x"],
        ["`logbroker --help`", f"{smed['help']:.3f}", common.ratio(smed["help"], smed["python"])],
        ["`echo '{\"a\":1}' \\| logbroker publish T` (one record)", f"{smed['publish1']:.3f}",
         common.ratio(smed["publish1"], smed["python"])],
    ]))
    print()


if __name__ == "__main__":
    main()
