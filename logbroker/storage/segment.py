"""One segment: its files' names, the :class:`Segment` that owns them, and scans of its ``.log``.

A segment is the trio ``{base:020d}.log`` / ``.index`` / ``.timeindex``. Its invariants: every
record offset o satisfies base <= o < next segment's base; offsets are contiguous (a compacted
closed segment may have gaps, FORMAT.md); every batch is whole and passes its checksums. Only the
writer holding the partition lock appends to the active segment; closed segments are immutable
until retention deletes them or the cleaner replaces them. Readers need no lock: they read closed
segments to their end and the active one up to the high watermark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from . import fsutil
from .framing import PREFIX_LEN, line_starts
from .index import IndexEntries, closing_timestamp, search_offset, search_timestamp
from .record import BadBatch, BatchStatus, batch_max_timestamp, decode_batch

__all__ = [
    "log_name", "index_name", "timeindex_name", "list_segments", "iter_batches", "scan_segment",
    "ScanResult", "CHUNK", "valid_batch_after", "Segment", "SegmentBatch", "delete_segment",
    "segment_max_timestamp",
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


class SegmentBatch(NamedTuple):
    """One verified batch as :func:`iter_batches` yields it: the batch occupies ``buf[start:end]``."""

    #: bytes read from the file, holding the batch (and maybe more before and after it)
    buf: bytes
    #: where the batch starts in ``buf``
    start: int
    #: its first line, parsed (``decode_batch``)
    first: dict
    #: where its second line starts in ``buf`` (``end`` for a one-record batch)
    rest_start: int
    #: where it ends in ``buf`` (after its last LF)
    end: int
    #: the file position of ``buf[0]`` (so the batch starts at ``file_pos + start`` in the file)
    file_pos: int

    @property
    def count(self) -> int:
        """How many records the batch holds."""
        return self.first["batch"]["count"] if self.end > self.rest_start else 1


_new_batch = tuple.__new__  # SegmentBatch without the Python-level __new__ of a NamedTuple


def iter_batches(fd: int, pos: int, limit: int, chunk: int = CHUNK,
                 held: tuple[int, bytes] | None = None) -> Iterator[SegmentBatch]:
    """Yield every verified batch of the file between ``pos`` and ``limit``, as :class:`SegmentBatch`.

    ``buf[0]`` of each sits at file position ``file_pos``. Memory stays within a
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
        yield _new_batch(SegmentBatch, (buf, off, first, rest, end, base))
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
            ts = batch_max_timestamp(buf, first, rest, end) if end > rest else first["timestamp"]
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


def valid_batch_after(fd: int, pos: int, limit: int) -> bool:
    """True when some whole valid batch starts after ``pos``: damage, not a torn tail."""
    while pos < limit:
        data = os.pread(fd, min(CHUNK, limit - pos), pos)
        if not data:
            return False
        for i in line_starts(data):
            try:
                for _ in iter_batches(fd, pos + i, limit):
                    return True
            except BadBatch:
                pass
        pos += max(len(data) - PREFIX_LEN, 1)
    return False


def segment_max_timestamp(directory: str, base: int, size: int, fd: int | None = None) -> int:
    """Newest timestamp of the closed segment at ``base`` whose ``.log`` is ``size`` bytes long:
    its closing time-index entry, else a scan (of ``fd`` when given, a read descriptor of it)."""
    try:
        found = closing_timestamp(os.path.join(directory, index_name(base)),
                                  os.path.join(directory, timeindex_name(base)))
        if found is not None:
            return found
    except FileNotFoundError:
        pass
    if fd is not None:
        return scan_segment(fd, base, size, 1 << 62, gaps=True).max_timestamp  # closed: may be compacted
    fd = os.open(os.path.join(directory, log_name(base)), _READ_FLAGS)
    try:
        return scan_segment(fd, base, size, 1 << 62, gaps=True).max_timestamp
    finally:
        os.close(fd)


def delete_segment(directory: str, base: int) -> None:
    """Unlink the segment at ``base``: its ``.index``, ``.timeindex``, then its ``.log`` (missing
    files are skipped). The caller holds the partition lock and syncs the directory afterwards."""
    # The .log goes last: recovery finds segments by their .log, so a crash in between must not
    # leave index files without one (nothing would ever delete them).
    for name in (index_name(base), timeindex_name(base), log_name(base)):
        fsutil.remove_file(os.path.join(directory, name))


_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


class Segment:
    """Open descriptors of one segment's files, for append or for read.

    - :meth:`open_append` (the writer, partition lock held): the ``.log``, ``.index`` and
      ``.timeindex`` opened ``O_APPEND``, created when missing (``created`` says the ``.log`` was:
      the caller makes the new name durable with a directory fsync). Appends go through
      :meth:`append` and :meth:`add_index_entry`; :meth:`close_timeindex` marks it closed at a roll.
    - :meth:`open_read` (any process, no lock): the ``.log`` read-only; the indexes are opened when
      first searched, and a missing or lying index is given up for good (``trust_index``): lookups
      then start at position 0 and scan.

    An instance holds descriptors and names only: the files are the truth, and any number of
    instances in any processes may describe one segment. Not thread-safe. A name may come to lead
    to another file (the cleaner's swap, :meth:`replaced`) or to none (retention); descriptors
    opened before keep reading the old bytes, which never change below the high watermark.
    """

    __slots__ = ("directory", "base", "path", "fd", "index_fd", "timeindex_fd", "created", "writable",
                 "trust_index")

    def __init__(self, directory: str, base: int, fd: int, index_fd: int = -1, timeindex_fd: int = -1,
                 created: bool = False, writable: bool = False) -> None:
        self.directory = directory
        self.base = base
        self.path = os.path.join(directory, log_name(base))
        self.fd = fd
        self.index_fd = index_fd
        self.timeindex_fd = timeindex_fd
        self.created = created
        self.writable = writable
        self.trust_index = True

    @classmethod
    def open_append(cls, directory: str, base: int) -> "Segment":
        """Open (creating what is missing) the three files for append. Raises FileNotFoundError
        when the directory is gone (a deleted topic); nothing is left open then."""
        path = os.path.join(directory, log_name(base))
        try:
            fd = os.open(path, _APPEND_FLAGS | os.O_EXCL, 0o644)
            created = True
        except FileExistsError:
            fd = os.open(path, _APPEND_FLAGS, 0o644)
            created = False
        try:
            ifd = os.open(os.path.join(directory, index_name(base)), _APPEND_FLAGS, 0o644)
            try:
                tfd = os.open(os.path.join(directory, timeindex_name(base)), _APPEND_FLAGS, 0o644)
            except BaseException:
                os.close(ifd)
                raise
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, base, fd, ifd, tfd, created, writable=True)

    @classmethod
    def open_read(cls, directory: str, base: int) -> "Segment":
        """Open the ``.log`` read-only (FileNotFoundError when it is gone)."""
        return cls(directory, base, os.open(os.path.join(directory, log_name(base)), _READ_FLAGS))

    def close(self) -> None:
        for fd in (self.fd, self.index_fd, self.timeindex_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.index_fd = self.timeindex_fd = -1

    def size(self) -> int:
        """The length of the ``.log`` opened (not of whatever file its name leads to now)."""
        return os.fstat(self.fd).st_size

    # -- writing (opened for append, partition lock held) ------------------------------------

    def append(self, parts: tuple[bytes, ...]) -> None:
        """Write one encoded batch at the end of the ``.log`` (one ``writev``; see fsutil.append_all)."""
        fsutil.append_all(self.fd, parts, self.path)

    def add_index_entry(self, offset: int, position: int, max_ts_before: int) -> None:
        """Append one entry to both indexes: the batch at ``offset`` starts at ``position``.

        The indexes are derived: a failed write is ignored (a missing or half-written entry fails
        the sanity check, readers then scan, and recovery rebuilds the indexes)."""
        idx, tidx = IndexEntries.encode_entry(self.base, offset, position, max_ts_before)
        try:
            os.write(self.index_fd, idx)
            os.write(self.timeindex_fd, tidx)
        except OSError:
            pass

    def close_timeindex(self, max_timestamp: int, next_offset: int) -> None:
        """Add the closing time-index entry (newest timestamp, offset after the segment) when the
        segment is rolled. Optional: without it, the newest timestamp is found by a scan."""
        try:
            os.write(self.timeindex_fd, IndexEntries.encode_entry(self.base, next_offset, 0, max_timestamp)[1])
        except OSError:
            pass

    def rewrite_indexes(self, entries: IndexEntries) -> None:
        """Replace both indexes' contents in place (other writers keep valid descriptors to them)."""
        idx, tidx = entries.encode()
        for fd, data in ((self.index_fd, idx), (self.timeindex_fd, tidx)):
            os.ftruncate(fd, 0)
            if data:
                os.write(fd, data)

    # -- reading -----------------------------------------------------------------------------

    def scan(self, limit: int, index_interval: int, **options) -> ScanResult:
        """:func:`scan_segment` of this segment's ``.log`` up to ``limit`` (a read descriptor is
        opened for the scan when the segment is open for append only)."""
        if not self.writable:
            return scan_segment(self.fd, self.base, limit, index_interval, **options)
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return scan_segment(fd, self.base, limit, index_interval, **options)
        finally:
            os.close(fd)

    def max_timestamp(self) -> int:
        """Newest timestamp of this closed segment (:func:`segment_max_timestamp`)."""
        return segment_max_timestamp(self.directory, self.base, self.size(), None if self.writable else self.fd)

    def _index_fds(self) -> bool:
        """Open the indexes for read when first needed; False when they are missing or distrusted."""
        if self.index_fd < 0 and self.trust_index:
            try:
                ifd = os.open(os.path.join(self.directory, index_name(self.base)), _READ_FLAGS)
            except FileNotFoundError:
                self.trust_index = False
                return False
            try:
                self.timeindex_fd = os.open(os.path.join(self.directory, timeindex_name(self.base)), _READ_FLAGS)
            except FileNotFoundError:
                os.close(ifd)
                self.trust_index = False
                return False
            self.index_fd = ifd
        return self.trust_index

    def position_for_offset(self, offset: int, limit: int) -> int:
        """Where to start looking for ``offset`` (an index entry below ``limit``, else 0). An index
        is never trusted blindly: the caller checks the line found there."""
        return search_offset(self.index_fd, self.base, offset, limit) if self._index_fds() else 0

    def position_for_timestamp(self, timestamp: int, limit: int) -> int:
        """Where to start looking for the first record with a timestamp >= ``timestamp`` (else 0)."""
        return search_timestamp(self.index_fd, self.timeindex_fd, timestamp, limit) if self._index_fds() else 0

    def replaced(self) -> bool:
        """True when the name now leads to another file (the cleaner swapped it) or to none."""
        try:
            return os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return True

    def delete(self) -> None:
        """Close this segment and delete its files (:func:`delete_segment`; partition lock held)."""
        self.close()
        delete_segment(self.directory, self.base)
