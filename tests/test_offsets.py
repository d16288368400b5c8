"""Committed offsets: atomic replace, damage detection, fallback to the previous generation, monotonic."""

from __future__ import annotations

import os

import pytest

from corrupt import flip_bit, truncate
from logbroker.storage import fsutil
from logbroker.errors import CorruptionError
from logbroker.groups.offsets import CommittedOffset, GroupPaths, OffsetStore, decode_line, encode_line


@pytest.fixture
def store(tmp_path):
    topic_dir = tmp_path / "orders"
    topic_dir.mkdir()
    paths = GroupPaths(str(topic_dir), "billing")
    paths.ensure()
    return OffsetStore(paths, "orders")


def commit(store, partition, offset, **kw):
    with store.paths.locked():
        return store.commit({partition: CommittedOffset(offset, 1, "m1", 0)}, **kw)


def test_a_group_that_never_committed_has_no_committed_offsets(store):
    assert store.read() == {}
    assert store.committed(0) is None


def test_a_commit_is_read_back_by_a_fresh_store(store):
    commit(store, 0, 42)
    commit(store, 3, 7)
    fresh = OffsetStore(GroupPaths(store.paths.topic_dir, "billing"), "orders")
    assert fresh.committed(0) == 42 and fresh.committed(3) == 7 and fresh.committed(1) is None
    assert fresh.read()[0] == CommittedOffset(42, 1, "m1", 0)


def test_the_file_is_one_checksummed_json_line_readable_with_jq(store):
    commit(store, 0, 5)
    data = open(store.paths.offsets, "rb").read()
    assert data.endswith(b"\n") and data.count(b"\n") == 1 and data.startswith(b'{"crc":"')
    body = decode_line(data)
    assert body["format"] == 1 and body["offsets"]["0"]["offset"] == 5


def test_commits_never_go_backwards_unless_a_reset_says_so(store, caplog):
    commit(store, 0, 10)
    commit(store, 0, 4)
    assert store.committed(0) == 10
    assert "never go backwards" in caplog.text
    commit(store, 0, 4, allow_backwards=True)
    assert store.committed(0) == 4


def test_the_previous_generation_is_kept_as_offsets_prev(store):
    commit(store, 0, 1)
    commit(store, 0, 2)
    assert decode_line(open(store.paths.prev, "rb").read())["offsets"]["0"]["offset"] == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "zeros", "garbage"])
def test_a_damaged_offsets_file_falls_back_to_the_previous_generation(store, damage, caplog):
    commit(store, 0, 1)
    commit(store, 0, 2)
    path = store.paths.offsets
    size = os.path.getsize(path)
    if damage == "flip":
        flip_bit(path, 8 * (size // 2))
    elif damage == "truncate":
        truncate(path, size - 5)
    elif damage == "empty":
        truncate(path, 0)
    elif damage == "zeros":
        open(path, "wb").write(b"\0" * size)
    else:
        open(path, "wb").write(b"not json at all\n")
    assert store.committed(0) == 1
    assert "previous generation" in caplog.text


def test_every_truncation_of_the_offsets_file_is_detected(store):
    commit(store, 0, 1)
    commit(store, 0, 123456)
    good = open(store.paths.offsets, "rb").read()
    for n in range(len(good) - 1):  # dropping only the final LF leaves a valid line
        open(store.paths.offsets, "wb").write(good[:n])
        assert store.committed(0) == 1, n


def test_damage_to_both_generations_raises_corruption_not_no_commit(store):
    commit(store, 0, 1)
    commit(store, 0, 2)
    flip_bit(store.paths.offsets, 100)
    flip_bit(store.paths.prev, 100)
    with pytest.raises(CorruptionError, match="previous generation too"):
        store.read()
    with pytest.raises(CorruptionError):
        commit(store, 0, 3)


def test_a_damaged_first_generation_without_prev_raises_corruption(store):
    commit(store, 0, 1)
    truncate(store.paths.offsets, 10)
    with pytest.raises(CorruptionError, match="no previous generation"):
        store.read()


def test_a_commit_after_damage_keeps_the_good_prev_and_writes_a_good_current(store):
    commit(store, 0, 1)
    commit(store, 0, 2)
    good_prev = open(store.paths.prev, "rb").read()
    flip_bit(store.paths.offsets, 120)
    commit(store, 0, 3)
    assert open(store.paths.prev, "rb").read() == good_prev
    assert store.committed(0) == 3


def test_a_file_of_another_group_is_refused(store, tmp_path):
    commit(store, 0, 9)
    other = GroupPaths(store.paths.topic_dir, "other")
    other.ensure()
    os.link(store.paths.offsets, other.offsets)
    with pytest.raises(CorruptionError, match="belongs to group 'billing'"):
        OffsetStore(other, "orders").read()


def test_leftover_temp_files_are_ignored_and_removed_by_the_next_commit(store):
    commit(store, 0, 1)
    junk = store.paths.offsets + ".deadbeef" + fsutil.TMP_SUFFIX
    open(junk, "wb").write(b"half a commit")
    assert store.committed(0) == 1
    commit(store, 0, 2)
    assert not os.path.exists(junk)


def test_an_unchanged_commit_does_not_rewrite_the_file(store):
    commit(store, 0, 5)
    before = os.stat(store.paths.offsets).st_ino
    commit(store, 0, 5)
    assert os.stat(store.paths.offsets).st_ino == before


def test_encode_line_round_trips_and_detects_any_single_bit_flip():
    line = encode_line({"format": 1, "offsets": {"0": {"offset": 3}}})
    assert decode_line(line) == {"format": 1, "offsets": {"0": {"offset": 3}}}
    for bit in range(8, 8 * (len(line) - 1)):
        damaged = bytearray(line)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert decode_line(bytes(damaged)) is None, bit


def test_commit_metadata_is_stored_read_back_and_a_change_of_it_alone_is_written(store):
    with store.paths.locked():
        store.commit({0: CommittedOffset(5, 1, "m1", 0, "checkpoint-a")})
    assert OffsetStore(store.paths, "orders").read()[0].metadata == "checkpoint-a"
    with store.paths.locked():
        store.commit({0: CommittedOffset(5, 1, "m1", 0, "checkpoint-b")})
    assert OffsetStore(store.paths, "orders").read()[0].metadata == "checkpoint-b"


def test_an_offsets_file_without_metadata_reads_as_empty_metadata_and_gets_no_field(store):
    # The bytes a commit wrote before metadata was stored: format 1, no "metadata" field.
    body = {"format": 1, "topic": "orders", "group": "billing", "seq": 1,
            "offsets": {"0": {"offset": 9, "generation": 2, "member": "m1", "timestamp": 7}}}
    fsutil.atomic_write(store.paths.offsets, encode_line(body))
    assert store.read()[0] == CommittedOffset(9, 2, "m1", 7, "")
    commit(store, 0, 10)
    assert "metadata" not in decode_line(open(store.paths.offsets, "rb").read())["offsets"]["0"]
