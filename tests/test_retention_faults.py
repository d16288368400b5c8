"""Retention against slow readers, and crashes in the middle of a retention pass (RELIABILITY.md P1-6).

- **A slow reader under retention.** A producer process appends 6,000 records (4 KiB segments) while
  a retention process deletes segments every few ms (``retention.bytes`` keeps ~3 of them). In this
  process a :class:`~logbroker.storage.reader.PartitionReader` and a group-less
  :class:`~logbroker.clients.consumer.Consumer` read from offset 0, slower than the producer writes. Every
  record either returns is whole and holds exactly what was appended at that offset (so offsets are
  never renumbered). The PartitionReader goes on from a segment it has open even after it was
  unlinked, or gets OffsetOutOfRangeError naming a log start above the offset it asked for; every
  offset the Consumer skips is explained by a logged ``auto_offset_reset``. Afterwards the log has no
  hole, and with ``retention.bytes=0`` retention still keeps the active segment.
- **A retention pass that dies after its checkpoint.** For every point between writing the new log
  start and unlinking the last of the doomed files (a crash injected into ``remove_file``), readers see
  the new log start and whole records from it; ``recover()`` deletes every file below the log start
  and is idempotent; the next append gets the next offset.
- **kill -9 of a process appending and running retention in a loop**, 20 times: the log start
  never goes back, no record changes offset, every acknowledged record at or above the log start is
  there, and recovery leaves no file below the log start.

``LOGBROKER_TORTURE_SEED`` reproduces a schedule (the kernel's timing still varies).
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import time

import pytest

from logbroker.storage import fsutil
from logbroker.storage.checkpoint import read_log_start
from logbroker.clients.consumer import Consumer
from logbroker.errors import OffsetOutOfRangeError
from logbroker.storage.record import PendingRecord
from logbroker.storage.segment import list_segments
from logbroker.storage.topic import Topic

from conftest import T0, read_all, tmp_files

# Real processes and kill -9: part of the whole suite (CI), left out of the fast loop.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
_FILE = re.compile(r"(\d{20})\.(log|index|timeindex)\Z")


def seeded(name: str) -> tuple[int, random.Random]:
    seed = int(os.environ.get("LOGBROKER_TORTURE_SEED", random.randrange(10**9)))
    print(f"{name}: seed {seed} (rerun with LOGBROKER_TORTURE_SEED={seed})")
    return seed, random.Random(seed)


def pad(i: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[i % 26] * (20 + i % 61)


def value(i: int) -> dict:
    return {"i": i, "pad": pad(i)}


def check_record(r) -> None:
    """A record holds exactly what was appended at its offset: it was never renumbered or mixed."""
    assert r.value == value(r.offset) and r.key == f"k{r.offset}" and r.timestamp == T0 + r.offset, \
        f"offset {r.offset} holds {r.value!r}"


def segment_files(directory: str) -> list[tuple[int, str]]:
    return sorted((int(m.group(1)), name) for name in os.listdir(directory) if (m := _FILE.match(name)))


def assert_no_hole(t: Topic) -> list:
    """From the log start to the high watermark: contiguous, right values, each segment starting at its base."""
    reader = t.reader(0)
    start, end = reader.log_start_offset(), reader.high_watermark()
    reader.close()
    records = read_all(t)
    assert [r.offset for r in records] == list(range(start, end))
    for r in records:
        check_record(r)
    bases = list_segments(t.partition_path(0))
    assert bases[0] == start, (bases[:3], start)
    offsets = {r.offset for r in records}
    assert all(b in offsets or b == end for b in bases), "a segment does not start at its base offset"
    return records


# =================================================================================================
# A slow reader while retention deletes segments under it
# =================================================================================================

PRODUCER = r"""
import random, sys, time
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic
data_dir, total, seed, T0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def pad(i):
    return "abcdefghijklmnopqrstuvwxyz"[i % 26] * (20 + i % 61)
rng = random.Random(seed)
log = Topic(data_dir, "t").log(0)
i = 0
while i < total:  # the only writer: record i lands at offset i
    n = min(rng.randint(1, 4), total - i)
    [res] = log.append([PendingRecord(T0 + j, f"k{j}", None, {"i": j, "pad": pad(j)}) for j in range(i, i + n)])
    assert res.base_offset == i, (res.base_offset, i)
    i += n
    time.sleep(0.0003)
print("done", flush=True)
"""

RETENTION = r"""
import os, random, sys, time
from logbroker.storage.checkpoint import StateFile
from logbroker.storage.segment import log_name
from logbroker.storage.topic import Topic
data_dir, stop, seed, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
t = Topic(data_dir, "t")
log = t.log(0)
passes = deleted = last_start = 0
while not os.path.exists(stop):
    report = log.apply_retention(now=now)
    passes += 1
    deleted += len(report.deleted)
    assert report.log_start_offset >= last_start, "the log start went back"
    last_start = report.log_start_offset
    # only this process deletes, so the segment any state names as active must still be there
    state = StateFile(log.directory).read()
    if state is not None:  # None: the producer has not appended yet
        active = state.active_base
        assert os.path.exists(os.path.join(log.directory, log_name(active))), f"active segment {active} deleted"
        assert all(s.base_offset < active for s in report.deleted)
    time.sleep(rng.uniform(0.001, 0.015))
print(passes, deleted, last_start, flush=True)
"""


class Warnings(logging.Handler):
    """Collects logbroker's warnings (the Consumer logs each auto_offset_reset)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_seen():
    handler = Warnings()
    logger = logging.getLogger("logbroker")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_slow_reader_under_retention_gets_whole_records_or_a_clean_out_of_range_never_renumbered(
        tmp_path, warnings_seen):
    seed, rng = seeded("slow reader under retention")
    total = 6_000
    data_dir = str(tmp_path / "data")
    os.mkdir(data_dir)
    # fsync=never: records are visible as soon as written (this is about retention, not durability)
    t = Topic.create(data_dir, "t", 1, {"segment.bytes": 4096, "retention.bytes": 12 * 1024, "retention.ms": -1,
                                        "index.interval.bytes": 512, "fsync": "never"})
    stop = str(tmp_path / "stop")
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, data_dir, str(total), str(seed), str(T0)],
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    retention = subprocess.Popen([sys.executable, "-c", RETENTION, data_dir, stop, str(seed), str(T0)],
                                 env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = t.reader(0)
    consumer = Consumer(data_dir=data_dir, auto_offset_reset="earliest")
    consumer.assign([("t", 0)])
    consumer.seek("t", 0, 0)
    r_next = c_next = 0  # the next offset each expects
    out_of_range = from_unlinked = r_records = c_records = c_resets = 0
    starts_seen = [0]
    resets: dict[int, int] = {}

    def read_some(limit: int) -> None:
        nonlocal r_next, out_of_range, from_unlinked, r_records
        try:
            got = reader.read(r_next, limit)
        except OffsetOutOfRangeError as exc:
            # clean, and true: the records at r_next are gone, the log now starts above it
            assert exc.log_start_offset > r_next, (exc.log_start_offset, r_next)
            assert exc.log_start_offset >= starts_seen[-1], "the log start went back"
            starts_seen.append(exc.log_start_offset)
            out_of_range += 1
            r_next = exc.log_start_offset
            return
        assert [r.offset for r in got] == list(range(r_next, r_next + len(got)))
        for r in got:
            check_record(r)
        if got and got[0].offset < read_log_start(reader.directory, "t", 0):
            from_unlinked += 1  # read on from a segment retention had already removed
        r_next += len(got)
        r_records += len(got)

    def poll_some(limit: int) -> None:
        nonlocal c_next, c_records, c_resets
        batch = consumer.poll(timeout_ms=0, max_records=limit)
        for m in warnings_seen.messages:
            found = re.match(r"topic t partition 0: resetting offset (\d+) to (\d+)", m)
            assert found, f"unexpected warning: {m}"
            resets[int(found.group(1))] = int(found.group(2))
            c_resets += 1
        warnings_seen.messages.clear()
        for r in batch.get(("t", 0), []):
            expected = c_next
            while r.offset != expected and expected in resets:  # every skip is a logged reset
                assert resets[expected] > expected
                expected = resets[expected]
            assert r.offset == expected, f"consumer skipped from {c_next} to {r.offset} without a logged reset"
            check_record(r)
            c_next = r.offset + 1
            c_records += 1

    try:
        seen_end = 0
        while producer.poll() is None:
            # slow whatever the machine's load: 1-3 records each time the producer appended 6 more
            end = reader.high_watermark()
            if end < seen_end + 6:
                time.sleep(0.0005)
                continue
            seen_end = end
            read_some(rng.randint(1, 3))
            poll_some(rng.randint(1, 3))
        assert producer.wait() == 0, producer.stderr.read().decode()
        end = reader.high_watermark()
        assert end == total
        deadline = time.monotonic() + 30
        while (r_next < end or c_next < end) and time.monotonic() < deadline:  # catch up at full speed
            read_some(500)
            poll_some(500)
        assert (r_next, c_next) == (end, end), \
            f"after 30 s of catching up the reader was at {r_next} and the consumer at {c_next} of {end}"
    finally:
        open(stop, "w").close()
        if producer.poll() is None:
            producer.kill()
        retention_rc = retention.wait(30)
        consumer.close()
        reader.close()
    assert retention_rc == 0, retention.stderr.read().decode()
    passes, deleted, final_start = map(int, retention.stdout.read().split())
    assert starts_seen == sorted(starts_seen)

    records = assert_no_hole(t)
    assert records[0].offset == final_start
    # the slow readers really were overtaken: this tested the deletion paths, not a quiet log
    assert deleted > 20 and out_of_range > 0 and c_resets > 0, (deleted, out_of_range, c_resets)
    # retention.bytes = 0 deletes every closed segment and still keeps the active one
    t = t.alter({"retention.bytes": 0})
    active = t.reader(0).state().active_base
    t.log(0).apply_retention(now=T0)
    assert list_segments(t.partition_path(0)) == [active]
    kept = assert_no_hole(t)
    assert kept and kept[0].offset == active and kept[-1].offset == total - 1
    [res] = t.log(0).append([PendingRecord(T0 + total, f"k{total}", None, value(total))])
    assert res.base_offset == total  # the next offset, not renumbered from the active segment
    t.close()
    print(f"slow reader: {deleted} segments deleted in {passes} retention passes; the PartitionReader read "
          f"{r_records} records, got {out_of_range} clean OffsetOutOfRangeErrors and read {from_unlinked} times "
          f"from a removed segment; the Consumer read {c_records} records across {c_resets} logged resets")


# =================================================================================================
# Crash in the middle of a retention pass
# =================================================================================================

class Crash(Exception):
    """The process 'dies' here: nothing after this point of the retention pass runs."""


def fill(t: Topic, count: int) -> None:
    log = t.log(0)
    for i in range(count):
        log.append([PendingRecord(T0 + i, f"k{i}", None, value(i))])


def test_a_retention_pass_that_dies_anywhere_after_its_checkpoint_is_finished_by_recovery(data_dir, monkeypatch):
    segments_doomed = 3
    crash_points = range(3 * segments_doomed + 1)  # after 0..9 of the 9 file removals (3 per segment)
    for crash_after in crash_points:
        name = f"t{crash_after}"
        t = Topic.create(data_dir, name, 1, {"segment.bytes": 700, "retention.ms": -1, "index.interval.bytes": 200})
        fill(t, 40)
        directory = t.partition_path(0)
        bases = list_segments(directory)
        assert len(bases) > segments_doomed + 2
        end = t.reader(0).high_watermark()
        sizes = sum(os.path.getsize(os.path.join(directory, f)) for _, f in segment_files(directory) if f.endswith(".log"))
        first_kept = bases[segments_doomed]
        keep = sum(os.path.getsize(os.path.join(directory, f"{b:020d}.log")) for b in bases[segments_doomed:])
        t = t.alter({"retention.bytes": keep})
        assert sizes > keep

        calls = []
        real_remove = fsutil.remove_file

        def dying_remove(path, missing_ok=True):
            if len(calls) == crash_after:
                raise Crash(path)
            calls.append(path)
            real_remove(path, missing_ok)

        monkeypatch.setattr(fsutil, "remove_file", dying_remove)
        with pytest.raises(Crash) if crash_after < 3 * segments_doomed else _nothing():
            t.log(0).apply_retention(now=T0)
        monkeypatch.setattr(fsutil, "remove_file", real_remove)
        t.close()

        # -- before any recovery: a reader sees the new log start and whole records from it ---------
        assert read_log_start(directory, name, 0) == first_kept  # the checkpoint came first
        reader = Topic(data_dir, name).reader(0)
        assert reader.log_start_offset() == first_kept
        assert [r.offset for r in reader.read(first_kept, 1000)] == list(range(first_kept, end))
        for below in (0, first_kept - 1):
            try:
                got = reader.read(below, 1)  # a file not yet unlinked may still serve it, whole and right
                assert got and got[0].offset == below
                check_record(got[0])
            except OffsetOutOfRangeError as exc:
                assert exc.log_start_offset == first_kept
        reader.close()

        # -- recovery finishes the pass: nothing below the log start, and it is idempotent ----------
        before = [f for b, f in segment_files(directory) if b < first_kept]
        t = Topic(data_dir, name)
        report = t.log(0).recover()
        leftovers = [f for b, f in segment_files(directory) if b < first_kept]
        assert leftovers == [], f"crash after {crash_after} removals left {before}; recovery left {leftovers}"
        assert bool(report) == bool(before), report.actions  # it reports what it finished, and only that
        assert not t.log(0).recover(), "a second recovery changed something"
        assert [r.offset for r in assert_no_hole(t)] == list(range(first_kept, end))
        with pytest.raises(OffsetOutOfRangeError):
            t.reader(0).read(first_kept - 1, 1)
        [res] = t.log(0).append([PendingRecord(T0 + end, f"k{end}", None, value(end))])
        assert res.base_offset == end
        assert tmp_files(t.path) == []
        t.close()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


RETAINER = r"""
import sys
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic
data_dir, inc, T0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = Topic(data_dir, "t")
log = t.log(0)                     # opens files only: no lock is held while it waits
out = sys.stdout
out.write("ready\n"); out.flush()
if sys.stdin.readline().strip() != "go":
    sys.exit(0)
s = 0
while True:
    [res] = log.append([PendingRecord(T0 + s, None, None, {"inc": inc, "s": s, "pad": "x" * 200})])
    out.write(f"a {s} {res.base_offset}\n"); out.flush()
    s += 1
    report = log.apply_retention(now=T0)
    out.write(f"r {report.log_start_offset}\n"); out.flush()
"""


class Retainer:
    def __init__(self, data_dir: str, incarnation: int) -> None:
        self.incarnation = incarnation
        self.popen = subprocess.Popen([sys.executable, "-c", RETAINER, data_dir, str(incarnation), str(T0)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=ENV)

    def go(self) -> None:
        line = self.popen.stdout.readline()
        assert line == b"ready\n", (line, self.popen.stderr.read())
        self.popen.stdin.write(b"go\n")
        self.popen.stdin.flush()

    def lines(self) -> list[list[str]]:
        data = self.popen.stdout.read()
        for f in (self.popen.stdout, self.popen.stdin, self.popen.stderr):
            f.close()
        return [line.split() for line in data.decode().split("\n")[:-1]]


def test_kill_9_during_retention_passes_never_renumbers_or_loses_a_retained_record(tmp_path):
    _seed, rng = seeded("retention kill -9")
    kills_wanted = int(os.environ.get("LOGBROKER_RETENTION_KILLS", "20"))
    data_dir = str(tmp_path / "data")
    os.mkdir(data_dir)
    Topic.create(data_dir, "t", 1, {"segment.bytes": 2048, "retention.bytes": 6 * 1024, "retention.ms": -1,
                                    "index.interval.bytes": 512}).close()
    standby = [Retainer(data_dir, i) for i in range(2)]
    started = 2
    seen: dict[int, tuple[int, int]] = {}  # offset -> (incarnation, seq), as first read
    acked: dict[int, tuple[int, int]] = {}
    last_start = 0
    completed_by_recovery = passes_acked = 0
    try:
        for kill in range(kills_wanted):
            proc = standby.pop(0)
            standby.append(Retainer(data_dir, started))
            started += 1
            proc.go()
            time.sleep(rng.uniform(0.02, 0.25))
            proc.popen.kill()
            proc.popen.wait()
            for word, *rest in proc.lines():
                if word == "a":
                    acked[int(rest[1])] = (proc.incarnation, int(rest[0]))
                elif word == "r":
                    passes_acked += 1
                    assert int(rest[0]) >= last_start  # acknowledged log starts, too, only go forward

            # -- as it was left: a consistent log start, records unchanged at their offsets ----------
            t = Topic(data_dir, "t")
            directory = t.partition_path(0)
            reader = t.reader(0)
            start = reader.log_start_offset()
            assert start >= last_start, f"kill {kill}: the log start went back from {last_start} to {start}"
            reader.close()

            # -- recovery: files below the log start go, nothing else changes --------------------------
            report = t.log(0).recover()
            completed_by_recovery += any("below the log start" in a for a in report.actions)
            assert [f for b, f in segment_files(directory) if b < start] == []
            assert tmp_files(directory) == []
            records = read_all(t)
            assert records and records[0].offset == start
            assert [r.offset for r in records] == list(range(start, start + len(records)))
            for r in records:
                got = (r.value["inc"], r.value["s"])
                assert seen.setdefault(r.offset, got) == got, f"offset {r.offset} changed from {seen[r.offset]} to {got}"
            for offset, who in acked.items():
                if offset >= start:
                    assert seen.get(offset) == who, f"acknowledged record {who} at offset {offset} is missing"
            if start:
                with pytest.raises(OffsetOutOfRangeError):
                    t.reader(0).read(start - 1, 1)
            assert list_segments(directory)[0] == start
            last_start = start
            t.close()
    finally:
        for proc in standby:
            proc.popen.kill()
            proc.popen.wait()
            proc.lines()
    print(f"retention kill -9: {kills_wanted} kills, {len(acked)} acknowledged appends, {passes_acked} acknowledged "
          f"retention passes, log start {last_start}, {completed_by_recovery} passes finished by recovery")
    assert last_start > 0  # retention really ran
