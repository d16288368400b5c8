"""One partition's log: appends, rolls, limits, retention, names and paths."""

from __future__ import annotations

import os

import pytest

from logbroker.storage.config import validate_topic_name
from logbroker.errors import (InvalidNameError, OffsetOutOfRangeError, RecordTooLargeError, UnsafePathError)
from logbroker.storage.fsutil import FsyncPolicy
from logbroker.storage.log import PartitionLog
from logbroker.storage.segment import list_segments, log_name
from logbroker.storage.topic import Topic

import corrupt
from conftest import T0, read_all, rec, reopen, tmp_files

DAY = 24 * 3600 * 1000


def test_appends_get_contiguous_offsets_and_read_back_in_order(make_topic, segment_bytes):
    t = make_topic(segment_bytes=segment_bytes)
    log = t.log(0)
    offsets = []
    for i in range(0, 60, 3):
        results = log.append([rec({"i": i + j}, key=f"k{j}", i=i + j) for j in range(3)])
        offsets.extend(r.base_offset + k for r in results for k in range(r.count))
    assert offsets == list(range(60))
    records = read_all(t)
    assert [(r.offset, r.value["i"], r.timestamp) for r in records] == [(i, i, T0 + i) for i in range(60)]
    t = reopen(t)
    assert t.log(0).append([rec("next")])[0].base_offset == 60


def test_a_reader_continuing_in_small_steps_sees_every_record_appended_and_rolled_since(make_topic, segment_bytes):
    # The reader keeps the bytes it read last: a later read must still see what was appended
    # after them, in the same segment and in the segments rolled since, never stale bytes.
    t = make_topic(segment_bytes=segment_bytes)
    log = t.log(0)
    reader = t.reader(0)
    seen, expected, i = [], [], 0
    for round_ in range(12):
        batch = [rec({"i": i + j}, i=i + j) for j in range(round_ % 4 + 1)]
        log.append(batch)
        expected += [i + j for j in range(len(batch))]
        i += len(batch)
        while len(seen) < len(expected):
            got = reader.read(len(seen), 2)
            assert got, "a record appended before the read is missing"
            seen += [r.value["i"] for r in got]
    assert seen == expected
    assert reader.read(len(seen), 10) == []
    assert [r.value["i"] for r in reader.read(1, 3)] == expected[1:4]  # back to bytes before those held
    reader.close()


def test_reads_smaller_than_a_batch_return_every_record_once_whatever_comes_between_them(make_topic):
    # A read that parses a whole batch keeps the rest for the next read: seeks, raw reads and
    # reads of other sizes in between must still get exactly the records asked for.
    t = make_topic()
    log = t.log(0)
    for b in range(3):
        log.append([rec({"i": b * 100 + j}, i=b * 100 + j) for j in range(100)])
    reader = t.reader(0)
    assert [r.value["i"] for r in reader.read(0, 40)] == list(range(40))
    assert reader.read(40, 0) == []
    assert [r.value["i"] for r in reader.read(40, 40)] == list(range(40, 80))
    raw = reader.read(80, 3, raw=True)
    assert [(r.offset, r.value) for r in raw] == [(i, b'{"i":%d}' % i) for i in (80, 81, 82)]
    assert [r.value["i"] for r in reader.read(10, 5)] == list(range(10, 15))  # back, before the rest
    assert [r.value["i"] for r in reader.read(83, 50)] == list(range(83, 133))
    assert [r.value["i"] for r in reader.read(133, 1000)] == list(range(133, 300))
    reader.close()


def test_segments_roll_by_segment_bytes_and_are_named_by_base_offset(make_topic):
    t = make_topic(segment_bytes=500)
    log = t.log(0)
    for i in range(40):
        log.append([rec("v" * 50, i=i)])
    d = t.partition_path(0)
    bases = list_segments(d)
    assert len(bases) > 5 and bases[0] == 0
    for base, nxt in zip(bases, bases[1:]):
        path = os.path.join(d, log_name(base))
        assert os.path.getsize(path) <= 500
        spans = corrupt.batch_spans(path)
        assert spans[0][2] == base and spans[-1][2] + spans[-1][3] == nxt


def test_a_single_batch_larger_than_segment_bytes_gets_a_segment_of_its_own(make_topic):
    t = make_topic(segment_bytes=100)
    log = t.log(0)
    for i in range(3):
        log.append([rec("v" * 300, i=i)])
    assert list_segments(t.partition_path(0)) == [0, 1, 2]


def test_segments_roll_when_records_are_segment_ms_newer_than_the_first(make_topic):
    t = make_topic(segment_ms=1000)
    log = t.log(0)
    for ts in (T0, T0 + 500, T0 + 1000, T0 + 1001, T0 + 1500, T0 + 2002, T0 - DAY):
        log.append([rec(ts, ts=ts)])
    assert list_segments(t.partition_path(0)) == [0, 3, 5]


def test_a_record_over_max_message_bytes_is_refused_and_nothing_is_written(make_topic):
    t = make_topic(max_message_bytes=1000)
    log = t.log(0)
    log.append([rec("small")])
    before = corrupt.snapshot(t.partition_path(0))
    with pytest.raises(RecordTooLargeError):
        log.append([rec("a"), rec("b" * 1000), rec("c")])
    assert corrupt.snapshot(t.partition_path(0)) == before
    assert log.append([rec("ok")])[0].base_offset == 1


def test_records_are_split_into_batches_within_max_message_bytes(make_topic):
    t = make_topic(max_message_bytes=1000)
    results = t.log(0).append([rec("v" * 300, i=i) for i in range(10)])
    assert len(results) > 1 and sum(r.count for r in results) == 10
    for start, end, _offset, _count in corrupt.batch_spans(corrupt.segment_path(t.partition_path(0))):
        assert end - start <= 1100


@pytest.mark.parametrize("name", ["a", "x" * 249, "a.b_c-D9", "...", "-", "UPPER", "0"])
def test_topic_names_of_kafkas_alphabet_up_to_249_characters_are_accepted(name):
    assert validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 250, "a/b", "../x", "/abs", "a b", "a\\b", "a\0b",
                                  "tópico", "a\n", "a:b", "__internal"])
def test_topic_names_outside_the_rule_are_refused(data_dir, name):
    with pytest.raises(InvalidNameError):
        Topic.create(data_dir, name)
    assert os.listdir(data_dir) == []


def test_a_symlinked_topic_directory_is_refused(data_dir, tmp_path):
    outside = tmp_path / "outside"
    Topic.create(str(tmp_path), "outside").close()
    os.symlink(outside, os.path.join(data_dir, "evil"))
    with pytest.raises(UnsafePathError):
        Topic(data_dir, "evil")
    with pytest.raises(UnsafePathError):
        Topic.create(data_dir, "evil")


def test_a_symlinked_partition_directory_is_refused(make_topic, tmp_path):
    t = make_topic()
    d = t.partition_path(0)
    elsewhere = tmp_path / "elsewhere"
    os.rename(d, elsewhere)
    os.symlink(elsewhere, d)
    t = reopen(t)
    with pytest.raises(UnsafePathError):
        t.log(0)
    with pytest.raises(UnsafePathError):
        t.reader(0)
    with pytest.raises(UnsafePathError):
        PartitionLog("t", 0, d, t.config)
    assert os.listdir(elsewhere) == []
    t.close()


def test_retention_deletes_expired_closed_segments_and_moves_the_log_start(make_topic):
    t = make_topic(segment_bytes=300, retention_ms=DAY)
    log = t.log(0)
    for i in range(20):
        log.append([rec("v" * 100, ts=T0 + i * DAY // 4)])
    bases = list_segments(t.partition_path(0))
    now = T0 + 20 * DAY // 4
    report = log.apply_retention(now=now)
    assert report.deleted and report.reason == "retention.ms"
    kept = list_segments(t.partition_path(0))
    assert kept == bases[len(report.deleted):]
    assert report.log_start_offset == kept[0]
    reader = t.reader(0)
    assert reader.log_start_offset() == kept[0]
    with pytest.raises(OffsetOutOfRangeError) as info:
        reader.read(0)
    assert info.value.log_start_offset == kept[0]
    assert [r.offset for r in read_all(t)] == list(range(kept[0], 20))
    # idempotent at the same now; the clock going back deletes nothing more
    assert not log.apply_retention(now=now).deleted
    assert not log.apply_retention(now=T0).deleted
    assert tmp_files(t.data_dir) == []
    reader.close()


def test_retention_never_deletes_the_active_segment(make_topic, segment_bytes):
    t = make_topic(segment_bytes=segment_bytes, retention_ms=0, retention_bytes=0)
    log = t.log(0)
    for i in range(10):
        log.append([rec(i, i=i)])
    log.apply_retention(now=T0 + 10 * DAY)
    bases = list_segments(t.partition_path(0))
    assert len(bases) == 1
    assert [r.value for r in read_all(t)] == list(range(bases[0], 10))
    assert log.append([rec("more")])[0].base_offset == 10


def test_retention_by_bytes_keeps_the_newest_segments_under_the_limit(make_topic):
    t = make_topic(segment_bytes=300, retention_bytes=1000, retention_ms=-1)
    log = t.log(0)
    for i in range(30):
        log.append([rec("v" * 100, i=i)])
    log.apply_retention(now=T0)
    d = t.partition_path(0)
    sizes = [os.path.getsize(os.path.join(d, log_name(b))) for b in list_segments(d)]
    assert sum(sizes) <= 1000 + sizes[0] and sum(sizes[1:]) <= 1000
    assert sum(sizes) > 1000 - sizes[0]


def test_records_under_the_interval_policy_are_invisible_until_flushed(make_topic):
    t = make_topic(fsync="interval", flush_ms=60_000)
    log = t.log(0)
    log.append([rec(1)], FsyncPolicy("always"))
    log.append([rec(2)], FsyncPolicy("interval", 60_000))
    reader = t.reader(0)
    assert reader.high_watermark() == 1 and [r.value for r in reader.read(0)] == [1]
    log.flush()
    assert reader.high_watermark() == 2 and [r.value for r in reader.read(0)] == [1, 2]
    reader.close()


def test_two_log_handles_in_one_process_append_after_each_other(make_topic, segment_bytes):
    t = make_topic(segment_bytes=segment_bytes)
    other = Topic(t.data_dir, "t")
    a, b = t.log(0), other.log(0)
    for i in range(20):
        (a if i % 3 else b).append([rec(i, i=i)])
    assert [r.value for r in read_all(t)] == list(range(20))
    other.close()
