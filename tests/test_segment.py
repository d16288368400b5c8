"""Streaming batches out of a segment file (segment.iter_batches) whatever the read chunk size."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from logbroker.storage.record import BadBatch, PendingRecord
from corrupt import batch_bytes
from logbroker.storage.segment import iter_batches

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
