"""send() racing close() from other threads: after close() returns, every future a send() returned
is resolved, acknowledged or failed, and a send() that did not raise is never silently dropped.

Before the fix, a send() that reached the accumulator after close() had stopped the sender put its
record into a batch nobody would write or fail: send() returned a future whose get() waited for ever.
Two ways in: the lock-free append landing between close()'s collection of what was left and the seal
of the open batches, and a put() arriving after the sender stopped. (Thread switches are made very
frequent so that the windows, a few bytecodes wide, are hit within seconds.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from logbroker.storage.topic import Topic

_SCRIPT = textwrap.dedent("""
    import json, sys, threading, time
    from logbroker import Producer
    from logbroker.errors import LogBrokerError
    sys.setswitchinterval(1e-6)
    data_dir, rounds = sys.argv[1], int(sys.argv[2])
    unresolved = acked = failed = 0
    for r in range(rounds):
        p = Producer(data_dir, fsync="never", linger_ms=0)
        p.send("t", {"warm": r}, partition=0).get()
        futures = [[] for _ in range(4)]
        go = threading.Event()

        def send(k):
            go.wait()
            while True:
                try:
                    futures[k].append(p.send("t", {"round": r, "k": k}, partition=k % 2))
                except LogBrokerError:
                    return  # closed

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        go.set()
        time.sleep(0.005)
        p.close()
        for t in threads:
            t.join()
        for f in (f for fs in futures for f in fs):
            if not f.done():
                unresolved += 1
            elif f.batch.offset_of(f.index) is None:
                failed += 1
            else:
                acked += 1
    print(json.dumps({"unresolved": unresolved, "acked": acked, "failed": failed}))
""")


@pytest.mark.slow
def test_every_future_of_a_send_racing_close_is_resolved_once_close_returns(data_dir):
    Topic.create(data_dir, "t", 2).close()
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, data_dir, "150"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    assert counts["unresolved"] == 0, counts
    t = Topic(data_dir, "t")
    try:
        stored = sum(t.reader(p).high_watermark() for p in range(2))
    finally:
        t.close()
    assert stored == counts["acked"] + 150  # what was acknowledged, and the 150 warm-up records
