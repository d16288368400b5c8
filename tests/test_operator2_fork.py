"""fork() of a process holding an open Producer (a web server's pre-fork workers, multiprocessing's
default start method on Linux): parent and child both go on sending.

Before the fix, the child inherited the partition lock's open file, and flock belongs to the open
file, so parent and child both "held" the lock at once: their appends interleaved, wrote the same
offsets twice and the partition was corrupt ("offset 129 where 236 was expected"). And a child forked
while the parent's sender thread was writing inherited its locks held by a thread that does not
exist in the child: its first flush() or close() hung for ever.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from logbroker import Consumer
from logbroker.storage.topic import Topic

# Runs in a real process: sends, forks, and both sides go on sending. Each side writes what its
# futures and send_batch calls acknowledged to a file of its own (a pipe would interleave them).
_SCRIPT = textwrap.dedent("""
    import faulthandler, json, os, sys, threading
    from logbroker import Producer
    data_dir, forks, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def report(who, **fields):
        with open(os.path.join(out, who + ".json"), "w") as f:
            json.dump({"who": who, **fields}, f)
    p = Producer(data_dir, fsync="never", num_partitions=1, linger_ms=1)
    p.send_batch("t", [{"who": "first"}], partition=0)
    stop = threading.Event()
    acked = []

    def background():  # keeps the parent's sender thread busy while forks happen
        i = 0
        while not stop.is_set():
            futures = [p.send("t", {"who": "bg", "i": i + k}) for k in range(200)]
            i += 200
            p.flush()
            acked.extend(f.get().offset for f in futures)

    t = threading.Thread(target=background)
    t.start()
    children = []
    for n in range(forks):
        pid = os.fork()
        if pid == 0:
            stop.set()  # the thread does not exist here; the child sends on its own
            faulthandler.dump_traceback_later(30, exit=True)  # a hung child ends, with its stack
            mine = []
            try:
                for i in range(300):
                    mine.append(p.send_batch("t", [{"who": f"child{n}", "i": i}], partition=0).base_offset)
                futures = [p.send("t", {"who": f"child{n}", "i": 300 + i}) for i in range(300)]
                p.close(timeout=30)
                mine += [f.get(timeout=0).offset for f in futures]
                report(f"child{n}", acked=mine)
                os._exit(0)
            except BaseException as exc:
                report(f"child{n}", error=repr(exc), acked=mine)
                os._exit(1)
        children.append(pid)
    for i in range(300):
        acked.append(p.send_batch("t", [{"who": "parent", "i": i}], partition=0).base_offset)
    codes = [os.waitpid(pid, 0)[1] for pid in children]
    stop.set()
    t.join()
    p.close()
    report("parent", acked=acked, codes=codes)
""")


@pytest.mark.slow
def test_a_producer_used_on_both_sides_of_fork_keeps_the_partition_whole_and_each_record_once(data_dir, tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, data_dir, "4", str(out)], capture_output=True, text=True,
                          timeout=90)
    assert proc.returncode == 0, proc.stderr
    reports = [json.loads(path.read_text()) for path in sorted(out.iterdir())]
    assert len(reports) == 5
    assert [r for r in reports if "error" in r] == []
    parent = next(r for r in reports if r["who"] == "parent")
    assert parent["codes"] == [0, 0, 0, 0]  # every child closed its producer, none hung
    acked = [o for r in reports for o in r["acked"]]
    assert len(set(acked)) == len(acked)  # no offset acknowledged to two records

    t = Topic(data_dir, "t")
    try:
        assert t.log(0).check().ok
    finally:
        t.close()
    with Consumer("t", data_dir=data_dir, auto_offset_reset="earliest", consumer_timeout_ms=500) as consumer:
        records = list(consumer)
    offsets = [r.offset for r in records]
    assert offsets == list(range(len(offsets)))
    seen = [(r.value["who"], r.value.get("i")) for r in records]
    assert len(set(seen)) == len(seen)  # no record twice
    assert set(acked) <= set(offsets)
    for r in reports:  # every acknowledged record holds what its side sent
        by_offset = {rec.offset: rec.value["who"] for rec in records}
        assert {by_offset[o] for o in r["acked"]} <= {r["who"], "bg"}
