"""Consumer groups across real processes (RELIABILITY.md P1-5): 3 members on 6 partitions and 30,000
records; nobody dies / kill -9 / SIGSTOP past the session timeout; a second group alongside.

Each member is a fresh ``python`` process (never a fork holding flocks). It appends every record it
processes to its own file as ``partition offset``, flushes, then commits; it logs each assignment
change with ``time.monotonic_ns()`` (one clock for all processes on Linux), so the test measures
takeover times. A thread of the test watches the offsets file and fails on any regression.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from waiting import wait_until
from logbroker import Broker, Producer
from logbroker.groups.offsets import GroupPaths, OffsetStore

# Real processes and kill -9: part of the whole suite (CI), left out of the fast loop.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTITIONS, RECORDS = 6, 30_000

WORKER = r"""
import os, sys, time
from logbroker.clients.consumer import Consumer
from logbroker.errors import CommitFailedError
data_dir, group, out, session_ms, mode = sys.argv[1:6]
stop = os.path.join(data_dir, "stop-" + group)
c = Consumer("t", data_dir=data_dir, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
             session_timeout_ms=int(session_ms), max_poll_records=100)
processed = open(out + ".processed", "a")
events = open(out + ".events", "a", buffering=1)
owned = None
while not os.path.exists(stop):
    batch = c.poll(timeout_ms=50)
    now = sorted(tp.partition for tp in c.assignment())
    if now != owned:
        owned = now
        events.write(f"assign {time.monotonic_ns()} {','.join(map(str, now))}\n")
    if not batch:
        continue
    for tp, records in batch.items():
        for r in records:
            processed.write(f"{r.partition} {r.offset}\n")
    processed.flush()
    time.sleep(0.01)  # the work
    if mode == "stopper" and not os.path.exists(out + ".go"):
        events.write(f"ready {time.monotonic_ns()}\n")
        while not os.path.exists(out + ".go"):
            time.sleep(0.01)
        try:
            c.commit()
            events.write("late-commit accepted\n")
        except CommitFailedError as exc:
            events.write(f"late-commit rejected {exc}\n")
        continue
    try:
        c.commit()
    except CommitFailedError as exc:
        events.write(f"commit rejected {exc}\n")
c.close()
"""


@pytest.fixture
def cluster(tmp_path):
    data_dir = str(tmp_path / "data")
    Broker(data_dir).create_topic("t", PARTITIONS)
    with Producer(data_dir, fsync="never", batch_size=64 * 1024) as p:
        for i in range(RECORDS):
            p.send("t", i, partition=i % PARTITIONS)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = []

    def start(name, group="g", session_ms=10_000, mode="normal"):
        out = str(tmp_path / name)
        env = dict(os.environ, PYTHONPATH=ROOT)
        procs.append(subprocess.Popen([sys.executable, str(script), data_dir, group, out, str(session_ms), mode],
                                      env=env))
        return procs[-1], out

    yield data_dir, start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


class OffsetWatcher(threading.Thread):
    """Reads the group's committed offsets every few ms; records any that went backwards."""

    def __init__(self, data_dir, group="g"):
        super().__init__(daemon=True)
        self.store = OffsetStore(GroupPaths(os.path.join(data_dir, "t"), group), "t")
        self.last: dict[int, int] = {}
        self.regressions: list[tuple[int, int, int]] = []
        self.running = True
        self.start()

    def run(self):
        while self.running:
            for p, c in self.store.read().items():
                if c.offset < self.last.get(p, 0):
                    self.regressions.append((p, self.last[p], c.offset))
                self.last[p] = max(c.offset, self.last.get(p, 0))
            time.sleep(0.003)

    def done(self) -> bool:
        return all(self.last.get(p, 0) == RECORDS // PARTITIONS for p in range(PARTITIONS))

    def progress(self) -> int:
        return sum(self.last.values())


def finish(data_dir, watcher, procs, group="g", timeout=60):
    wait_until(watcher.done, f"group {group} to commit every record", timeout,
               seen=lambda: f"{watcher.progress()} of {RECORDS} committed")
    open(os.path.join(data_dir, "stop-" + group), "w").close()
    for p in procs:
        assert p.wait(timeout=30) == 0
    watcher.running = False
    watcher.join()


def processed(*outs):
    seen = []
    for out in outs:
        with open(out + ".processed") as f:
            seen.extend(tuple(map(int, line.split())) for line in f)
    return seen


def events(out):
    try:
        with open(out + ".events") as f:
            return [line.split(" ", 2) for line in f.read().splitlines()]
    except FileNotFoundError:  # the process has not started yet
        return []


def everything():
    return {(i % PARTITIONS, i // PARTITIONS) for i in range(RECORDS)}


def owners_after(outs, t0_ns):
    """For each partition, when a member in ``outs`` logged owning it at or after ``t0_ns``."""
    when = {}
    for out in outs:
        for ev in events(out):
            if ev[0] == "assign" and int(ev[1]) >= t0_ns and len(ev) > 2 and ev[2]:
                for p in map(int, ev[2].split(",")):
                    when.setdefault(p, int(ev[1]))
    return when


def test_three_members_process_every_record_exactly_once_and_a_second_group_gets_every_record(cluster):
    data_dir, start = cluster
    watcher, watcher2 = OffsetWatcher(data_dir), OffsetWatcher(data_dir, "other")
    members = [start(f"m{i}") for i in range(3)]
    other = start("o1", group="other")
    finish(data_dir, watcher, [p for p, _ in members])
    finish(data_dir, watcher2, [other[0]], group="other")
    seen = processed(*(out for _, out in members))
    assert len(seen) == RECORDS and set(seen) == everything()  # exactly once
    assert sorted(processed(other[1])) == sorted(everything())
    assert watcher.regressions == [] and watcher2.regressions == []
    assert all(any(ev[0] == "assign" and ev[2] for ev in events(out)) for _, out in members)


def test_kill_9_of_a_member_moves_its_partitions_to_the_survivors_quickly(cluster):
    data_dir, start = cluster
    watcher = OffsetWatcher(data_dir)
    members = [start(f"m{i}") for i in range(3)]
    wait_until(lambda: watcher.progress() > RECORDS // 5, f"{RECORDS // 5} records committed", 30,
               seen=lambda: f"{watcher.progress()} committed")
    victim, victim_out = members[1]
    victim_parts = [int(p) for p in [ev for ev in events(victim_out) if ev[0] == "assign"][-1][2].split(",") if p]
    killed_at = time.monotonic_ns()
    victim.kill()
    victim.wait()
    survivors = [out for p, out in members if p is not victim]
    wait_until(lambda: set(victim_parts) <= set(owners_after(survivors, killed_at)),
               f"the survivors to take over partitions {victim_parts}", 10,
               seen=lambda: f"partitions owned since the kill: {sorted(owners_after(survivors, killed_at))}")
    takeover = max(owners_after(survivors, killed_at)[p] for p in victim_parts) - killed_at
    print(f"\ntakeover after kill -9 of a member owning {victim_parts}: {takeover / 1e6:.0f} ms")
    finish(data_dir, watcher, [p for p, _ in members if p is not victim])
    assert victim_parts and takeover < 5e9
    assert set(processed(*(out for _, out in members))) == everything()  # at least once
    assert watcher.regressions == []


def test_a_member_stopped_past_the_session_timeout_loses_its_partitions_and_its_late_commit(cluster):
    data_dir, start = cluster
    session_ms = 1000
    watcher = OffsetWatcher(data_dir)
    a, b = start("a", session_ms=session_ms), start("b", session_ms=session_ms)
    wait_until(lambda: len([1 for out in (a[1], b[1]) for ev in events(out) if ev[0] == "assign" and ev[2]]) >= 2
               and watcher.progress() > 0, "two members with partitions and a commit", 30,
               seen=lambda: f"assignments {[ev for out in (a[1], b[1]) for ev in events(out) if ev[0] == 'assign']}, "
                            f"{watcher.progress()} committed")
    stopper, s_out = start("s", session_ms=session_ms, mode="stopper")
    wait_until(lambda: any(ev[0] == "ready" for ev in events(s_out)), "the stopper to hold a batch", 30,
               seen=lambda: events(s_out))
    s_parts = [int(p) for p in [ev for ev in events(s_out) if ev[0] == "assign"][-1][2].split(",") if p]
    stopper.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic_ns()
    wait_until(lambda: set(s_parts) <= set(owners_after([a[1], b[1]], stopped_at)),
               f"a and b to take over the stopped member's partitions {s_parts}", 15,
               seen=lambda: f"partitions owned since the stop: {sorted(owners_after([a[1], b[1]], stopped_at))}")
    takeover = max(owners_after([a[1], b[1]], stopped_at)[p] for p in s_parts) - stopped_at
    print(f"\ntakeover after SIGSTOP (session.timeout.ms={session_ms}): {takeover / 1e6:.0f} ms")
    time.sleep(0.2)
    stopper.send_signal(signal.SIGCONT)
    open(s_out + ".go", "w").close()
    wait_until(lambda: any(ev[0] == "late-commit" for ev in events(s_out)), "the late commit", 10,
               seen=lambda: events(s_out))
    finish(data_dir, watcher, [a[0], b[0], stopper])
    late = [ev for ev in events(s_out) if ev[0] == "late-commit"][0]
    assert late[1].startswith("rejected"), late
    assert takeover < session_ms * 1e6 + 4e9
    assert set(processed(a[1], b[1], s_out)) == everything()
    assert watcher.regressions == []
