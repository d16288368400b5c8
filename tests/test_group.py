"""Consumer groups in one process: assignment, membership, fencing; and the admin calls (describe,
delete, reset plans, replay). Real processes are in test_group_processes.py."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SEGMENT_SIZES, T0, segment_files
from waiting import wait_until
from logbroker import Broker, Producer
from logbroker.groups.admin import (delete_group, describe_group, execute_reset, list_groups, parse_duration_ms,
                             plan_reset_offsets, replay)
from logbroker.clients.consumer import Consumer
from logbroker.errors import (CommitFailedError, GroupError, GroupNotEmptyError, InvalidConfigError,
                              OffsetOutOfRangeError, UnknownGroupError)
from logbroker.groups.membership import (Heartbeat, boot_id, range_assign, read_generation, refuse_if_live,
                                        scan_members)
from logbroker.groups.offsets import GroupPaths


# -- assignment -----------------------------------------------------------------------------------

@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("abcdef0123", min_size=1, max_size=6), min_size=1, max_size=12, unique=True),
       st.integers(0, 64), st.randoms())
def test_range_assignment_is_balanced_exclusive_complete_and_order_independent(members, partitions, rnd):
    a = range_assign(members, partitions)
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert range_assign(shuffled, partitions) == a
    counts = [len(a[m]) for m in members]
    assert set(counts) <= {partitions // len(members), -(-partitions // len(members))}
    owned = sorted(p for m in members for p in a[m])
    assert owned == list(range(partitions))


def test_range_assignment_matches_kafkas_example():
    assert range_assign(["c1", "c0"], 3) == {"c0": [0, 1], "c1": [2]}
    assert range_assign(["a", "b", "c"], 6) == {"a": [0, 1], "b": [2, 3], "c": [4, 5]}


# -- membership -----------------------------------------------------------------------------------

@pytest.fixture
def topic6(data_dir, segment_bytes):
    """Topic t: six partitions of ten records, i=0..59 round-robin at T0 + i, at each segment size."""
    Broker(data_dir).create_topic("t", 6, {"segment.bytes": segment_bytes, "fsync": "never"})  # not about power loss
    with Producer(data_dir, batch_size=0) as p:  # one append per record: small segments roll between records
        for i in range(60):
            p.send("t", {"i": i}, partition=i % 6, timestamp_ms=T0 + i)
    if segment_bytes == SEGMENT_SIZES["one-record"]:
        assert len(segment_files(data_dir, "t", 5)) == 10
    return data_dir


def member_of(data_dir, **kw):
    kw.setdefault("auto_offset_reset", "earliest")
    kw.setdefault("enable_auto_commit", False)
    return Consumer("t", data_dir=data_dir, group_id="g", **kw)


def parts(consumer):
    return sorted(tp.partition for tp in consumer.assignment())


def settle(*consumers, rounds=3, partitions=6, deadline_s=10.0):
    """Let each consumer run membership checks (one per CHECK_INTERVAL_S): at least ``rounds``, then
    until their assignments split all partitions evenly (a loaded machine may need more rounds).
    Fails, naming each member's partitions, if they have not split them evenly by ``deadline_s``."""
    give_up = time.monotonic() + deadline_s
    done = 0
    while True:
        time.sleep(0.11)
        for c in consumers:
            c.poll(timeout_ms=0, max_records=1)
        done += 1
        sizes = [len(parts(c)) for c in consumers]
        split = sorted(p for c in consumers for p in parts(c)) == list(range(partitions))
        if done >= rounds and split and max(sizes) - min(sizes) <= 1:
            return
        if time.monotonic() > give_up:
            owned = {c.member_id: parts(c) for c in consumers}
            pytest.fail(f"after {done} membership checks in {deadline_s} s, {len(consumers)} members had not "
                        f"split partitions 0-{partitions - 1} evenly; they owned {owned}")


def test_settle_fails_naming_what_each_member_owns_when_they_never_split_the_partitions(data_dir):
    Broker(data_dir).create_topic("t", 6)
    with member_of(data_dir) as c:
        with pytest.raises(pytest.fail.Exception, match=r"had not split partitions 0-6 evenly; they owned "
                                                        r"\{'consumer-\w+': \[0, 1, 2, 3, 4, 5\]\}"):
            settle(c, partitions=7, deadline_s=0.3)


def test_a_lone_member_owns_every_partition_and_a_second_gets_half_after_a_handover(topic6):
    c1 = member_of(topic6)
    assert parts(c1) == [0, 1, 2, 3, 4, 5]
    c2 = member_of(topic6)
    assert parts(c2) == []  # c1 still holds them until its next poll
    settle(c1, c2)
    assert sorted(parts(c1) + parts(c2)) == [0, 1, 2, 3, 4, 5]
    assert {len(parts(c1)), len(parts(c2))} == {3}
    c1.close(), c2.close()


def test_each_membership_change_bumps_the_generation(topic6):
    paths = GroupPaths(os.path.join(topic6, "t"), "g")
    c1 = member_of(topic6)
    g1 = read_generation(paths)
    c2 = member_of(topic6)
    g2 = read_generation(paths)
    c2.close()
    g3 = read_generation(paths)
    assert (g1.generation, len(g1.members)) == (1, 1)
    assert (g2.generation, len(g2.members)) == (2, 2)
    assert g3.generation == 3 and g3.members == g1.members
    c1.close()
    assert read_generation(paths).members == ()


def test_a_member_file_whose_lock_is_free_is_a_dead_member_and_is_deleted(topic6):
    c1 = member_of(topic6)
    paths = GroupPaths(os.path.join(topic6, "t"), "g")
    ghost = os.path.join(paths.members, "ghost-1.lock")
    open(ghost, "wb").write(b"")
    states = {m.member: m.state for m in scan_members(paths)}
    assert states["ghost-1"] == "dead" and not os.path.exists(ghost)
    assert list(states.values()).count("live") == 1
    c1.close()


def test_every_lock_descriptor_is_close_on_exec(topic6):
    import fcntl
    c1 = member_of(topic6)
    member = c1._members["t"]
    for lock in [member._lock, *member._held.values()]:
        assert fcntl.fcntl(lock.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    c1.close()


def stall(consumer, seconds):
    """Make a member look as if it was SIGSTOPped ``seconds`` ago: an old heartbeat, lock still held."""
    member = consumer._members["t"]
    member._hb_ns -= int(seconds * 1e9)
    hb = Heartbeat(member.member_id, os.getpid(), "h", boot_id(), member.session_timeout_ms, member._hb_ns, 0)
    os.pwrite(member._lock.fd, hb.encode(), 0)


@pytest.mark.slow
def test_a_stalled_member_is_expired_its_partitions_move_and_its_late_commit_is_rejected(topic6):
    a = member_of(topic6, session_timeout_ms=1000)
    b = member_of(topic6, session_timeout_ms=1000)
    settle(a, b)
    b_parts = parts(b)
    assert len(b_parts) == 3
    stall(b, 2)
    settle(a, rounds=3)
    assert parts(a) == [0, 1, 2, 3, 4, 5]  # taken over although b still holds its old locks
    with pytest.raises(CommitFailedError, match="did not heartbeat"):
        b.commit({("t", b_parts[0]): 1})
    assert a.committed("t", b_parts[0]) is None
    settle(a, b)  # b rejoins: balanced again
    assert sorted(parts(a) + parts(b)) == [0, 1, 2, 3, 4, 5] and len(parts(b)) == 3
    a.close(), b.close()


@pytest.mark.slow
def test_a_commit_for_a_partition_taken_over_is_rejected_even_with_a_fresh_heartbeat(topic6):
    a = member_of(topic6, session_timeout_ms=1000)
    b = member_of(topic6, session_timeout_ms=1000)
    settle(a, b)
    lost = parts(b)[0]
    stall(b, 2)
    settle(a, rounds=3)
    member = b._members["t"]
    member._heartbeat(time.monotonic_ns())  # resumed, heartbeat refreshed before its next check
    with pytest.raises(CommitFailedError):
        b.commit({("t", lost): 1})
    a.close(), b.close()


def test_a_heartbeat_from_another_boot_is_not_live():
    hb = Heartbeat("m", 1, "h", "another-boot", 10_000, time.monotonic_ns(), 0)
    assert not hb.fresh(time.monotonic_ns())
    assert Heartbeat("m", 1, "h", boot_id(), 10_000, time.monotonic_ns(), 0).fresh(time.monotonic_ns())
    assert Heartbeat.decode(hb.encode()) == hb and len(hb.encode()) == 512


def test_two_groups_on_one_topic_each_get_every_record(topic6):
    seen = {}
    for group in ("g1", "g2"):
        with Consumer("t", data_dir=topic6, group_id=group, auto_offset_reset="earliest") as c:
            got = c.poll(timeout_ms=100, max_records=1000)
            seen[group] = sorted((tp.partition, r.offset) for tp, rs in got.items() for r in rs)
    assert len(seen["g1"]) == 60 and seen["g1"] == seen["g2"]


# -- admin ----------------------------------------------------------------------------------------

def test_list_and_describe_show_offsets_lag_owner_and_lag_by_time(topic6):
    with member_of(topic6) as c:
        c.poll(timeout_ms=50, max_records=1000)
        c.commit({("t", 0): 4, ("t", 1): 10})
        assert list_groups(topic6) == ["g"]
        rows = {r.partition: r for r in describe_group(topic6, "g", now_ms=T0 + 1000)}
        assert (rows[0].current_offset, rows[0].log_end_offset, rows[0].lag) == (4, 10, 6)
        assert rows[0].lag_ms == 1000 - (4 * 6)  # the record at offset 4 of partition 0 is i=24
        assert (rows[1].lag, rows[1].lag_ms) == (0, 0)
        assert rows[2].current_offset is None and rows[2].lag is None
        assert rows[0].consumer_id == c.member_id and rows[0].client_id == "consumer"
    rows = describe_group(topic6, "g")
    assert all(r.consumer_id is None for r in rows)
    with pytest.raises(UnknownGroupError):
        describe_group(topic6, "nope")


def test_refuse_if_live_raises_the_callers_error_naming_the_live_members_and_nothing_once_they_left(topic6):
    paths = GroupPaths(os.path.join(topic6, "t"), "g")
    a, b = member_of(topic6), member_of(topic6)
    with pytest.raises(GroupError, match="busy") as caught:
        refuse_if_live(paths, lambda live: GroupError(f"busy: {live}", members=live))
    assert caught.value.members == sorted([a.member_id, b.member_id])
    a.close()
    b.close()
    assert refuse_if_live(paths, lambda live: GroupError(f"busy: {live}")) is None


def test_delete_group_is_refused_while_a_member_is_live(topic6):
    c = member_of(topic6)
    with pytest.raises(GroupNotEmptyError):
        delete_group(topic6, "g")
    c.close()
    delete_group(topic6, "g")
    assert list_groups(topic6) == []
    with pytest.raises(UnknownGroupError):
        delete_group(topic6, "g")


@pytest.fixture
def reset_topic(data_dir):
    """One partition, offsets 0..19 at T0 + 1000*i, segments of ~4 records, the first 8 retained away."""
    b = Broker(data_dir)
    b.create_topic("t", 1, {"segment.bytes": 400})
    with Producer(data_dir, batch_size=0) as p:  # one append per record, or all 20 would be one batch
        for i in range(20):
            p.send("t", {"i": i}, partition=0, timestamp_ms=T0 + 1000 * i)
    assert len(segment_files(data_dir, "t", 0)) >= 4
    t = b.topic("t")
    log = t.log(0)
    from logbroker.storage.checkpoint import write_log_start
    write_log_start(log.directory, "t", 0, 8)  # as if retention had removed offsets 0..7
    log.recover()
    t.close()
    with Consumer("t", data_dir=data_dir, group_id="g", auto_offset_reset="earliest") as c:
        c.commit({("t", 0): 12})
    return data_dir


@pytest.mark.parametrize("spec, new", [
    ("to-earliest", 8), ("to-latest", 20), ("to-current", 12),
    ("to-offset=15", 15), ("to-offset=3", 8), ("to-offset=99", 20),
    (("shift-by", -2), 10), (("shift-by", -100), 8), (("shift-by", 100), 20),
    (("to-datetime", "2025-11-27T08:00:14.000"), 14), (("to-datetime", "2025-11-27T10:00:14+02:00"), 14),
    (("to-datetime", "2025-11-27T08:00:13.500Z"), 14), (("to-datetime", "2030-01-01T00:00:00"), 20),
    (("to-datetime", "2000-01-01T00:00:00"), 8),
    (("by-duration", "PT6S"), 14), (("by-duration", "P1D"), 8),
])
def test_reset_plans_land_where_kafkas_tool_would(reset_topic, spec, new):
    plan = plan_reset_offsets(reset_topic, "g", "t", None, spec, now_ms=T0 + 20_000)
    assert [tuple(r) for r in plan] == [("t", 0, 12, new)]


def test_executing_a_reset_moves_offsets_back_and_is_refused_while_a_member_is_live(reset_topic):
    plan = plan_reset_offsets(reset_topic, "g", "t", [0], "to-earliest")
    c = Consumer("t", data_dir=reset_topic, group_id="g")
    with pytest.raises(GroupNotEmptyError, match="no live members"):
        execute_reset(plan)
    c.close(autocommit=False)
    execute_reset(plan)
    with Consumer("t", data_dir=reset_topic, group_id="g", enable_auto_commit=False) as c:
        assert c.committed("t", 0) == 8 and c.position("t", 0) == 8


def test_bad_reset_specs_are_refused_with_a_clear_message(reset_topic):
    for spec in ("to-nowhere", "to-offset=x", ("by-duration", "1h"), ("by-duration", "PT"),
                 ("to-datetime", "yesterday")):
        with pytest.raises(InvalidConfigError):
            plan_reset_offsets(reset_topic, "g", "t", None, spec)
    with pytest.raises(GroupError, match="needs a committed offset"):
        plan_reset_offsets(reset_topic, "fresh", "t", None, ("shift-by", 1))
    assert parse_duration_ms("P1DT2H") == 26 * 3600 * 1000 and parse_duration_ms("PT0.5S") == 500


def test_replay_returns_exactly_the_requested_range_and_touches_no_offsets(reset_topic):
    offsets = lambda **kw: [r.offset for r in replay(reset_topic, "t", **kw)]
    assert offsets() == list(range(8, 20))
    assert offsets(from_offset=10, to_offset=13) == [10, 11, 12]
    assert offsets(from_offset=15, to_offset=99) == list(range(15, 20))
    assert offsets(from_time=T0 + 9500, to_time=T0 + 12_000) == [10, 11]
    assert offsets(from_time="2025-11-27T08:00:18Z", partition=0) == [18, 19]
    assert offsets(from_offset=12, to_offset=12) == []
    with pytest.raises(OffsetOutOfRangeError):
        offsets(from_offset=2)
    with Consumer("t", data_dir=reset_topic, group_id="g", enable_auto_commit=False) as c:
        assert c.committed("t", 0) == 12


@pytest.mark.slow
def test_a_stalled_member_whose_group_was_deleted_rejoins_and_the_generation_settles(topic6):
    b = member_of(topic6, session_timeout_ms=1000)
    settle(b)
    stall(b, 2)
    delete_group(topic6, "g")  # allowed: b is expired
    a = member_of(topic6, session_timeout_ms=1000)
    settle(a, b)
    paths = GroupPaths(os.path.join(topic6, "t"), "g")
    first = read_generation(paths)
    settle(a, b, rounds=5)
    assert read_generation(paths) == first  # no churn: every member sees every other
    members = sorted(name.split(".")[0] for name in os.listdir(paths.members))
    assert members == sorted([a.member_id, b.member_id])
    assert sorted(parts(a) + parts(b)) == [0, 1, 2, 3, 4, 5]
    a.close(), b.close()


@pytest.mark.slow
def test_a_member_polls_and_fails_its_commit_promptly_while_a_stopped_process_holds_the_group_lock(topic6):
    import signal
    import subprocess
    import sys

    a = member_of(topic6, session_timeout_ms=1000)
    settle(a)
    paths = GroupPaths(os.path.join(topic6, "t"), "g")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, signal\n"
        f"fd = os.open({paths.lock!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGSTOP)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        import threading
        outcome = []

        def polls_then_commit():
            for _ in range(5):
                a.poll(timeout_ms=20)
            outcome.append("polled")
            try:
                a.commit({("t", parts(a)[0]): 0})
                outcome.append("committed")
            except CommitFailedError as exc:
                outcome.append(str(exc))
        # Both steps end while the holder still holds the lock (it is stopped until the finally
        # below): a poll or commit waiting for the lock would wait until the holder dies.
        worker = threading.Thread(target=polls_then_commit, daemon=True)
        worker.start()
        wait_until(lambda: len(outcome) == 2, "five polls and a commit while a stopped process holds the "
                   "group lock", seen=lambda: outcome)
        assert holder.poll() is None  # the holder was stopped, holding the lock, throughout
        assert outcome[0] == "polled" and f"held by process {holder.pid} (" in outcome[1], outcome
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    a.commit({("t", parts(a)[0]): 0})  # the lock is free again
    a.close()
