"""One segment: streaming batches out of its ``.log`` (segment.iter_batches) whatever the read chunk
size, and the Segment class's contract (open for append or read, append, scan, look up, delete)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.storage.record import BadBatch, PendingRecord, encode_records
from corrupt import batch_bytes
from logbroker.storage.segment import (Segment, SegmentBatch, delete_segment, index_name, iter_batches, log_name,
                                       timeindex_name)

from conftest import T0


def write_batches(path, sizes):
    """A segment of batches of the given sizes with values of varied lengths; their byte spans."""
    spans, pos, offset = [], 0, 0
    with open(path, "wb") as f:
        for n in sizes:
            recs = [PendingRecord(T0, None, None, {"i": offset + i, "pad": "x" * ((offset + i) * 37 % 300)})
                    for i in range(n)]
            data, _ = batch_bytes(offset, recs)
            f.write(data)
            spans.append((pos, pos + len(data), offset))
            pos += len(data)
            offset += n
    return spans


def batches(fd, pos, limit, chunk, held=None):
    return [(fpos + start, fpos + end, first["offset"], buf[start:end])
            for buf, start, first, _rest, end, fpos in iter_batches(fd, pos, limit, chunk, held)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8), st.integers(1, 5000))
def test_batches_are_the_same_whatever_the_chunk_size_even_smaller_than_one_line(tmp_path_factory, sizes, chunk):
    path = tmp_path_factory.mktemp("seg") / "00000000000000000000.log"
    spans = write_batches(path, sizes)
    data = path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        got = batches(fd, 0, len(data), chunk)
        assert [(a, b, o) for a, b, o, _ in got] == spans
        assert all(raw == data[a:b] for a, b, _, raw in got)
        # Starting mid-file, with the bytes of an earlier read held: the same batches from there.
        for k, (start, _, _) in enumerate(spans):
            held = (0, data[:start + chunk])
            assert [(a, b, o) for a, b, o, _ in batches(fd, start, len(data), chunk, held)] == spans[k:]
    finally:
        os.close(fd)


def test_a_file_that_ends_mid_batch_is_reported_at_the_batch_start_whatever_the_chunk(tmp_path):
    path = tmp_path / "00000000000000000000.log"
    spans = write_batches(path, [3, 5])
    cut = spans[1][0] + (spans[1][1] - spans[1][0]) // 2
    os.truncate(path, cut)
    fd = os.open(path, os.O_RDONLY)
    try:
        for chunk in (1, 7, 100, 1 << 20):
            try:
                batches(fd, 0, cut, chunk)
            except BadBatch as exc:
                assert exc.position == spans[1][0]
                assert "ends before the batch does" in exc.reason or exc.status == "incomplete"
            else:
                raise AssertionError("a batch cut short was returned")
    finally:
        os.close(fd)


# -- the Segment class ---------------------------------------------------------------------------

def encoded(base, n, ts=T0):
    """One encoded batch of ``n`` records at ``base``, timestamps ``ts`` .. ``ts + n - 1``."""
    [batch] = encode_records(base, [PendingRecord(ts + i, None, None, {"i": base + i}) for i in range(n)])
    return batch


def test_a_segment_opened_for_append_creates_its_three_files_once(tmp_path):
    seg = Segment.open_append(str(tmp_path), 40)
    try:
        assert seg.created and seg.size() == 0
        assert sorted(os.listdir(tmp_path)) == [index_name(40), log_name(40), timeindex_name(40)]
    finally:
        seg.close()
    again = Segment.open_append(str(tmp_path), 40)
    try:
        assert not again.created
    finally:
        again.close()


def test_batches_appended_to_a_segment_scan_back_with_their_offsets_and_index(tmp_path):
    seg = Segment.open_append(str(tmp_path), 100)
    position, offset = 0, 100
    try:
        for n in (3, 1, 4):
            batch = encoded(offset, n, ts=T0 + offset)
            if position:
                seg.add_index_entry(offset, position, T0)  # every batch but the first, as scan(interval 0)
            seg.append(batch.parts)
            position += batch.nbytes
            offset += batch.count
        assert seg.size() == position
        result = seg.scan(seg.size(), 0)  # index every batch, as a writer with interval 0 would
    finally:
        seg.close()
    assert (result.error, result.valid_end, result.next_offset, result.records) == (None, position, 108, 8)
    assert result.max_timestamp == T0 + 107 and result.first_timestamp == T0 + 100
    reader = Segment.open_read(str(tmp_path), 100)
    try:
        assert reader.scan(reader.size(), 0).entries.offsets == result.entries.offsets == [103, 104]
        at = result.entries.positions[1]
        assert reader.position_for_offset(106, reader.size()) == at  # from the entries appended
        assert reader.position_for_offset(102, reader.size()) == 0
        assert [b.first["offset"] for b in iter_batches(reader.fd, at, reader.size())] == [104]
    finally:
        reader.close()


def test_a_read_segment_without_its_indexes_starts_every_lookup_at_zero(tmp_path):
    seg = Segment.open_append(str(tmp_path), 0)
    batch = encoded(0, 5)
    seg.append(batch.parts)
    seg.close()
    os.unlink(tmp_path / index_name(0))
    reader = Segment.open_read(str(tmp_path), 0)
    try:
        assert reader.position_for_offset(3, reader.size()) == 0
        assert reader.position_for_timestamp(T0 + 3, reader.size()) == 0
        assert not reader.trust_index
    finally:
        reader.close()


def test_a_closed_segments_newest_timestamp_comes_from_its_closing_entry_or_else_a_scan(tmp_path):
    seg = Segment.open_append(str(tmp_path), 0)
    seg.append(encoded(0, 4, ts=T0 + 50).parts)
    seg.close_timeindex(T0 + 999, 4)  # what a roll writes; deliberately not the true newest, to see it used
    seg.close()
    reader = Segment.open_read(str(tmp_path), 0)
    try:
        assert reader.max_timestamp() == T0 + 999
        os.truncate(tmp_path / timeindex_name(0), 0)
        assert reader.max_timestamp() == T0 + 53  # scanned
    finally:
        reader.close()


def test_a_segment_replaced_by_name_or_deleted_says_so_and_delete_removes_all_three_files(tmp_path):
    seg = Segment.open_append(str(tmp_path), 0)
    seg.append(encoded(0, 2).parts)
    seg.close()
    reader = Segment.open_read(str(tmp_path), 0)
    try:
        assert not reader.replaced()
        (tmp_path / "new").write_bytes(b"")
        os.replace(tmp_path / "new", tmp_path / log_name(0))
        assert reader.replaced()
    finally:
        reader.close()
    Segment.open_read(str(tmp_path), 0).delete()
    assert os.listdir(tmp_path) == []
    delete_segment(str(tmp_path), 0)  # nothing left: no error


def test_a_closed_segment_can_be_closed_again_without_touching_other_descriptors(tmp_path):
    seg = Segment.open_append(str(tmp_path), 0)
    seg.close()
    fd = os.open(tmp_path / log_name(0), os.O_RDONLY)  # likely reuses a number the segment held
    try:
        seg.close()
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


def test_iter_batches_yields_named_batches_with_their_record_count(tmp_path):
    path = tmp_path / log_name(0)
    write_batches(path, [1, 4])
    fd = os.open(path, os.O_RDONLY)
    try:
        got = list(iter_batches(fd, 0, os.fstat(fd).st_size))
    finally:
        os.close(fd)
    assert all(isinstance(b, SegmentBatch) for b in got)
    assert [(b.first["offset"], b.count) for b in got] == [(0, 1), (1, 4)]
    assert got[1].file_pos + got[1].start == got[0].file_pos + got[0].end
