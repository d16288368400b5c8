"""Clock jumps (RELIABILITY.md P1-7): retention follows record time and an injected ``now``; group
liveness follows the monotonic clock.

- Wall clock back an hour (records stamped an hour earlier than those before them, retention run
  with ``now`` an hour back): nothing is deleted, nothing raises.
- Wall clock forward ten years: every closed segment goes, the active one stays with its records,
  readers behind the new log start get OffsetOutOfRangeError, the next append gets the next offset;
  the clock coming back afterwards deletes nothing more.
- A segment stamped a year ahead is kept by ``retention.ms`` (its age is negative) but
  ``retention.bytes`` still removes it: a future timestamp does not pin the log forever.
- Liveness: a heartbeat is judged by ``monotonic_ns`` (injected into ``scan_members``); the wall clock
  of the judge or of the member moving by an hour or ten years changes nothing. A member process whose
  ``time.time`` jumps +1 h, -1 h, +10 y and -10 y mid-session stays live, keeps its partitions and
  generation, and has every commit accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from logbroker import Broker, Producer
from logbroker.clients.consumer import Consumer
from logbroker.errors import OffsetOutOfRangeError
from logbroker.groups.membership import Heartbeat, boot_id, read_generation, scan_members
from logbroker.groups.offsets import GroupPaths
from logbroker.storage.record import PendingRecord
from logbroker.storage.segment import list_segments

from conftest import T0, read_all

# Real processes and kill -9: part of the whole suite (CI), left out of the fast loop.
pytestmark = pytest.mark.slow

HOUR = 3600 * 1000
TEN_YEARS = 10 * 365 * 24 * HOUR
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def append(t, timestamps: list[int]) -> None:
    log = t.log(0)
    for ts in timestamps:
        log.append([PendingRecord(ts, None, None, {"ts": ts, "pad": "p" * 100})])


# -- retention --------------------------------------------------------------------------------------

def test_the_wall_clock_jumping_back_an_hour_deletes_nothing(make_topic):
    t = make_topic(segment_bytes=600, retention_ms=10 * 60 * 1000)  # 10 minutes
    wall = T0
    append(t, [wall + i * 1000 for i in range(12)])  # 12 s of records
    wall -= HOUR  # the clock goes back an hour: new records are stamped before the old ones
    append(t, [wall + 12_000 + i * 1000 for i in range(12)])
    bases = list_segments(t.partition_path(0))
    assert len(bases) >= 6
    before = [(r.offset, r.value) for r in read_all(t)]
    for now in (wall + 24_000, wall + 11 * 60 * 1000, wall + 50 * 60 * 1000):
        report = t.log(0).apply_retention(now=now)
        assert report.deleted == [] and report.log_start_offset == 0, (now - T0, report)
    assert list_segments(t.partition_path(0)) == bases
    assert [(r.offset, r.value) for r in read_all(t)] == before
    # once the clock has caught up with the newest records and gone past retention.ms, the
    # ordinary rule applies again (so the test above could have deleted something)
    report = t.log(0).apply_retention(now=T0 + 12_000 + 11 * 60 * 1000)
    assert report.deleted


def test_the_wall_clock_jumping_forward_ten_years_deletes_only_closed_segments(make_topic, caplog):
    t = make_topic(segment_bytes=600)  # retention.ms: Kafka's 7 days
    append(t, [T0 + i for i in range(30)])
    bases = list_segments(t.partition_path(0))
    active = bases[-1]
    assert len(bases) >= 5
    reader = t.reader(0)
    assert reader.read(0, 1)[0].offset == 0
    report = t.log(0).apply_retention(now=T0 + TEN_YEARS)
    assert [s.base_offset for s in report.deleted] == bases[:-1]
    assert list_segments(t.partition_path(0)) == [active]
    assert report.log_start_offset == active
    kept = read_all(t)
    assert [r.offset for r in kept] == list(range(active, 30))  # the active segment, whole, same offsets
    assert all(r.value["ts"] == T0 + r.offset for r in kept)
    # a reader behind the new log start: a clean out-of-range error naming it
    with pytest.raises(OffsetOutOfRangeError) as exc:
        t.reader(0).read(1, 1)
    assert exc.value.log_start_offset == active
    reader.close()
    # a consumer behind it resets (logged), to the log start with "earliest"
    with Consumer(data_dir=t.data_dir, auto_offset_reset="earliest") as c:
        c.assign([("t", 0)])
        c.seek("t", 0, 0)
        got = c.poll(timeout_ms=100)[("t", 0)]
        assert got[0].offset == active
    assert f"resetting offset 0 to {active}" in caplog.text
    # the clock coming back deletes nothing more; appends go on at the next offset
    assert t.log(0).apply_retention(now=T0).deleted == []
    [res] = t.log(0).append([PendingRecord(T0 + 30, None, None, {"ts": T0 + 30, "pad": ""})])
    assert res.base_offset == 30
    assert list_segments(t.partition_path(0))[0] == active


def test_a_segment_stamped_a_year_ahead_is_kept_by_time_but_not_by_size_retention(make_topic):
    t = make_topic(segment_bytes=600, retention_ms=HOUR)
    year = 365 * 24 * HOUR
    append(t, [T0 + year + i for i in range(5)])  # a producer whose clock is a year ahead
    append(t, [T0 + i for i in range(25)])
    first_closed = list_segments(t.partition_path(0))[0]
    # a day later: the future segment is not expired (negative age) and the walk stops there
    assert t.log(0).apply_retention(now=T0 + 24 * HOUR).deleted == []
    # size retention is not fooled: the oldest segments go whatever their timestamps say
    t = t.alter({"retention.bytes": 1200})
    deleted = t.log(0).apply_retention(now=T0 + 24 * HOUR).deleted
    assert deleted and deleted[0].base_offset == first_closed


# -- group liveness ---------------------------------------------------------------------------------

def test_a_heartbeat_is_judged_by_the_monotonic_clock_never_the_wall_clock(tmp_path, monkeypatch):
    now_ns = time.monotonic_ns()
    wall = int(time.time() * 1000)
    fresh_by_wall_only = Heartbeat("m", 1, "h", boot_id(), 1000, now_ns - 2_000_000_000, wall)
    fresh_by_monotonic_only = Heartbeat("m", 1, "h", boot_id(), 1000, now_ns, wall - TEN_YEARS)
    assert not fresh_by_wall_only.fresh(now_ns)
    assert fresh_by_monotonic_only.fresh(now_ns)

    data_dir = str(tmp_path / "data")
    Broker(data_dir).create_topic("t", 2)
    paths = GroupPaths(os.path.join(data_dir, "t"), "g")
    a = Consumer("t", data_dir=data_dir, group_id="g", session_timeout_ms=1000, enable_auto_commit=False)
    try:
        ids = [m.member for m in scan_members(paths)]
        assert [m.state for m in scan_members(paths)] == ["live"]
        # the judge's monotonic clock 2 session timeouts later: expired, whatever the wall clock says
        assert [m.state for m in scan_members(paths, now_ns=time.monotonic_ns() + 2_000_000_000)] == ["expired"]
        # the judge's wall clock (and the member's) jumping: still live, same generation, same partitions
        generation = read_generation(paths)
        owned = c_parts(a)
        for jump_ms in (HOUR, -HOUR, TEN_YEARS, -TEN_YEARS):
            real = time.time
            monkeypatch.setattr(time, "time", lambda: real() + jump_ms / 1000)
            a.poll(timeout_ms=0)
            a.commit({("t", 0): 0})
            assert [(m.member, m.state) for m in scan_members(paths)] == [(ids[0], "live")], jump_ms
            assert read_generation(paths) == generation and c_parts(a) == owned
            monkeypatch.setattr(time, "time", real)
    finally:
        a.close()


def c_parts(consumer) -> list[int]:
    return sorted(tp.partition for tp in consumer.assignment())


JUMPER = r"""
import logging, os, sys, time
real_time, real_time_ns = time.time, time.time_ns
shift = [0.0]
time.time = lambda: real_time() + shift[0]                  # the injected wall clock of this process
time.time_ns = lambda: real_time_ns() + int(shift[0] * 1e9)
from logbroker.clients.consumer import Consumer
from logbroker.errors import CommitFailedError

class Lines(logging.Handler):
    def emit(self, record):
        print("warning", record.getMessage(), flush=True)
logging.getLogger("logbroker").addHandler(Lines(logging.WARNING))

data_dir, go = sys.argv[1], sys.argv[2]
c = Consumer("t", data_dir=data_dir, group_id="g", session_timeout_ms=1000, enable_auto_commit=False,
             auto_offset_reset="earliest", max_poll_records=2)
print("joined", c.member_id, flush=True)
owned, ok, rejected, records = None, 0, 0, 0
def step():
    global owned, ok, rejected, records
    batch = c.poll(timeout_ms=10)
    records += sum(map(len, batch.values()))
    now = sorted(tp.partition for tp in c.assignment())
    if now != owned:
        owned = now
        print("assign", ",".join(map(str, now)), flush=True)
    try:
        c.commit()
        ok += 1
    except CommitFailedError as exc:
        rejected += 1
        print("rejected", exc, flush=True)
    time.sleep(0.005)
while not os.path.exists(go):          # settle with the other member on the true clock
    step()
for jump in (3600, -3600, 10 * 365 * 86400, -10 * 365 * 86400, 0):
    shift[0] = float(jump)
    print("phase", jump, flush=True)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        step()
print("summary", ok, rejected, records, flush=True)
while not os.path.exists(go + ".stop"):   # stay a member until the test has seen the summary
    step()
c.close()
"""


def test_a_member_whose_wall_clock_jumps_keeps_its_membership_partitions_and_commits(tmp_path):
    data_dir = str(tmp_path / "data")
    Broker(data_dir).create_topic("t", 6)
    with Producer(data_dir, fsync="never") as p:
        for i in range(6 * 300):
            p.send("t", i, partition=i % 6)
    paths = GroupPaths(os.path.join(data_dir, "t"), "g")
    go = str(tmp_path / "go")
    # the child starts before this process holds any group lock
    child = subprocess.Popen([sys.executable, "-c", JUMPER, data_dir, go], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    first = child.stdout.readline().split()
    assert first[:1] == ["joined"], (first, child.stderr.read() if child.poll() is not None else "")
    child_id = first[1]
    me = Consumer("t", data_dir=data_dir, group_id="g", session_timeout_ms=1000, enable_auto_commit=False,
                  auto_offset_reset="earliest", max_poll_records=2)
    skews: list[float] = []
    try:
        deadline = time.monotonic() + 10
        while len(c_parts(me)) != 3 or read_generation(paths).members != tuple(sorted([child_id, me.member_id])):
            assert time.monotonic() < deadline, (f"in 10 s the two members never split the 6 partitions 3 and 3; "
                                                 f"mine {c_parts(me)}, generation {read_generation(paths)}")
            me.poll(timeout_ms=10)
        for _ in range(30):  # let the child see the split as well
            me.poll(timeout_ms=10)
        generation, mine = read_generation(paths), c_parts(me)
        open(go, "w").close()
        lines: list[str] = []
        pump = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        pump.start()
        while not any(line.startswith("summary") for line in lines):  # watch while its clock jumps
            assert child.poll() is None, child.stderr.read()
            me.poll(timeout_ms=10)
            me.commit()
            status = {m.member: m for m in scan_members(paths)}
            assert child_id in status and status[child_id].live, \
                f"the member whose clock jumped was judged {status.get(child_id)}; it said {lines}"
            skews.append(status[child_id].heartbeat.wall_ms - time.time() * 1000)
            assert read_generation(paths) == generation, "the generation changed during the clock jumps"
            assert c_parts(me) == mine
        open(go + ".stop", "w").close()
        child.wait(timeout=30)
        pump.join(timeout=30)
        err = child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        me.close()
    assert child.returncode == 0, err
    lines = [line.rstrip("\n").split(" ", 1) for line in lines]
    assert [body for word, body in lines if word == "warning"] == []  # no "did not heartbeat", no takeover
    assert [body for word, body in lines if word == "rejected"] == []
    phases = [i for i, (word, _) in enumerate(lines) if word == "phase"]
    summary = [i for i, (word, _) in enumerate(lines) if word == "summary"][0]
    assert len(phases) == 5
    assert [w for w, _ in lines[phases[0]:summary] if w == "assign"] == []  # its partitions never moved
    ok, rejected, records = map(int, [body for word, body in lines if word == "summary"][0].split())
    assert ok > 50 and rejected == 0 and records > 0
    # the injection reached the member: its heartbeats carried the jumped wall clock
    for jump in (HOUR, -HOUR, TEN_YEARS, -TEN_YEARS):
        assert any(abs(s - jump) < 60_000 for s in skews), f"no heartbeat seen {jump} ms off"
    print(f"clock jumps: {ok} commits accepted, {records} records read, {len(skews)} liveness checks, "
          f"generation {generation.generation} throughout")
