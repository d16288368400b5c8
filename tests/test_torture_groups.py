"""Torture of committed offsets and consumer groups (RELIABILITY.md: P0-4 and the rest of P1-5).

- **kill -9 while committing.** A committer process commits increasing offsets in a tight loop
  through :class:`~logbroker.groups.offsets.OffsetStore` under the group lock (exactly what a member's
  commit does on disk) and acknowledges each commit on its stdout pipe once ``commit`` returned.
  It is SIGKILLed at a random moment, ~150 times; the next incarnation resumes from the committed
  offset. After every kill the offsets file must parse as it is (no fallback needed), hold at least
  the last acknowledged commit and at most one more, never go back, commit its partitions together,
  and leftover ``*.tmp`` files must be ignored by readers and removed by the next commit. A thread of
  the test reads the file lock-free the whole time and must never see damage or a regression.
- **a 4th member joins mid-stream** (3 members consuming 30,000 records of 6 partitions): every
  record processed exactly once (the handovers are clean), commits monotonic per partition, the final
  assignment balanced (2, 2, 1, 1: Kafka's RangeAssignor over the 4 members).
- **a member killed while a producer keeps appending**: the victim is SIGKILLed after processing a
  batch and before committing it, while a producer process appends 18,000 more records. No record
  skipped; the only records processed twice are the victim's uncommitted ones, and every one of those
  is processed again by a survivor; the group catches up with the producer's end.

test_group_processes.py already covers kill -9 at an arbitrary point and SIGSTOP past the session
timeout; these scenarios are the ones it does not. ``LOGBROKER_TORTURE_SEED`` reproduces a schedule.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time

import pytest

from waiting import wait_until
from logbroker import Broker, Producer
from logbroker.groups.membership import range_assign, read_generation
from logbroker.groups.offsets import GroupPaths, OffsetStore, decode_line
from logbroker.storage.topic import Topic

# Real processes and kill -9: part of the whole suite (CI), left out of the fast loop.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def seeded(name: str) -> random.Random:
    seed = int(os.environ.get("LOGBROKER_TORTURE_SEED", random.randrange(10**9)))
    print(f"{name}: seed {seed} (rerun with LOGBROKER_TORTURE_SEED={seed})")
    return random.Random(seed)


# =================================================================================================
# P0-4: committed offsets under kill -9 while committing
# =================================================================================================

COMMITTER = r"""
import os, sys, time
from logbroker.groups.offsets import CommittedOffset, GroupPaths, OffsetStore
topic_dir, incarnation = sys.argv[1], int(sys.argv[2])
out = sys.stdout
out.write("ready\n"); out.flush()
word = sys.stdin.readline().strip()          # standby until the test lets it go
if word not in ("go", "final"):
    sys.exit(0)
paths = GroupPaths(topic_dir, "g")
paths.ensure()
store = OffsetStore(paths, "t")
n = store.committed(0) or 0                  # resume where the dead incarnation stopped
out.write("start\n"); out.flush()           # the kill timer starts here, in the commit loop
for _ in range(5 if word == "final" else 10**9):
    n += 1
    with paths.locked():
        # three partitions in one commit: 0 -> n, 1 -> 2n, 2 -> n + 7; they must move together
        store.commit({0: CommittedOffset(n, incarnation, f"m{incarnation}", 0),
                      1: CommittedOffset(2 * n, incarnation, f"m{incarnation}", 0),
                      2: CommittedOffset(n + 7, incarnation, f"m{incarnation}", 0)})
    out.write(f"{n}\n"); out.flush()         # the acknowledgement: written after commit returned
out.write("done\n"); out.flush()
"""


class Committer:
    """A committer incarnation, started ahead of time: it imports, says ``ready`` and waits."""

    def __init__(self, topic_dir: str, incarnation: int) -> None:
        self.incarnation = incarnation
        self.popen = subprocess.Popen([sys.executable, "-c", COMMITTER, topic_dir, str(incarnation)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=ENV)

    def go(self, word: str = "go") -> None:
        line = self.popen.stdout.readline()
        assert line == b"ready\n", (line, self.popen.stderr.read())
        self.popen.stdin.write(word.encode() + b"\n")
        self.popen.stdin.flush()

    def acks(self) -> list[int]:
        """Every commit it acknowledged (call once it is dead or done); a cut last line is no ack."""
        data = self.popen.stdout.read()
        self.popen.stdout.close()
        self.popen.stdin.close()
        self.popen.stderr.close()
        return [int(line) for line in data.split(b"\n")[:-1] if line.isdigit()]


def read_offsets_file(path: str) -> tuple[int, dict[int, int]] | None:
    """(seq, {partition: offset}) of the file as it is, or None when it does not parse."""
    try:
        with open(path, "rb") as f:
            body = decode_line(f.read())
    except FileNotFoundError:
        return None
    if body is None:
        return None
    return body["seq"], {int(p): v["offset"] for p, v in body["offsets"].items()}


class LockFreeReader(threading.Thread):
    """Reads ``offsets`` without any lock, as consumers do, for as long as the torture runs."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.reads = 0
        self.problems: list[str] = []
        self.running = True
        self.start()

    def run(self) -> None:
        last = (0, 0)
        while self.running:
            if os.path.exists(self.path):
                got = read_offsets_file(self.path)
                if got is None:
                    self.problems.append("a lock-free read saw a damaged or missing offsets file")
                else:
                    seq, offsets = got
                    if (seq, offsets[0]) < last:
                        self.problems.append(f"a lock-free read went back from {last} to {(seq, offsets[0])}")
                    last = (seq, offsets[0])
                    self.reads += 1
            time.sleep(0.0005)


def test_committed_offsets_survive_kill_9_mid_commit_never_going_back_or_losing_an_ack(tmp_path):
    rng = seeded("commit torture")
    kills_wanted = int(os.environ.get("LOGBROKER_COMMIT_KILLS", "150"))
    budget = float(os.environ.get("LOGBROKER_COMMIT_SECONDS", "14"))
    data_dir = str(tmp_path / "data")
    Broker(data_dir).create_topic("t", 3)
    topic_dir = os.path.join(data_dir, "t")
    paths = GroupPaths(topic_dir, "g")
    store = OffsetStore(paths, "t")

    standby: list[Committer] = []
    started = 0

    def spawn() -> None:
        nonlocal started
        standby.append(Committer(topic_dir, started))
        started += 1

    for _ in range(3):  # a few incarnations import while the current one commits
        spawn()
    reader = LockFreeReader(paths.offsets)
    last_ack = 0  # the highest acknowledged commit over all incarnations
    last_seq = last_committed = 0
    kills = checks = acks_total = kills_after_an_ack = tmp_left = tmp_cleaned = prev_equal = 0
    pending_tmp: set[str] = set()
    deadline = time.monotonic() + budget
    try:
        while kills < kills_wanted and time.monotonic() < deadline:
            proc = standby.pop(0)
            spawn()
            proc.go()
            assert proc.popen.stdout.readline() == b"start\n", proc.popen.stderr.read()
            time.sleep(rng.uniform(0, 0.03))
            proc.popen.kill()
            proc.popen.wait()
            kills += 1
            acks = proc.acks()
            acks_total += len(acks)
            kills_after_an_ack += bool(acks)
            if acks:
                assert acks == list(range(acks[0], acks[-1] + 1)), acks
                assert acks[0] == last_committed + 1, (acks[0], last_committed)  # resumed from the commit
                last_ack = max(last_ack, acks[-1])
            if pending_tmp and acks:  # that incarnation committed, so it removed the dead one's temp files
                left = pending_tmp & set(os.listdir(paths.root))
                assert not left, f"leftover temp files {left} survived a later commit"
                tmp_cleaned += len(pending_tmp)
                pending_tmp.clear()
            if not os.path.exists(paths.offsets):
                assert last_ack == 0 and not os.path.exists(paths.prev)
                continue
            # -- the file as it is after kill -9: whole, and where the acknowledgements say -------
            got = read_offsets_file(paths.offsets)
            assert got is not None, f"offsets file damaged after kill {kills}: {open(paths.offsets, 'rb').read()!r}"
            seq, offsets = got
            committed = offsets[0]
            # at least its last acknowledged commit (or where it started), at most the one it was doing
            done = acks[-1] if acks else last_committed
            assert last_ack <= done <= committed <= done + 1, (committed, done, last_ack)
            assert offsets == {0: committed, 1: 2 * committed, 2: committed + 7}, offsets  # all or nothing
            assert committed >= last_committed and seq >= last_seq, "committed offsets went back"
            assert seq == committed, (seq, committed)  # one write per commit, none lost, none repeated
            # -- the previous generation: whole, one commit behind (or equal if killed between) ----
            prev = read_offsets_file(paths.prev)
            if committed > 1:
                assert prev is not None, "offsets.prev damaged"
                assert prev[1][0] in (committed - 1, committed), (prev, committed)
                prev_equal += prev[1][0] == committed
            # -- the API agrees, temp files or not; temp files are only ever ours -----------------
            tmps = {name for name in os.listdir(paths.root) if name.endswith(".tmp")}
            assert all(name.startswith(("offsets.", "offsets.prev.")) for name in tmps), tmps
            tmp_left += len(tmps - pending_tmp)
            pending_tmp |= tmps
            assert {p: c.offset for p, c in store.read().items()} == offsets
            last_committed, last_seq = committed, seq
            checks += 1
        # a last incarnation commits undisturbed: it cleans up and its commits are all there
        final = standby.pop(0)
        final.go("final")
        assert final.popen.stdout.readline() == b"start\n"
        assert final.popen.wait(30) == 0
        acks = final.acks()
        assert acks == list(range(last_committed + 1, last_committed + 6)), (acks, last_committed)
        assert store.committed(0) == acks[-1] and store.committed(1) == 2 * acks[-1]
        tmp_cleaned += len(pending_tmp)
        assert [n for n in os.listdir(paths.root) if n.endswith(".tmp")] == []
    finally:
        reader.running = False
        reader.join()
        for proc in standby:
            proc.popen.kill()
            proc.popen.wait()
            proc.acks()
    assert reader.problems == []
    print(f"commit torture: {kills} kills, {kills_after_an_ack} after at least one acknowledged commit, "
          f"{acks_total} acknowledged commits, {checks} post-kill checks, {tmp_left} temp files left by "
          f"kills ({tmp_cleaned} seen removed by the next commit), {prev_equal} kills between the two replaces, "
          f"{reader.reads} lock-free reads, final committed offset {store.committed(0)}")
    assert kills >= min(kills_wanted, 50), f"only {kills} kills in {budget} s"
    assert tmp_left > 0 and prev_equal > 0  # kills did land inside replaces and between the two


# =================================================================================================
# P1-5: consumer groups, a member joining mid-stream, and kill -9 while a producer appends
# =================================================================================================

PARTITIONS = 6

WORKER = r"""
import os, sys, time
from logbroker.clients.consumer import Consumer
from logbroker.errors import CommitFailedError
data_dir, out, go, pace, mode = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
stop = os.path.join(data_dir, "stop")
events = open(out + ".events", "a", buffering=1)
events.write(f"started {time.monotonic_ns()}\n")
while go != "-" and not os.path.exists(go):   # imported already: joins the moment it is told to
    time.sleep(0.002)
c = Consumer("t", data_dir=data_dir, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False,
             max_poll_records=50)
processed = open(out + ".processed", "a")
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
            processed.write(f"{r.partition} {r.offset} {r.value}\n")
    processed.flush()                          # processed (durably for kill -9) before committed
    time.sleep(pace)                           # the work
    if mode == "victim" and os.path.exists(out + ".hold"):
        events.write("holding\n")              # processed, not committed: now kill me
        while True:
            time.sleep(1)
    try:
        c.commit()
        processed.write("committed\n")
        processed.flush()
    except CommitFailedError as exc:
        events.write(f"commit-rejected {exc}\n")
c.close()
"""

PRODUCER = r"""
import sys, time
from logbroker import Producer
data_dir, start, end, chunk, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
with Producer(data_dir, batch_size=1 << 20) as p:
    for base in range(start, end, chunk):
        for i in range(base, min(base + chunk, end)):
            p.send("t", i, partition=i % 6)
        p.flush()                              # fsync=always: durable, then acknowledged
        print(f"acked {min(base + chunk, end)}", flush=True)
        time.sleep(pause)
print("done", flush=True)
"""


class Group:
    """A topic, its worker processes, and a thread watching the group's commits."""

    def __init__(self, tmp_path, preproduced: int) -> None:
        self.tmp_path = tmp_path
        self.data_dir = str(tmp_path / "data")
        Broker(self.data_dir).create_topic("t", PARTITIONS)
        with Producer(self.data_dir, fsync="never", batch_size=64 * 1024) as p:
            for i in range(preproduced):
                p.send("t", i, partition=i % PARTITIONS)
        self.procs: list[subprocess.Popen] = []
        self.watcher = CommitWatcher(self.data_dir)

    def start(self, name: str, go: str = "-", pace: float = 0.01, mode: str = "normal") -> tuple[subprocess.Popen, str]:
        out = str(self.tmp_path / name)
        with open(out + ".stderr", "wb") as err:  # a file, not a pipe: a chatty child never blocks
            self.procs.append(subprocess.Popen([sys.executable, "-c", WORKER, self.data_dir, out, go, str(pace),
                                                mode], env=ENV, stderr=err))
        return self.procs[-1], out

    def producer(self, start: int, end: int, chunk: int, pause: float) -> subprocess.Popen:
        self.procs.append(subprocess.Popen([sys.executable, "-c", PRODUCER, self.data_dir, str(start), str(end),
                                            str(chunk), str(pause)], env=ENV, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE))
        return self.procs[-1]

    def finish(self, members: list[subprocess.Popen], total: int, timeout: float = 60) -> None:
        wait_until(lambda: self.watcher.done(total), "the group to commit every record", timeout,
                   seen=lambda: f"{self.watcher.progress()} of {total} committed")
        self.generation = read_generation(GroupPaths(os.path.join(self.data_dir, "t"), "g"))  # before they leave
        self.stopped_ns = time.monotonic_ns()  # the last members to leave take over the others' partitions
        open(os.path.join(self.data_dir, "stop"), "w").close()
        for p in members:
            assert p.wait(timeout=30) == 0, open(p.args[4] + ".stderr").read()
        self.watcher.stop()

    def close(self) -> None:
        self.watcher.stop()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


class CommitWatcher(threading.Thread):
    """Reads the committed offsets every few ms: any regression, or any commit beyond the log end."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(daemon=True)
        topic = Topic(data_dir, "t")
        self.readers = [topic.reader(p) for p in range(PARTITIONS)]
        self.store = OffsetStore(GroupPaths(topic.path, "g"), "t")
        self.last: dict[int, int] = {}
        self.problems: list[str] = []
        self.reads = 0
        self.running = True
        self.start()

    def run(self) -> None:
        while self.running:
            for p, c in self.store.read().items():
                if c.offset < self.last.get(p, 0):
                    self.problems.append(f"partition {p}: committed offset went back from {self.last[p]} to {c.offset}")
                end = self.readers[p].high_watermark()  # read after the commit: the log end only grows
                if c.offset > end:
                    self.problems.append(f"partition {p}: committed {c.offset} beyond the log end {end}")
                self.last[p] = max(c.offset, self.last.get(p, 0))
            self.reads += 1
            time.sleep(0.003)

    def done(self, total: int) -> bool:
        return all(self.last.get(p, 0) == len(range(p, total, PARTITIONS)) for p in range(PARTITIONS))

    def progress(self) -> int:
        return sum(self.last.values())

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.join()
            for r in self.readers:
                r.close()


def processed_lines(out: str) -> list[tuple[int, int, int] | None]:
    """A worker's processed log: (partition, offset, value) per record, None for a commit marker."""
    rows: list[tuple[int, int, int] | None] = []
    with open(out + ".processed") as f:
        for line in f.read().splitlines():
            rows.append(None if line == "committed" else tuple(map(int, line.split())))
    return rows


def records_of(out: str) -> list[tuple[int, int, int]]:
    return [row for row in processed_lines(out) if row is not None]


def events(out: str) -> list[list[str]]:
    try:
        with open(out + ".events") as f:
            return [line.split(" ", 2) for line in f.read().splitlines()]
    except FileNotFoundError:
        return []


def assignments(out: str, before_ns: int | None = None) -> list[tuple[int, list[int]]]:
    """A worker's assignment changes (monotonic ns, partitions), optionally only those before a time."""
    return [(int(ev[1]), [int(p) for p in ev[2].split(",")] if len(ev) > 2 and ev[2] else [])
            for ev in events(out) if ev[0] == "assign" and (before_ns is None or int(ev[1]) < before_ns)]


def history(outs: list[str]) -> str:
    """Every member's assignment changes, in time order (for failure messages)."""
    rows = sorted((t, os.path.basename(out), ps) for out in outs for t, ps in assignments(out))
    t0 = rows[0][0] if rows else 0
    return "\n".join(f"{(t - t0) / 1e6:9.1f} ms {name}: {ps}" for t, name, ps in rows)


def check_records(outs: list[str], total: int) -> tuple[set[tuple[int, int]], list[tuple[int, int]]]:
    """Values right, each member's offsets increasing per partition; returns (all seen, every read)."""
    every = []
    for out in outs:
        last: dict[int, int] = {}
        for p, o, value in records_of(out):
            assert value == o * PARTITIONS + p, f"{out}: partition {p} offset {o} holds {value}"
            assert o > last.get(p, -1), f"{out}: partition {p} went from {last[p]} back to {o}"
            last[p] = o
            every.append((p, o))
    expected = {(i % PARTITIONS, i // PARTITIONS) for i in range(total)}
    missing = expected - set(every)
    assert not missing, f"{len(missing)} records skipped by the group, e.g. {sorted(missing)[:5]}"
    assert set(every) == expected
    return set(every), every


@pytest.fixture
def group_factory(tmp_path):
    made = []

    def make(preproduced: int) -> Group:
        made.append(Group(tmp_path, preproduced))
        return made[-1]

    yield make
    for g in made:
        g.close()


def test_a_fourth_member_joining_mid_stream_gets_a_balanced_share_and_the_group_skips_nothing(group_factory):
    total = 30_000
    g = group_factory(total)
    members = [g.start(f"m{i}") for i in range(3)]
    go = os.path.join(g.data_dir, "..", "go-m3")
    fourth = g.start("m3", go=go)  # imports now, joins on the go file
    wait_until(lambda: g.watcher.progress() > total // 5, "a fifth of the records to be committed", 60,
               seen=lambda: f"{g.watcher.progress()} of {total} committed")
    joined_at_progress = g.watcher.progress()
    open(go, "w").close()
    wait_until(lambda: assignments(fourth[1]) and assignments(fourth[1])[-1][1], "the 4th member to own partitions",
               30, seen=lambda: assignments(fourth[1]))
    progress_at_first_assignment = g.watcher.progress()
    everyone = members + [fourth]
    g.finish([p for p, _ in everyone], total)

    outs = [out for _, out in everyone]
    _, every = check_records(outs, total)
    assert len(every) == total, f"{len(every) - total} records processed twice in clean handovers"
    assert g.watcher.problems == []
    # the final assignment: disjoint, complete, and the RangeAssignor's over the 4 live members
    final = [assignments(out, g.stopped_ns)[-1][1] for out in outs]  # as the group was when it was done
    assert sorted(len(ps) for ps in final) == [1, 1, 2, 2], history(outs)
    assert sorted(p for ps in final for p in ps) == list(range(PARTITIONS))
    generation = g.generation
    assert len(generation.members) == 4
    assert sorted(map(sorted, range_assign(generation.members, PARTITIONS).values())) == sorted(final)
    # the newcomer really joined mid-stream and took work
    assert progress_at_first_assignment < total and len(records_of(fourth[1])) > 0
    rejected = [ev for out in outs for ev in events(out) if ev[0] == "commit-rejected"]
    assert rejected == [], rejected
    print(f"join: 4th member told to join at {joined_at_progress} committed records, owned partitions at "
          f"{progress_at_first_assignment}, processed {len(records_of(fourth[1]))}; final assignment {final}; "
          f"generation {generation.generation}; {g.watcher.reads} offset checks")


def test_a_member_killed_before_committing_while_a_producer_appends_costs_only_its_uncommitted_batch(group_factory):
    preproduced, total = 6_000, 24_000
    g = group_factory(preproduced)
    producer = g.producer(preproduced, total, chunk=60, pause=0.01)
    victim, victim_out = g.start("victim", mode="victim")
    survivors = [g.start(f"s{i}") for i in range(2)]
    wait_until(lambda: g.watcher.progress() > preproduced // 2 and any(ps for _, ps in assignments(victim_out)),
               "progress, with the victim owning partitions", 60,
               seen=lambda: f"{g.watcher.progress()} committed; the victim's assignments {assignments(victim_out)}")
    open(victim_out + ".hold", "w").close()
    wait_until(lambda: any(ev[0] == "holding" for ev in events(victim_out)), "the victim to hold a processed batch",
               30, seen=lambda: events(victim_out)[-5:])
    producing = producer.poll() is None
    victim_parts = assignments(victim_out)[-1][1]
    killed_at = time.monotonic_ns()
    victim.kill()
    victim.wait()
    assert producer.wait(60) == 0, producer.stderr.read().decode()
    assert producer.stdout.read().decode().split()[-1] == "done"
    g.finish([p for p, _ in survivors], total)

    survivor_outs = [out for _, out in survivors]
    _, every = check_records([victim_out] + survivor_outs, total)
    rows = processed_lines(victim_out)
    last_marker = max((i for i, row in enumerate(rows) if row is None), default=-1)
    uncommitted = {(p, o) for p, o, _ in rows[last_marker + 1:]}
    survivors_read = [(p, o) for out in survivor_outs for p, o, _ in records_of(out)]
    counts: dict[tuple[int, int], int] = {}
    for key in every:
        counts[key] = counts.get(key, 0) + 1
    twice = {key for key, n in counts.items() if n > 1}
    assert producing, "the producer had finished before the kill; the scenario needs it appending"
    assert uncommitted, "the victim was killed with nothing uncommitted"
    assert uncommitted <= set(survivors_read), "a record the victim did not commit was not processed again"
    assert twice == uncommitted, f"records processed twice outside the victim's uncommitted batch: {sorted(twice - uncommitted)[:5]}"
    assert len(survivors_read) == len(set(survivors_read))  # survivors among themselves: exactly once
    assert g.watcher.problems == []
    takeover = min((t for out in survivor_outs for t, ps in assignments(out)
                    if t > killed_at and set(victim_parts) & set(ps)), default=None)
    final = [assignments(out, g.stopped_ns)[-1][1] for out in survivor_outs]
    assert sorted(len(ps) for ps in final) == [3, 3], history(survivor_outs)
    assert sorted(sum(final, [])) == list(range(PARTITIONS))
    print(f"kill while producing: victim owned {victim_parts}, {len(uncommitted)} uncommitted records "
          f"reprocessed, first takeover {(takeover - killed_at) / 1e6:.0f} ms after the kill; "
          f"{len(every)} records processed for {total}; final assignment {final}")
