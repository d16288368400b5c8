"""kill -9 of the cleaner at random points, with a producer and a consumer running in other processes.

Checks: no record that compaction keeps is ever lost, no offset is returned twice or renumbered, the
consumer never skips a record that survives, and the partition verifies after recovery.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import read_all
from logbroker.storage.cleaner import clean_partition
from logbroker.tools.inspect import inspect_path
from logbroker.storage.topic import Topic

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
KEYS = 7
TOTAL = 1500

# The record at offset i: key k{i % KEYS}, value {"i": i} or, every 11th, a tombstone.
PRODUCER = r"""
import random, sys
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic
data_dir, total, seed, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
t = Topic(data_dir, "c")
log = t.log(0)
i = 0
while i < total:
    n = min(rng.randint(1, 5), total - i)
    recs = [PendingRecord(1_764_230_400_000 + j, f"k{j % keys}", None, None if j % 11 == 0 else {"i": j})
            for j in range(i, i + n)]
    [res] = log.append(recs)
    assert res.base_offset == i, (res, i)
    i += n
"""

CLEANER = r"""
import sys
from logbroker.storage.cleaner import clean_partition
from logbroker.storage.topic import Topic
t = Topic(sys.argv[1], "c")
while True:
    clean_partition(t.log(0), force=True)
"""

CONSUMER = r"""
import sys, time
from logbroker.storage.topic import Topic
data_dir, total, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reader = Topic(data_dir, "c").reader(0)
offset = 0
with open(out, "w", buffering=1) as f:
    while offset < total:
        got = reader.read(offset, 3)
        if not got:
            time.sleep(0.001)
            continue
        for r in got:
            f.write(f"{r.offset} {r.key} {r.value!r}\n")
        offset = got[-1].offset + 1
"""


def expected(offset: int) -> tuple[str, object]:
    return f"k{offset % KEYS}", None if offset % 11 == 0 else {"i": offset}


def test_kill_9_of_the_cleaner_with_a_producer_and_a_consumer_running(tmp_path):
    seed = int(os.environ.get("LOGBROKER_TORTURE_SEED", random.randrange(10**9)))
    print(f"seed {seed} (rerun with LOGBROKER_TORTURE_SEED={seed})")
    rng = random.Random(seed)
    kills = int(os.environ.get("LOGBROKER_CLEANER_KILLS", 25))
    data_dir = str(tmp_path)
    # delete.retention.ms of ~30 years: the records' timestamps lie in the past, so with the default
    # a tombstone that is its key's latest (offset 1496) may rightly go in a second pass over it;
    # this test is about kills, so every key's latest record must stay.
    Topic.create(data_dir, "c", 1, {"cleanup.policy": "compact", "segment.bytes": 1500,
                                    "min.cleanable.dirty.ratio": 0, "fsync": "never",
                                    "delete.retention.ms": 30 * 365 * 86_400_000})
    seen_file = str(tmp_path / "consumer.txt")
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, data_dir, str(TOTAL), str(seed), str(KEYS)], env=ENV)
    consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, data_dir, str(TOTAL), seen_file], env=ENV)
    killed = 0
    try:
        while killed < kills or producer.poll() is None:
            cleaner = subprocess.Popen([sys.executable, "-c", CLEANER, data_dir], env=ENV)
            time.sleep(rng.uniform(0.15, 0.6))  # start-up is ~0.1 s; then somewhere in a pass
            cleaner.send_signal(signal.SIGKILL)
            cleaner.wait()
            killed += 1
        assert producer.wait(timeout=120) == 0
        assert consumer.wait(timeout=120) == 0
    finally:
        for p in (producer, consumer):
            if p.poll() is None:
                p.kill()
                p.wait()
    t = Topic(data_dir, "c")
    directory = t.log(0).directory
    leftovers = [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap"))]
    print(f"{killed} kills; leftovers before recovery: {leftovers}")
    # Before recovery: readers already see every record that survives, each one right.
    before = read_all(t)
    offsets = [r.offset for r in before]
    assert offsets == sorted(set(offsets))
    for r in before:
        assert (r.key, r.value) == expected(r.offset), r
    latest = {f"k{k}": max(o for o in range(TOTAL) if o % KEYS == k) for k in range(KEYS)}
    assert set(latest.values()) <= set(offsets)
    t.log(0).recover()
    assert not [n for n in os.listdir(directory) if n.endswith((".cleaned", ".swap", ".tmp"))]
    report = inspect_path(directory)
    assert report["ok"], report["problems"]
    after = [r.offset for r in read_all(t)]
    assert set(after) <= set(offsets) and set(latest.values()) <= set(after)
    # The consumer: in order, no duplicate, each record right, and every survivor below its end seen.
    seen = []
    with open(seen_file) as f:
        for line in f:
            off, key, value = line.rstrip("\n").split(" ", 2)
            seen.append(int(off))
            assert (key, value) == (expected(int(off))[0], repr(expected(int(off))[1]))
    assert seen == sorted(set(seen)) and seen[-1] == TOTAL - 1
    assert set(after) <= set(seen)
    # One more pass with nothing in the way: exactly each key's latest below the active segment.
    clean_partition(t.log(0), force=True)
    final = read_all(t)
    closed_end = t.log(0).segment_infos()[-1].base_offset
    keep = {o for o in set(latest.values()) if o < closed_end} | {o for o in after if o >= closed_end}
    last_below = {}
    for o in after:
        if o < closed_end:
            last_below[o % KEYS] = max(last_below.get(o % KEYS, -1), o)
    assert [r.offset for r in final] == sorted(set(last_below.values()) | {o for o in after if o >= closed_end})
    assert keep <= {r.offset for r in final}
    t.close()
