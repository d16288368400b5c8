"""kill -9 of producers that use the sender thread (linger, group commit, many records in flight).

A producer process sends as fast as it can with default settings and no ``get()``/``flush()``, and
reports a record on its stdout only once its future resolved. It is killed (SIGKILL) at a random
moment, many times; each new incarnation resumes. Whatever the fsync policy, an acknowledged record
was written before its future resolved, so a killed process never loses it (power loss is another
matter: only ``always`` covers it, see RELIABILITY.md). The checker reads every partition after a
writer's recovery and finds each acknowledged record at its acknowledged offset.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from waiting import wait_until
from logbroker import Broker

pytestmark = pytest.mark.slow

PRODUCER = textwrap.dedent("""
    import sys
    from logbroker.clients.producer import Producer
    data_dir, fsync, inc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    producer = Producer(data_dir, fsync=fsync, auto_create=False)
    out = sys.stdout
    pending = []
    s = 0
    while True:
        pending.append((s, producer.send("t", {"i": inc, "s": s, "pad": "x" * (s % 300)}, partition=s % 2)))
        s += 1
        if pending[0][1].done():
            k = 0
            for seq, f in pending:
                if not f.done():
                    break
                m = f.get()
                out.write(f"ack {inc} {seq} {m.partition} {m.offset}\\n")
                k += 1
            del pending[:k]
            out.flush()
""")


def _run_incarnation(data_dir: str, fsync: str, inc: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    proc = subprocess.Popen([sys.executable, "-c", PRODUCER, data_dir, fsync, str(inc)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[bytes] = []
    pump = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    pump.start()
    # Kill at a random moment after a random number of acknowledgments (at least 15, so ten
    # incarnations check more than 100 acknowledged records whatever the machine's speed).
    wanted = rng.randint(15, 60)
    try:
        wait_until(lambda: len(lines) >= wanted or proc.poll() is not None, f"{wanted} acknowledgments",
                   seen=lambda: f"{len(lines)} lines", interval=0.001)
        assert proc.poll() is None, f"incarnation {inc} exited with {proc.returncode}: {proc.stderr.read().decode()}"
        time.sleep(rng.uniform(0.0, 0.05))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        pump.join(30)
    assert lines, proc.stderr.read().decode()
    acks = []
    for line in lines:
        parts = line.split()
        if len(parts) == 5 and parts[0] == b"ack" and line.endswith(b"\n"):  # a torn last line is no ack
            acks.append(tuple(map(int, parts[1:])))
    return acks


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_a_killed_producer_never_loses_an_acknowledged_record(tmp_path, fsync):
    data_dir = str(tmp_path)
    broker = Broker(data_dir)
    broker.create_topic("t", 2, {"segment.bytes": 256 * 1024})
    rng = random.Random(int(os.environ.get("LOGBROKER_TORTURE_SEED", "0")) or None)
    acked = []
    for inc in range(10):
        acked += _run_incarnation(data_dir, fsync, inc, rng)
    broker.recover("t")  # a writer's tail check, as the next producer would run it
    stored = {}
    for p in range(2):
        records = broker.topic("t").reader(p).read(0, 10_000_000)
        assert [r.offset for r in records] == list(range(len(records)))  # contiguous
        for r in records:
            stored[(p, r.offset)] = (r.value["i"], r.value["s"])
    assert len(acked) > 100
    missing = [(inc, s, p, off) for inc, s, p, off in acked if stored.get((p, off)) != (inc, s)]
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged records missing, e.g. {missing[:3]}"
    # and no record was written twice
    assert len(set(stored.values())) == len(stored)
