"""The sparse offset index and time index of one segment (FORMAT.md, "Indexes").

``.index``: 8-byte big-endian entries (u32 relative offset, u32 position).
``.timeindex``: 12-byte big-endian entries (i64 max timestamp before the batch, u32 relative offset).

Entry i of both files names the same batch start. The files are derived data: no checksum; entries
appended beside the log are not fsynced (a rebuilt index replaces the files atomically, fsynced);
they are checked for sanity on load and rebuilt from the log by recovery when in doubt. An entry is
added when more than ``index.interval.bytes`` were appended since the previous one, so lookups cost a
binary search plus a forward scan of at most one interval and one batch.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field

from . import fsutil

__all__ = ["IndexEntries", "load_index", "write_index", "search_offset", "search_timestamp", "INDEX_ENTRY",
           "TIME_ENTRY", "closing_timestamp", "decode_offset_index", "decode_time_index", "index_entry_count"]

INDEX_ENTRY = struct.Struct(">II")
TIME_ENTRY = struct.Struct(">qI")


@dataclass(slots=True)
class IndexEntries:
    """The entries of one segment's two index files, in memory.

    Invariants: ``offsets`` strictly increasing (absolute offsets), ``positions`` strictly
    increasing, ``max_ts_before`` non-decreasing, all three of equal length.
    """

    base_offset: int
    offsets: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    max_ts_before: list[int] = field(default_factory=list)
    #: (largest timestamp, next offset) from the closing time-index entry of a closed segment
    closing: tuple[int, int] | None = None

    def add(self, offset: int, position: int, max_ts_before: int) -> None:
        self.offsets.append(offset)
        self.positions.append(position)
        self.max_ts_before.append(max_ts_before)

    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at or past ``position`` (the log was cut there)."""
        i = bisect.bisect_left(self.positions, position)
        del self.offsets[i:], self.positions[i:], self.max_ts_before[i:]

    def encode(self) -> tuple[bytes, bytes]:
        base = self.base_offset
        index = b"".join(INDEX_ENTRY.pack(o - base, p) for o, p in zip(self.offsets, self.positions))
        times = b"".join(TIME_ENTRY.pack(t, o - base) for t, o in zip(self.max_ts_before, self.offsets))
        if self.closing is not None:
            times += TIME_ENTRY.pack(self.closing[0], self.closing[1] - base)
        return index, times

    @staticmethod
    def encode_entry(base_offset: int, offset: int, position: int, max_ts_before: int) -> tuple[bytes, bytes]:
        return (INDEX_ENTRY.pack(offset - base_offset, position),
                TIME_ENTRY.pack(max_ts_before, offset - base_offset))


def decode_offset_index(raw: bytes, base_offset: int) -> tuple[list[tuple[int, int]], int]:
    """The ``(offset, position)`` entries of ``.index`` bytes, absolute offsets, and how many
    trailing bytes do not make a whole entry (a torn or damaged file; 0 when it is sound)."""
    torn = len(raw) % INDEX_ENTRY.size
    return [(base_offset + rel, pos) for rel, pos in INDEX_ENTRY.iter_unpack(raw[:len(raw) - torn])], torn


def decode_time_index(raw: bytes, base_offset: int) -> tuple[list[tuple[int, int]], int]:
    """The ``(max timestamp before, offset)`` entries of ``.timeindex`` bytes, absolute offsets,
    and how many trailing bytes do not make a whole entry."""
    torn = len(raw) % TIME_ENTRY.size
    return [(ts, base_offset + rel) for ts, rel in TIME_ENTRY.iter_unpack(raw[:len(raw) - torn])], torn


def index_entry_count(index_size: int) -> int:
    """Whole entries in an ``.index`` file of ``index_size`` bytes."""
    return index_size // INDEX_ENTRY.size


def load_index(index_path: str, timeindex_path: str, base_offset: int, log_size: int) -> IndexEntries | None:
    """Load and sanity-check both index files; None when missing or insane (rebuild it)."""
    raw = fsutil.read_file(index_path)
    rawt = fsutil.read_file(timeindex_path)
    if raw is None or rawt is None:
        return None
    if len(raw) % INDEX_ENTRY.size or len(rawt) % TIME_ENTRY.size:
        return None
    n = len(raw) // INDEX_ENTRY.size
    nt = len(rawt) // TIME_ENTRY.size
    if nt not in (n, n + 1):
        return None
    entries = IndexEntries(base_offset)
    if nt == n + 1:
        ts, rel = TIME_ENTRY.unpack_from(rawt, n * TIME_ENTRY.size)
        entries.closing = (ts, base_offset + rel)
        rawt = rawt[:n * TIME_ENTRY.size]
    prev_o = prev_p = -1
    prev_t = None
    for (rel, pos), (ts, trel) in zip(INDEX_ENTRY.iter_unpack(raw), TIME_ENTRY.iter_unpack(rawt)):
        if rel != trel or rel <= prev_o or pos <= prev_p or pos >= log_size or (prev_t is not None and ts < prev_t):
            return None
        prev_o, prev_p, prev_t = rel, pos, ts
        entries.add(base_offset + rel, pos, ts)
    if entries.closing is not None and (entries.closing[1] <= base_offset + prev_o
                                        or (prev_t is not None and entries.closing[0] < prev_t)):
        return None
    return entries


def closing_timestamp(index_path: str, timeindex_path: str) -> int | None:
    """The newest timestamp of a closed segment from its closing time-index entry (the one entry
    more than the offset index holds); None when there is no such entry, or when it does not
    agree with the entry before it (scan the log instead). Raises FileNotFoundError when either
    file is missing.

    Retention deletes by this timestamp, so it is checked as far as two reads allow: the closing
    entry's next offset must lie past the last entry's offset (past the base offset when there is
    none: a closed segment holds a record), its timestamp must not be older than that entry's, and
    that entry must name the same offset in both files. A zero-filled file fails the first rule.
    """
    tsize = os.path.getsize(timeindex_path)
    isize = os.path.getsize(index_path)
    n = isize // INDEX_ENTRY.size
    if not tsize or tsize // TIME_ENTRY.size != n + 1:
        return None
    with open(timeindex_path, "rb") as f:
        f.seek(tsize - 2 * TIME_ENTRY.size if n else tsize - TIME_ENTRY.size)
        entries = f.read(2 * TIME_ENTRY.size if n else TIME_ENTRY.size)
    if len(entries) < (2 if n else 1) * TIME_ENTRY.size:
        return None  # cut meanwhile (a rebuild): scan instead
    closing_ts, closing_rel = TIME_ENTRY.unpack_from(entries, len(entries) - TIME_ENTRY.size)
    last_ts, last_rel = TIME_ENTRY.unpack_from(entries, 0) if n else (closing_ts, 0)
    if n:
        with open(index_path, "rb") as f:
            f.seek((n - 1) * INDEX_ENTRY.size)
            entry = f.read(INDEX_ENTRY.size)
        if len(entry) < INDEX_ENTRY.size or INDEX_ENTRY.unpack(entry)[0] != last_rel:
            return None
    if closing_rel <= last_rel or closing_ts < last_ts:
        return None
    return closing_ts


def write_index(index_path: str, timeindex_path: str, entries: IndexEntries) -> None:
    """Replace both index files atomically (used after a rebuild or a truncation)."""
    index, times = entries.encode()
    fsutil.atomic_write(index_path, index)
    fsutil.atomic_write(timeindex_path, times)


def search_offset(index_fd: int, base_offset: int, offset: int, limit: int) -> int:
    """Binary-search an open ``.index`` file: the position of the last entry with an offset <= ``offset``.

    O(log n) reads of 8 bytes, without loading the file; 0 when no entry qualifies. Entries
    at or past ``limit`` (bytes not readable yet) are ignored. The caller checks the line found there,
    since an index is never trusted blindly.
    """
    n = os.fstat(index_fd).st_size // INDEX_ENTRY.size
    lo, hi, found = 0, n - 1, 0
    rel = offset - base_offset
    while lo <= hi:
        mid = (lo + hi) // 2
        entry = os.pread(index_fd, INDEX_ENTRY.size, mid * INDEX_ENTRY.size)
        if len(entry) < INDEX_ENTRY.size:
            hi = mid - 1
            continue
        r, pos = INDEX_ENTRY.unpack(entry)
        if r <= rel and pos < limit:
            found = pos
            lo = mid + 1
        else:
            hi = mid - 1
    return found


def search_timestamp(index_fd: int, timeindex_fd: int, timestamp: int, limit: int) -> int:
    """Binary-search the time index: the position from which a record with a timestamp >= ``timestamp``
    can be found (that of the last entry whose max-timestamp-before is < it), else 0."""
    n = min(os.fstat(timeindex_fd).st_size // TIME_ENTRY.size, os.fstat(index_fd).st_size // INDEX_ENTRY.size)
    lo, hi, found = 0, n - 1, -1
    while lo <= hi:
        mid = (lo + hi) // 2
        entry = os.pread(timeindex_fd, TIME_ENTRY.size, mid * TIME_ENTRY.size)
        if len(entry) == TIME_ENTRY.size and TIME_ENTRY.unpack(entry)[0] < timestamp:
            found = mid
            lo = mid + 1
        else:
            hi = mid - 1
    if found < 0:
        return 0
    entry = os.pread(index_fd, INDEX_ENTRY.size, found * INDEX_ENTRY.size)
    tentry = os.pread(timeindex_fd, TIME_ENTRY.size, found * TIME_ENTRY.size)
    if len(entry) < INDEX_ENTRY.size or len(tentry) < TIME_ENTRY.size:
        return 0
    rel, pos = INDEX_ENTRY.unpack(entry)
    if TIME_ENTRY.unpack(tentry)[1] != rel:
        return 0  # the two files are out of step (a crash between their writes): scan instead
    return pos if pos < limit else 0
