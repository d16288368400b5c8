"""Segment files: naming, streaming verified batches out of a ``.log``, and recovery scans.

A segment is the trio ``{base:020d}.log`` / ``.index`` / ``.timeindex``. Its invariants: every
record offset o satisfies base <= o < next segment's base; offsets are contiguous; every batch is
whole and passes its checksums. Only the writer holding the partition lock appends to the active
segment; closed segments are immutable until retention unlinks them. Readers need no lock: they
read closed segments to their end and the active one up to the high watermark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

from .index import IndexEntries
from .record import BadBatch, BatchStatus, decode_batch

__all__ = [
    "log_name", "index_name", "timeindex_name", "list_segments", "iter_batches", "scan_segment",
    "ScanResult", "CHUNK", "valid_batch_after",
]

CHUNK = 1 << 20


def log_name(base: int) -> str:
    return f"{base:020d}.log"


def index_name(base: int) -> str:
    return f"{base:020d}.index"


def timeindex_name(base: int) -> str:
    return f"{base:020d}.timeindex"


def list_segments(partition_dir: str) -> list[int]:
    """Base offsets of the segments in a partition directory, ascending."""
    bases = [int(name[:20]) for name in os.listdir(partition_dir)
             if len(name) == 24 and name.endswith(".log") and name[:20].isdigit()]
    bases.sort()
    return bases


def iter_batches(fd: int, pos: int, limit: int, chunk: int = CHUNK,
                 held: tuple[int, bytes] | None = None) -> Iterator[tuple[bytes, int, dict, int, int, int]]:
    """Yield every verified batch of the file between ``pos`` and ``limit``.

    Each item is ``(buf, start, first, rest_start, end, file_pos)``: the batch occupies
    ``buf[start:end]`` and ``buf[0]`` sits at file position ``file_pos``. Memory stays within a
    chunk plus one batch. On bytes that are not a whole valid batch, raises :class:`BadBatch` with
    ``position`` set to the file position of the batch start.

    ``held`` is ``(file_pos, buf)``, bytes of this file read before (a reader continuing where its
    last call stopped): used when they hold ``pos``, so a chunk is read from the file only once.
    Bytes a segment holds below ``limit`` never change, so they are as good as a fresh read.
    """
    if held is not None and held[0] <= pos < held[0] + len(held[1]) <= limit:
        base, buf = held
        off = pos - base
    else:
        buf = b""
        off = 0
        base = pos
    while base + off < limit:
        try:
            first, rest, end = decode_batch(buf, off, len(buf))
        except BadBatch as exc:
            have = base + len(buf)
            if exc.status == BatchStatus.INCOMPLETE and have < limit:
                # Read again from the batch start: the kernel copies the rest of the old chunk once
                # more, where joining it to a new chunk would copy all of both.
                want = max(len(buf) - off + chunk, exc.needed)
                data = os.pread(fd, min(want, limit - base - off), base + off)
                if len(data) > len(buf) - off:
                    buf = data
                    base += off
                    off = 0
                    continue
                exc.reason = "file ends before the batch does"
            exc.position = base + off
            raise
        yield buf, off, first, rest, end, base
        off = end


@dataclass(slots=True)
class ScanResult:
    """What a recovery scan of one segment found.

    ``valid_end`` is the position after the last whole valid batch; ``next_offset`` the offset after
    it. ``error`` is None when the scan reached ``limit`` cleanly; otherwise the reason, at
    ``valid_end``. ``incomplete`` says the bytes simply ran out mid-batch (a torn tail for sure);
    ``corrupt`` that a batch broke offset order (never a torn tail). Whether other damage is a torn
    tail or corruption is the caller's decision (:func:`valid_batch_after`).
    """

    valid_end: int
    next_offset: int
    last_batch_position: int
    entries: IndexEntries
    max_timestamp: int
    first_timestamp: int = -1
    error: str | None = None
    incomplete: bool = False
    corrupt: bool = False
    records: int = field(default=0)


def scan_segment(fd: int, base_offset: int, limit: int, index_interval: int,
                 start: int = 0, start_offset: int | None = None, entries: IndexEntries | None = None,
                 max_ts: int = -1, gaps: bool = False) -> ScanResult:
    """Verify batches from ``start`` to ``limit``, rebuilding index entries as the writer would.

    Called with ``start`` = 0 to rebuild a segment, or from a known-good batch start (with the
    entries and max timestamp known up to it) to check only the tail. With ``gaps`` (a closed
    segment, which the cleaner may have compacted) a batch may start above the offset after the
    previous one; an offset going backwards is corruption either way.
    """
    entries = entries if entries is not None else IndexEntries(base_offset)
    expected = base_offset if start_offset is None else start_offset
    result = ScanResult(start, expected, start, entries, max_ts)
    last_indexed = entries.last_position()
    try:
        for buf, s, first, rest, end, fpos in iter_batches(fd, start, limit):
            batch_pos = fpos + s
            if first["offset"] != expected and not (gaps and first["offset"] > expected):
                result.error = f"offset {first['offset']} where {expected} was expected"
                result.corrupt = True
                return result
            batch = first.get("batch")
            count = batch["count"] if batch else 1
            expected = first["offset"]
            if batch_pos - last_indexed > index_interval:
                entries.add(expected, batch_pos, result.max_timestamp)
                last_indexed = batch_pos
            if result.first_timestamp < 0 and batch_pos == 0:
                result.first_timestamp = first["timestamp"]
            ts = _batch_max_timestamp(buf, first, rest, end)
            if ts > result.max_timestamp:
                result.max_timestamp = ts
            expected += count
            result.records += count
            result.valid_end = fpos + end
            result.next_offset = expected
            result.last_batch_position = batch_pos
    except BadBatch as exc:
        result.error = exc.reason
        result.incomplete = exc.status == BatchStatus.INCOMPLETE
    return result


def _batch_max_timestamp(buf: bytes, first: dict, rest: int, end: int) -> int:
    ts = first["timestamp"]
    if end > rest:
        # Timestamps are near the start of each line: find them without parsing values.
        i = rest
        while i < end:
            j = buf.index(b'"timestamp":', i) + 12
            k = buf.index(b",", j)
            t = int(buf[j:k])
            if t > ts:
                ts = t
            i = buf.index(b"\n", k) + 1
    return ts


def valid_batch_after(fd: int, pos: int, limit: int) -> bool:
    """True when some whole valid batch starts after ``pos``: damage, not a torn tail."""
    marker = b'\n{"crc":"'
    while pos < limit:
        data = os.pread(fd, min(CHUNK, limit - pos), pos)
        if not data:
            return False
        i = data.find(marker)
        while i >= 0:
            candidate = pos + i + 1
            try:
                for _ in iter_batches(fd, candidate, limit):
                    return True
            except BadBatch:
                pass
            i = data.find(marker, i + 1)
        pos += max(len(data) - len(marker), 1)
    return False
