"""The sparse offset and time indexes (FORMAT.md, "Indexes"): entries, lookups, sanity, rebuilds."""

from __future__ import annotations

import os
import random

import pytest

from logbroker.tools.inspect import inspect_path
from logbroker.storage.index import INDEX_ENTRY, TIME_ENTRY, IndexEntries, load_index, search_offset, search_timestamp
from logbroker.storage.segment import index_name, list_segments, log_name, timeindex_name

import corrupt
from conftest import T0, read_all, rec, reopen


def entries_of(*triples, base=100):
    e = IndexEntries(base)
    for offset, position, ts in triples:
        e.add(offset, position, ts)
    return e


def open_index(tmp_path, entries):
    """The two index files of ``entries``, opened for reading: (index fd, timeindex fd)."""
    idx, tidx = entries.encode()
    (tmp_path / "i").write_bytes(idx)
    (tmp_path / "t").write_bytes(tidx)
    return os.open(tmp_path / "i", os.O_RDONLY), os.open(tmp_path / "t", os.O_RDONLY)


def test_search_offset_finds_the_last_entry_at_or_before_it(tmp_path):
    index_fd, timeindex_fd = open_index(tmp_path, entries_of((110, 500, 5), (120, 900, 7)))
    try:
        found = [search_offset(index_fd, 100, o, 10**6) for o in (100, 109, 110, 119, 120, 10**6)]
        assert found == [0, 0, 500, 500, 900, 900]
        assert search_offset(index_fd, 100, 125, 900) == 500  # an entry at or past the limit is not readable yet
    finally:
        os.close(index_fd)
        os.close(timeindex_fd)


def test_search_timestamp_finds_the_last_entry_whose_max_before_is_smaller(tmp_path):
    index_fd, timeindex_fd = open_index(tmp_path, entries_of((110, 500, 5), (120, 900, 7), (130, 1300, 7)))
    try:
        found = [search_timestamp(index_fd, timeindex_fd, t, 10**6) for t in (0, 5, 6, 7, 8)]
        assert found == [0, 0, 500, 500, 1300]
        assert search_timestamp(index_fd, timeindex_fd, 8, 1300) == 0  # past the limit: scan from the start
    finally:
        os.close(index_fd)
        os.close(timeindex_fd)


def test_entries_encode_big_endian_fixed_width_and_load_back(tmp_path):
    e = entries_of((110, 500, 5), (120, 900, -1 + 8))
    e.closing = (9, 125)
    idx, tidx = e.encode()
    assert idx == INDEX_ENTRY.pack(10, 500) + INDEX_ENTRY.pack(20, 900)
    assert idx[:8] == b"\0\0\0\x0a\0\0\x01\xf4"
    assert tidx == TIME_ENTRY.pack(5, 10) + TIME_ENTRY.pack(7, 20) + TIME_ENTRY.pack(9, 25)
    (tmp_path / "i").write_bytes(idx)
    (tmp_path / "t").write_bytes(tidx)
    loaded = load_index(str(tmp_path / "i"), str(tmp_path / "t"), 100, 1000)
    assert loaded == e


@pytest.mark.parametrize("damage", [
    "index length not a multiple of 8", "timeindex length not a multiple of 12", "offsets not increasing",
    "positions not increasing", "position past the log", "timestamps decreasing", "entry counts differ",
    "index and timeindex disagree", "closing entry before the last entry", "missing timeindex",
])
def test_insane_indexes_are_rejected(tmp_path, damage):
    good = [(10, 500, 5), (20, 900, 7)]
    rows = list(good)
    idx_extra, tidx_extra, closing = b"", b"", TIME_ENTRY.pack(9, 25)
    if damage == "offsets not increasing":
        rows[1] = (10, 900, 7)
    elif damage == "positions not increasing":
        rows[1] = (20, 400, 7)
    elif damage == "position past the log":
        rows[1] = (20, 1000, 7)
    elif damage == "timestamps decreasing":
        rows[1] = (20, 900, 4)
    elif damage == "index length not a multiple of 8":
        idx_extra = b"\0"
    elif damage == "timeindex length not a multiple of 12":
        tidx_extra = b"\0" * 5
    elif damage == "entry counts differ":
        closing += TIME_ENTRY.pack(9, 26)
    elif damage == "closing entry before the last entry":
        closing = TIME_ENTRY.pack(9, 15)
    idx = b"".join(INDEX_ENTRY.pack(o, p) for o, p, _ in rows) + idx_extra
    tidx = b"".join(TIME_ENTRY.pack(t, o) for o, _, t in rows) + closing + tidx_extra
    if damage == "index and timeindex disagree":
        tidx = TIME_ENTRY.pack(5, 11) + tidx[12:]
    (tmp_path / "i").write_bytes(idx)
    if damage != "missing timeindex":
        (tmp_path / "t").write_bytes(tidx)
    assert load_index(str(tmp_path / "i"), str(tmp_path / "t"), 100, 1000) is None
    # the same files without the damage load fine
    (tmp_path / "i").write_bytes(b"".join(INDEX_ENTRY.pack(o, p) for o, p, _ in good))
    (tmp_path / "t").write_bytes(b"".join(TIME_ENTRY.pack(t, o) for o, _, t in good) + TIME_ENTRY.pack(9, 25))
    assert load_index(str(tmp_path / "i"), str(tmp_path / "t"), 100, 1000) is not None


def build(make_topic, segment_bytes, n=120, interval=100, seed=1):
    """A partition of n records in batches of 1-4 with shuffled timestamps; returns (topic, records)."""
    rng = random.Random(seed)
    t = make_topic(segment_bytes=segment_bytes, index_interval_bytes=interval)
    log = t.log(0)
    written = []
    while len(written) < n:
        batch = [rec({"i": len(written) + j, "pad": "p" * rng.randrange(40)}, key=f"k{rng.randrange(5)}",
                     ts=T0 + rng.randrange(0, 10_000)) for j in range(rng.randint(1, 4))]
        log.append(batch)
        written.extend((r.timestamp, r.value_json) for r in batch)
    return t, written


def test_index_entries_point_at_batch_starts_and_are_sparse(make_topic):
    t, _ = build(make_topic, 16 * 1024 * 1024, n=300, interval=200)
    d = t.partition_path(0)
    [base] = list_segments(d)
    spans = {start: offset for start, _end, offset, _count in corrupt.batch_spans(os.path.join(d, log_name(base)))}
    e = load_index(os.path.join(d, index_name(base)), os.path.join(d, timeindex_name(base)), base,
                   os.path.getsize(os.path.join(d, log_name(base))))
    assert len(e.offsets) > 5
    assert 0 not in e.positions  # the first batch of a segment gets no entry
    for offset, position in zip(e.offsets, e.positions):
        assert spans[position] == offset
    gaps = [b - a for a, b in zip([0] + e.positions, e.positions)]
    assert all(g > 200 for g in gaps)


def test_a_closed_segment_has_one_more_time_entry_holding_its_newest_timestamp(make_topic):
    t, written = build(make_topic, 2000, n=200, interval=100)
    d = t.partition_path(0)
    bases = list_segments(d)
    assert len(bases) > 3
    records = read_all(t)
    for base, nxt in zip(bases, bases[1:]):
        size = os.path.getsize(os.path.join(d, log_name(base)))
        e = load_index(os.path.join(d, index_name(base)), os.path.join(d, timeindex_name(base)), base, size)
        assert e.closing == (max(r.timestamp for r in records if base <= r.offset < nxt), nxt)


def test_reading_from_every_offset_finds_exactly_that_record(make_topic, segment_bytes):
    t, written = build(make_topic, segment_bytes, n=150, interval=64)
    reader = t.reader(0)
    for offset in random.Random(2).sample(range(150), 150):
        got = reader.read(offset, 3)
        assert [r.offset for r in got] == list(range(offset, min(offset + 3, len(written))))
        assert got[0].value["i"] == offset
    reader.close()


def test_offset_for_timestamp_is_the_first_offset_at_or_after_it(make_topic, segment_bytes):
    t, written = build(make_topic, segment_bytes, n=150, interval=64)
    reader = t.reader(0)
    stamps = [ts for ts, _ in written]
    for target in sorted(set(stamps))[::3] + [T0 - 1, T0 + 10_001, max(stamps), min(stamps)]:
        expected = next((i for i, ts in enumerate(stamps) if ts >= target), None)
        assert reader.offset_for_timestamp(target) == expected, target
    reader.close()


def test_insane_index_is_ignored_by_readers_and_rebuilt_by_recover(make_topic):
    t, written = build(make_topic, 2000, n=200, interval=100)
    d = t.partition_path(0)
    bases = list_segments(d)
    originals = {}
    for base in bases:
        for name in (index_name(base), timeindex_name(base)):
            with open(os.path.join(d, name), "rb") as f:
                originals[name] = f.read()
    closed, active = bases[1], bases[-1]
    corrupt.append_bytes(os.path.join(d, index_name(closed)), b"\x01\x02\x03")  # not a multiple of 8
    corrupt.truncate(os.path.join(d, timeindex_name(bases[0])), 0)
    corrupt.overwrite(os.path.join(d, index_name(active)), 0, b"\xff" * 8)  # offset out of order
    t = reopen(t)
    assert [r.value["i"] for r in read_all(t)] == list(range(len(written)))
    report = t.log(0).recover()
    assert any(log_name(closed) in a for a in report.actions)
    for name, data in originals.items():
        with open(os.path.join(d, name), "rb") as f:
            assert f.read() == data, name
    t.close()


def test_an_index_entry_that_passes_sanity_but_points_at_a_later_batch_is_not_trusted(tmp_path):
    import struct

    from logbroker import Broker, Producer

    broker = Broker(tmp_path)
    broker.create_topic("t", 1, {"index.interval.bytes": 100})
    with Producer(tmp_path, batch_size=0) as producer:
        for i in range(40):
            producer.send("t", {"i": i, "pad": "x" * 40})
    part = tmp_path / "t" / "t-0"
    index = part / "00000000000000000000.index"
    entries = list(struct.iter_unpack(">II", index.read_bytes()))
    assert len(entries) >= 3
    # Shift every entry's position to the next entry's batch: offsets stay increasing and in range.
    lying = [(rel, entries[min(i + 1, len(entries) - 1)][1]) for i, (rel, _) in enumerate(entries[:-1])]
    index.write_bytes(b"".join(struct.pack(">II", rel, pos) for rel, pos in lying))
    timeindex = part / "00000000000000000000.timeindex"
    timeindex.write_bytes(timeindex.read_bytes()[: 12 * len(lying)])
    reader = broker.topic("t").reader(0)
    target = lying[1][0]
    records = reader.read(target, 3)
    assert [r.offset for r in records] == [target, target + 1, target + 2]
    assert [r.value["i"] for r in records] == [target, target + 1, target + 2]


def test_inspect_names_the_torn_tail_of_an_index_file_and_lists_its_whole_entries(make_topic):
    t = make_topic(segment_bytes=2_000)
    for i in range(60):
        t.log(0).append([rec({"i": i, "pad": "x" * 40})])
    d = t.log(0).directory
    closed = list_segments(d)[0]
    path = os.path.join(d, index_name(closed))
    with open(path, "rb") as f:
        whole = len(f.read()) // 8
    corrupt.append_bytes(path, b"\x01\x02\x03")
    report = inspect_path(path)
    assert not report["ok"] and len(report["entries"]) == whole
    assert report["problems"] == [f"{path}: size {whole * 8 + 3} ends in 3 bytes that are not a whole entry"]
    t.close()
