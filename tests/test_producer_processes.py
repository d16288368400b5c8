"""Real processes appending to one partition: serialization by flock, torn writes of killed writers.

Children are started with subprocess (never fork while holding a lock) and run small scripts.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from logbroker.storage.fsutil import FileLock

import corrupt
from conftest import T0, read_all, rec, reopen
import pytest

# Real processes and kill -9: part of the whole suite (CI), left out of the fast loop.
pytestmark = pytest.mark.slow

SENDER = textwrap.dedent("""
    import sys
    from logbroker.clients.producer import Producer
    data_dir, p, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Producer(data_dir, fsync="always", batch_size=0, auto_create=False) as producer:
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()  # start together
        for s in range(n):
            producer.send("t", {"p": p, "s": s}, key=str(p), partition=0).get()
""")


def test_concurrent_producer_processes_get_contiguous_offsets_and_keep_their_order(make_topic, data_dir):
    t = make_topic(segment_bytes=4000)
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", SENDER, data_dir, str(p), str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for p in range(4)]
    for proc in procs:
        assert proc.stdout.readline() == b"ready\n"
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.wait(60) == 0
    records = read_all(reopen(t))
    assert [r.offset for r in records] == list(range(4 * n))
    for p in range(4):
        assert [r.value["s"] for r in records if r.value["p"] == p] == list(range(n))
    # the writers really interleaved (the lock serialized them, it did not run them one by one)
    runs = sum(1 for a, b in zip(records, records[1:]) if a.value["p"] != b.value["p"])
    assert runs > 4


def test_a_writer_killed_mid_write_leaves_a_torn_tail_the_next_writer_cuts(make_topic, data_dir):
    t = make_topic(max_message_bytes=2 * 1024 * 1024)
    log = t.log(0)
    log.append([rec("before", i=0)])
    assert corrupt.kill_mid_write(data_dir, "t", record_bytes=1_500_000), "no kill landed mid-write"
    d = t.partition_path(0)
    path = corrupt.segment_path(d)
    size, keep = os.path.getsize(path), corrupt.valid_end(path)
    t = reopen(t)
    log = t.log(0)
    [res] = log.append([rec("after", i=1)])
    report = log.last_recovery
    assert report is not None and report.truncated_bytes == size - keep
    if keep < size:
        assert f"truncated {size - keep} bytes of torn tail at position {keep} of {path}" in report.actions[-1]
    values = [r.value for r in read_all(t)]
    assert values[0] == "before" and values[-1] == "after"
    assert all(v == "x" * 1_500_000 for v in values[1:-1])
    assert len(values) == res.base_offset + 1


HOLDER = textwrap.dedent("""
    import sys, time
    from logbroker.storage.fsutil import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    sys.stdout.write("locked\\n"); sys.stdout.flush()
    time.sleep(60)
""")


def test_the_partition_lock_is_free_the_moment_its_holder_is_killed(make_topic):
    t = make_topic()
    lock_path = os.path.join(t.partition_path(0), ".lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lock_path], stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"locked\n"
    done = []
    appender = threading.Thread(target=lambda: done.append(t.log(0).append([rec("x")])))
    appender.start()
    time.sleep(0.3)
    assert not done  # blocked behind the other process's flock
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed = time.monotonic()
    appender.join(5)
    assert done and time.monotonic() - killed < 1.0
    assert done[0][0].base_offset == 0


def test_lock_descriptors_are_close_on_exec(tmp_path):
    lock = FileLock(str(tmp_path / ".lock"))
    assert fcntl.fcntl(lock.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    lock.close()


def test_a_child_spawned_while_the_lock_is_held_does_not_keep_it(make_topic):
    t = make_topic()
    log = t.log(0)
    lock_path = os.path.join(t.partition_path(0), ".lock")
    mine = FileLock(lock_path)
    mine.acquire()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], close_fds=False)
    try:
        mine.release()
        other = FileLock(lock_path)
        assert other.acquire(blocking=False)
        other.close()
    finally:
        child.kill()
        child.wait()
        mine.close()
    log.append([rec(1, ts=T0)])
