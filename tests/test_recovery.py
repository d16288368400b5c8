"""Recovery (FORMAT.md, "Recovery rules"): torn tails are cut and reported, corruption is refused.

The cut tests write a partition through the real append path, then damage a copy of its bytes and
reopen it as a new process would (a new Topic), calling ``recover()``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logbroker.storage.checkpoint import STATE_NAME, write_log_start
from logbroker.errors import CorruptionError
from logbroker.storage.record import PendingRecord
from logbroker.storage.segment import list_segments, log_name
from logbroker.storage.topic import Topic

import corrupt
from conftest import T0, read_all, rec, reopen, tmp_files


def written_values(t: Topic) -> list:
    return [r.value for r in read_all(t)]


def build_partition(make_topic, batches, **config):
    """Append ``batches`` (lists of values); returns (topic, partition dir, values in offset order)."""
    t = make_topic(**config)
    log = t.log(0)
    values = []
    for batch in batches:
        log.append([rec(v, key="k", headers={"n": str(len(values))}, i=len(values) + j) for j, v in enumerate(batch)])
        values.extend(batch)
    t.close()
    return t, t.partition_path(0), values


def check_reopened(t: Topic, expected: list, path: str, keep: int, size: int):
    """Reopen, recover, and check the prefix, the report, idempotence and the next append."""
    t = reopen(t)
    log = t.log(0)
    report = log.recover()
    if keep < size:
        assert report.truncated_bytes == size - keep
        assert any(f"truncated {size - keep} bytes of torn tail at position {keep} of {path}" in a
                   for a in report.actions), report.actions
    else:
        assert report.truncated_bytes == 0
    assert os.path.getsize(path) == keep
    assert written_values(t) == expected
    again = log.recover()
    assert not again and os.path.getsize(path) == keep
    [res] = log.append([rec("next")])
    assert res.base_offset == len(expected)
    assert written_values(t) == expected + ["next"]
    t.close()


@pytest.mark.slow
def test_cutting_the_last_batch_at_every_byte_keeps_exactly_the_earlier_batches(make_topic):
    t, d, values = build_partition(make_topic, [["a", "b"], ["c"], [{"big": "z" * 700, "u": "ü"}, "e", "f"]])
    path = corrupt.segment_path(d)
    spans = corrupt.batch_spans(path)
    last_start, size = spans[-1][0], spans[-1][1]
    saved = corrupt.snapshot(d)
    for cut in range(last_start, size):
        corrupt.restore(d, saved)
        corrupt.truncate(path, cut)
        check_reopened(t, values[:3], path, last_start, cut)


def test_cutting_the_last_batch_with_the_state_file_lost_keeps_the_earlier_batches(make_topic):
    t, d, values = build_partition(make_topic, [["a"], ["b", "c"], ["d" * 300]])
    path = corrupt.segment_path(d)
    last_start, size = corrupt.batch_spans(path)[-1][:2]
    saved = corrupt.snapshot(d)
    for cut in range(last_start, size, 7):
        corrupt.restore(d, saved)
        corrupt.truncate(path, cut)
        os.unlink(os.path.join(d, STATE_NAME))
        check_reopened(t, values[:3], path, last_start, cut)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.text(max_size=30), min_size=1, max_size=4), min_size=1, max_size=8),
       data=st.data())
def test_cutting_the_active_segment_anywhere_keeps_the_whole_batches_before_the_cut(tmp_path_factory, batches, data):
    data_dir = str(tmp_path_factory.mktemp("cut"))
    t = Topic.create(data_dir, "t", 1, {"segment.bytes": 700})
    log = t.log(0)
    values = []
    for batch in batches:
        log.append([rec(v, i=len(values) + j) for j, v in enumerate(batch)])
        values.extend(batch)
    t.close()
    d = t.partition_path(0)
    path = corrupt.segment_path(d)
    spans = corrupt.batch_spans(path)
    cut = data.draw(st.integers(0, os.path.getsize(path)), label="cut")
    corrupt.truncate(path, cut)
    whole = [s for s in spans if s[1] <= cut]
    keep = whole[-1][1] if whole else 0
    kept_offsets = whole[-1][2] + whole[-1][3] if whole else spans[0][2]
    check_reopened(t, values[:kept_offsets], path, keep, cut)


@pytest.mark.parametrize("tail", ["zeros 1", "zeros 7", "zeros 512", "zeros 4096", "garbage 1", "garbage 100",
                                  "garbage 5000", "bad-crc line", "half a record then zeros", "a lone newline"])
def test_zero_filled_and_garbage_tails_are_cut_and_reported_never_called_corruption(make_topic, tail):
    t, d, values = build_partition(make_topic, [["a"], ["b", "c"]])
    path = corrupt.segment_path(d)
    size = os.path.getsize(path)
    kind, _, n = tail.partition(" ")
    next_line, _ = corrupt.batch_bytes(3, [PendingRecord(T0, None, None, "phantom " * 40)])
    if kind == "zeros":
        junk = corrupt.zeros(int(n))
    elif kind == "garbage":
        junk = corrupt.garbage(int(n), seed=int(n))
    elif tail == "bad-crc line":
        junk = next_line[:8] + b"00000000" + next_line[16:]
    elif tail == "half a record then zeros":
        junk = next_line[:len(next_line) // 2] + corrupt.zeros(4096 - len(next_line) // 2)
    else:
        junk = b"\n"
    corrupt.append_bytes(path, junk)
    check_reopened(t, values, path, size, size + len(junk))


def test_a_valid_batch_after_torn_bytes_beyond_the_high_watermark_is_cut_with_them(make_topic):
    # A writer died mid-write (torn bytes), and bytes of a complete batch follow: neither was ever
    # recorded or acknowledged, so both are the tail.
    t, d, values = build_partition(make_topic, [["a"], ["b"]])
    path = corrupt.segment_path(d)
    size = os.path.getsize(path)
    later, _ = corrupt.batch_bytes(2, [PendingRecord(T0, None, None, "never acked")])
    corrupt.append_bytes(path, corrupt.garbage(50) + b"\n" + later)
    check_reopened(t, values, path, size, size + 51 + len(later))


def test_complete_batches_beyond_the_recorded_log_end_are_kept(make_topic):
    # A writer died after its write and before it recorded the new log end: its batch is whole.
    t, d, values = build_partition(make_topic, [["a"], ["b"]])
    path = corrupt.segment_path(d)
    extra, _ = corrupt.batch_bytes(2, [PendingRecord(T0, None, None, "c"), PendingRecord(T0, None, None, "d")])
    corrupt.append_bytes(path, extra)
    check_reopened(t, values + ["c", "d"], path, os.path.getsize(path), os.path.getsize(path))


def mid_log(make_topic, n=20):
    t, d, values = build_partition(make_topic, [[{"n": i, "s": "payload-%d" % i}] for i in range(n)])
    path = corrupt.segment_path(d)
    return t, d, values, path, corrupt.batch_spans(path)


@pytest.mark.slow
def test_every_bit_flip_of_a_mid_log_record_is_reported_never_returned(make_topic):
    t, d, values, path, spans = mid_log(make_topic)
    start, end, offset, _ = spans[10]
    saved = corrupt.snapshot(d)
    for bit in range(start * 8, end * 8):
        corrupt.restore(d, saved)
        corrupt.flip_bit(path, bit)
        reader = Topic(t.data_dir, "t").reader(0)
        assert [r.value for r in reader.read(0, 10)] == values[:10]
        with pytest.raises(CorruptionError) as info:
            reader.read(0, 1000)
        assert info.value.path == path and info.value.position == start
        reader.close()
    # a full recovery scan refuses to cut the valid records after the damage
    os.unlink(os.path.join(d, STATE_NAME))
    topic = Topic(t.data_dir, "t")
    with pytest.raises(CorruptionError) as info:
        topic.log(0).recover()
    assert (info.value.path, info.value.position, info.value.offset) == (path, start, offset)
    assert f"position {start}" in str(info.value) and path in str(info.value)
    topic.close()  # not the log alone: the topic's descriptor budget would close it a second time
    assert os.path.getsize(path) == spans[-1][1]


def test_a_damaged_sector_in_the_middle_is_corruption_not_a_torn_tail(make_topic):
    t, d, values, path, spans = mid_log(make_topic, n=40)
    saved = corrupt.snapshot(d)
    for fill in (corrupt.zeros(512), corrupt.garbage(512, seed=3)):
        t.close()
        corrupt.restore(d, saved)
        corrupt.overwrite(path, 512, fill)
        t = reopen(t)
        with pytest.raises(CorruptionError):
            read_all(t)
        os.unlink(os.path.join(d, STATE_NAME))
        with pytest.raises(CorruptionError):
            t.log(0).recover()
        assert os.path.getsize(path) == spans[-1][1]
    t.close()


def test_recover_removes_temp_files_and_segments_below_the_log_start(make_topic):
    t, d, values = build_partition(make_topic, [[i] for i in range(10)], segment_bytes=150)
    bases = list_segments(d)
    write_log_start(d, "t", 0, bases[3])  # a retention pass died between its checkpoint and its unlinks
    open(os.path.join(d, "log-start-offset-checkpoint.abcd1234.tmp"), "wb").write(b"half")
    t = reopen(t)
    report = t.log(0).recover()
    assert list_segments(d) == bases[3:]
    assert any("temp file" in a for a in report.actions)
    assert sum("below the log start offset" in a for a in report.actions) == 3
    assert tmp_files(t.data_dir) == []
    assert written_values(t) == values[bases[3]:]
    assert not t.log(0).recover()
    t.close()


def test_recovery_of_a_clean_partition_changes_nothing_and_reports_nothing(make_topic, segment_bytes):
    t, d, values = build_partition(make_topic, [[i, i] for i in range(10)], segment_bytes=segment_bytes)
    before = corrupt.snapshot(d)
    t = reopen(t)
    assert not t.log(0).recover()
    assert t.log(0).last_recovery is not None and not t.log(0).last_recovery
    assert corrupt.snapshot(d) == before
    t.log(0).append([rec("x")])
    assert t.log(0).last_recovery is not None and not t.log(0).last_recovery
    t.close()


def test_under_interval_a_zeroed_unsynced_batch_before_an_intact_last_one_is_cut_not_made_visible(make_topic):
    from logbroker.storage.fsutil import FsyncPolicy

    t = make_topic(fsync="interval", flush_ms=3_600_000)
    log = t.log(0)
    log.append([rec(f"synced-{i}", i=i) for i in range(3)], FsyncPolicy("always"))
    log.append([rec("lost-a", i=3), rec("lost-b", i=4)])  # never synced: past the high watermark
    log.append([rec("lost-c", i=5)])
    assert t.reader(0).high_watermark() == 3
    path = os.path.join(t.partition_path(0), log_name(0))
    with open(path, "r+b") as f:  # a power loss kept the last batch's page but not the one before
        data = f.read()
        start = data.index(b'"lost-a"')
        line_start = data.rindex(b"\n", 0, start) + 1
        line_end = data.index(b'"lost-c"')
        line_end = data.rindex(b"\n", 0, line_end) + 1
        f.seek(line_start)
        f.write(b"\0" * (line_end - line_start))
    t = reopen(t)
    t.log(0).append([rec("after", i=6)])
    t.log(0).flush()
    assert [r.value for r in read_all(t)] == ["synced-0", "synced-1", "synced-2", "after"]
    report = t.log(0).last_recovery
    assert report and any("truncated" in a for a in report.actions)


# -- the recovery functions a writer runs on its active segment (storage.recovery) ------------------

def _active_and_state(t: Topic):
    from logbroker.storage.checkpoint import StateFile
    from logbroker.storage.segment import Segment
    pdir = t.partition_path(0)
    state_file = StateFile(pdir)
    try:
        state = state_file.read()
    finally:
        state_file.close()
    return Segment.open_append(pdir, state.active_base), state


def test_tail_problem_passes_a_sound_tail_and_names_a_torn_one(make_topic):
    from logbroker.storage.recovery import tail_problem
    t, pdir, _ = build_partition(make_topic, [[1, 2, 3], [4, 5]])
    active, state = _active_and_state(t)
    try:
        assert tail_problem(active, state, 4096) is None
        corrupt.append_bytes(active.path, b'{"crc":"00')
        assert "longer than the recorded log end position" in tail_problem(active, state, 4096)
        corrupt.truncate(active.path, state.log_end_position)
        corrupt.flip_bit(active.path, 8 * (state.log_end_position - 3))
        assert tail_problem(active, state, 4096) == "the last batch is not intact"
    finally:
        active.close()


def test_recover_active_cuts_a_torn_tail_rebuilds_the_state_and_reports_the_cut(make_topic):
    from logbroker.storage.recovery import recover_active
    t, pdir, values = build_partition(make_topic, [[1, 2, 3], [4, 5]])
    active, state = _active_and_state(t)
    try:
        corrupt.append_bytes(active.path, b'{"crc":"0000')
        new_state, report = recover_active(active, state, "a test", 4096, "t", 0)
        assert (new_state.log_end_offset, new_state.high_watermark) == (5, 5)
        assert new_state.log_end_position == active.size() == state.log_end_position
        assert report.truncated_bytes == 12 and report.actions[0] == "recovered t-0: a test"
        assert "truncated 12 bytes of torn tail" in report.actions[1]
    finally:
        active.close()
    assert written_values(reopen(t)) == values


def test_recover_active_refuses_damage_followed_by_valid_batches_and_changes_nothing(make_topic):
    from logbroker.storage.recovery import recover_active
    t, pdir, _ = build_partition(make_topic, [[1, 2], [3, 4], [5, 6]])
    active, state = _active_and_state(t)
    try:
        before = open(active.path, "rb").read()
        corrupt.flip_bit(active.path, 8 * 30)  # inside the first batch: valid batches follow
        damaged = open(active.path, "rb").read()
        with pytest.raises(CorruptionError, match="not a torn tail"):
            recover_active(active, state, None, 4096, "t", 0, trusted=False)
        assert open(active.path, "rb").read() == damaged != before
    finally:
        active.close()


def test_rebuild_closed_index_restores_a_deleted_index_of_a_closed_segment(make_topic):
    from logbroker.storage.index import load_index
    from logbroker.storage.recovery import rebuild_closed_index
    from logbroker.storage.segment import index_name, timeindex_name
    t, pdir, values = build_partition(make_topic, [[i] for i in range(40)], segment_bytes=2000, index_interval_bytes=100)
    base = list_segments(pdir)[0]
    size = os.path.getsize(os.path.join(pdir, log_name(base)))
    paths = os.path.join(pdir, index_name(base)), os.path.join(pdir, timeindex_name(base))
    before = load_index(*paths, base, size)
    assert before is not None and before.offsets and before.closing is not None
    for p in paths:
        os.unlink(p)
    rebuild_closed_index(pdir, base, 100)
    after = load_index(*paths, base, size)
    assert (after.offsets, after.positions, after.closing) == (before.offsets, before.positions, before.closing)
    assert written_values(reopen(t)) == values
