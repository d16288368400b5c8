"""The partition log's public hooks for the layers beside it (the cleaner, the topic's descriptor
budget): holding the partition lock, deleting a segment, and fencing."""

from __future__ import annotations

import os

import pytest

from logbroker.errors import FencedError, LockTimeoutError
from logbroker.storage.handles import OPEN_FILES
from logbroker.storage.segment import index_name, list_segments, log_name, timeindex_name
from logbroker.storage.topic import Topic

from conftest import read_all, rec


def test_locked_holds_the_partition_lock_so_another_handle_waits_then_times_out(make_topic, data_dir):
    t = make_topic()
    other = Topic(data_dir, "t", max_block_ms=100)
    try:
        with t.log(0).locked():
            with pytest.raises(LockTimeoutError):
                other.log(0).append([rec("blocked")])
        other.log(0).append([rec("after")])  # released at the end of the block
    finally:
        other.close()
    assert [r.value for r in read_all(t)] == ["after"]


def test_an_error_inside_locked_releases_the_lock(make_topic, data_dir):
    t = make_topic()
    with pytest.raises(RuntimeError):
        with t.log(0).locked():
            raise RuntimeError("boom")
    other = Topic(data_dir, "t", max_block_ms=100)
    try:
        assert other.log(0).append([rec("x")])[0].base_offset == 0
    finally:
        other.close()


def test_delete_segment_removes_its_three_files_and_nothing_else(make_topic):
    t = make_topic(segment_bytes=300)
    log = t.log(0)
    for i in range(12):
        log.append([rec({"i": i, "pad": "x" * 100}, i=i)])
    bases = list_segments(log.directory)
    assert len(bases) >= 3
    doomed = bases[1]
    before = set(os.listdir(log.directory))
    with log.locked():
        log.delete_segment(doomed)
    gone = {log_name(doomed), index_name(doomed), timeindex_name(doomed)}
    assert gone <= before
    assert set(os.listdir(log.directory)) == before - gone
    with log.locked():
        log.delete_segment(doomed)  # already gone: nothing to do, no error


def test_a_fenced_log_refuses_appends_and_flushes_with_the_reason(make_topic):
    t = make_topic()
    log = t.log(0)
    assert log.fenced is None
    log.fence("disk said no")
    assert log.fenced == "disk said no"
    with pytest.raises(FencedError, match="disk said no"):
        log.append([rec("x")])
    with pytest.raises(FencedError, match="disk said no"):
        log.flush()
    assert read_all(t) == []


def test_a_fenced_log_closed_for_want_of_descriptors_is_still_fenced_when_opened_again(make_topic, monkeypatch):
    t = make_topic()
    other = make_topic("u")
    log = t.log(0)
    log.fence("disk said no")
    monkeypatch.setattr(OPEN_FILES, "budget", 1)
    other.log(0)  # over the budget: the least recently used log (t-0's) is closed
    again = t.log(0)
    assert again is not log
    assert again.fenced == "disk said no"
    with pytest.raises(FencedError):
        again.append([rec("x")])
