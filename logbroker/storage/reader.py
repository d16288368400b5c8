"""Reading one partition from any process, without a lock (Kafka's fetch path).

Contract: a reader returns whole, checksum-verified batches only, in offset order, and never a
record at or above the high watermark (so never one that is not durable under the fsync policy in
force). It tolerates concurrent appends, rolls and retention: when the segment holding its position
was deleted, it raises OffsetOutOfRangeError naming the new log start offset. Memory stays within one
read chunk plus one batch whatever the log size.
"""

from __future__ import annotations

import bisect
import logging
import os
from typing import TYPE_CHECKING, Callable

from .checkpoint import STATE_NAME, PartitionState, StateFile, read_log_start
from ..errors import CorruptionError, OffsetOutOfRangeError, UnknownPartitionError
from .handles import OPEN_FILES
from .consumer_record import Records
from .record import BadBatch, batch_lines, batch_records, parse_first_line
from .segment import CHUNK, Segment, iter_batches, list_segments, log_name

if TYPE_CHECKING:
    from .topic import TopicIdentity  # topic sits above reader

__all__ = ["PartitionReader"]

log = logging.getLogger("logbroker")
_READER_DESCRIPTORS = 4  # high-watermark, and one segment's .log, .index and .timeindex


class PartitionReader:
    """Reads one partition. Not thread-safe; one per consumer and partition.

    It keeps a cursor (the file position of the next offset it expects to be asked for), so
    sequential reads never touch the index.
    """

    def __init__(self, topic: str, partition: int, directory: str, identity: TopicIdentity | None = None,
                 repair: Callable[[], object] | None = None) -> None:
        if not os.path.isdir(directory):
            if identity is not None:
                identity.check(partition)
            raise UnknownPartitionError(f"partition {partition} of topic {topic} does not exist",
                                        topic=topic, partition=partition)
        self.topic = topic
        self.partition = partition
        self.directory = directory
        # Checked after the files are opened and read, before anything is returned: a topic
        # directory renamed away never comes back, so a check that passes proves they were its own.
        self._identity = identity
        self._state = StateFile(directory)
        self._segment: Segment | None = None
        self._cursor: tuple[int, int] | None = None  # (next offset, its file position) in self._segment
        self._held: tuple[int, bytes] | None = None  # (file position, bytes) last read from self._segment
        # The rest of a batch parsed whole but returned in part: (its first offset, lines, raw values).
        self._rest: tuple[int, list[dict], list[bytes] | None] | None = None
        self._bases: list[int] = []  # segment base offsets as last listed
        # Rebuilds lost or damaged state files from the segments under the partition lock (a full
        # recovery); None: refuse with an error naming `logbroker recover` instead.
        self._repair = repair
        OPEN_FILES.touch(self, _READER_DESCRIPTORS, self._close_files)

    def close(self) -> None:
        OPEN_FILES.forget(self)
        self._close_files()

    def _close_files(self) -> None:
        """Close every descriptor; the next call opens what it needs again (see handles.py)."""
        if self._segment is not None:
            self._segment.close()
            self._segment = None
        self._held = None
        self._rest = None
        self._state.close()

    # -- offsets ------------------------------------------------------------------------------

    def state(self) -> PartitionState:
        """The partition state. A missing, empty or damaged state file while segments hold records is
        never read as an empty partition: it is rebuilt from the segments (or refused)."""
        state = self._read_state()
        self._check_identity()
        return state

    def _read_state(self) -> PartitionState:
        OPEN_FILES.touch(self, _READER_DESCRIPTORS, self._close_files)
        try:
            if self._state.fd < 0:
                self._state = StateFile(self.directory)
            try:
                st = self._state.read()
            except CorruptionError:
                return self._rebuilt_state("damaged")
            if st is None:
                if self._holds_records():
                    return self._rebuilt_state("missing or empty")
                base = self.checkpointed_log_start()
                return PartitionState(active_base=base, log_end_offset=base, high_watermark=base)
            return st
        except (FileNotFoundError, NotADirectoryError):
            self._check_identity()
            raise

    def _check_identity(self) -> None:
        if self._identity is not None:
            self._identity.check(self.partition)

    def _holds_records(self) -> bool:
        for base in list_segments(self.directory):
            try:
                if os.path.getsize(os.path.join(self.directory, log_name(base))):
                    return True
            except FileNotFoundError:
                pass
        return False

    def _rebuilt_state(self, why: str) -> PartitionState:
        path = os.path.join(self.directory, STATE_NAME)
        self._run_repair(f"partition state file {path} is {why} while the segments hold records")
        self._state.close()
        self._state = StateFile(self.directory)
        st = self._state.read()
        if st is None:
            raise CorruptionError(f"partition state file {path} is still {why} after recovery", path=path)
        return st

    def _run_repair(self, what: str) -> None:
        """Rebuild the state files from the segments, or raise the error that says how to."""
        how = f"run `logbroker recover {self.topic}` (with write access) to rebuild it from the segments"
        if self._repair is None:
            raise CorruptionError(f"{what}; {how}", path=self.directory, topic=self.topic, partition=self.partition)
        try:
            report = self._repair()
        except OSError as exc:
            raise CorruptionError(f"{what}, and it cannot be rebuilt here ({exc.strerror or exc}); {how}",
                                  path=self.directory, topic=self.topic, partition=self.partition) from None
        for action in getattr(report, "actions", ()):
            log.warning("%s-%d: %s", self.topic, self.partition, action)

    def checkpointed_log_start(self) -> int:
        """The log start offset checkpoint (rebuilt from the segments when damaged)."""
        try:
            return read_log_start(self.directory, self.topic, self.partition)
        except CorruptionError as exc:
            self._run_repair(str(exc))
            return read_log_start(self.directory, self.topic, self.partition)

    def log_start_offset(self) -> int:
        try:
            bases = list_segments(self.directory)
            start = self.checkpointed_log_start()
        except (FileNotFoundError, NotADirectoryError):
            self._check_identity()
            raise
        self._check_identity()
        return max(start, bases[0]) if bases else start

    def high_watermark(self) -> int:
        """The log end offset as consumers see it: one past the last durable, visible record."""
        return self.state().high_watermark

    # -- reading ------------------------------------------------------------------------------

    def read(self, offset: int, max_records: int = 500, raw: bool = False) -> Records:
        """Up to ``max_records`` records from ``offset`` (fewer at the high watermark; none at it).

        Raises TopicDeletedError when the topic was deleted since this reader was opened (nothing
        of a topic created since under the same name is ever returned).
        """
        try:
            out = self._read(offset, max_records, raw)
        except (FileNotFoundError, NotADirectoryError, OffsetOutOfRangeError, CorruptionError):
            self._check_identity()  # the topic's files vanishing under a read is the deletion's doing
            raise
        self._check_identity()
        return out

    def _read(self, offset: int, max_records: int, raw: bool) -> Records:
        state = self._read_state()
        hw = state.high_watermark
        lines: list[dict] = []
        values: list[bytes] | None = [] if raw else None
        out = Records(self.topic, self.partition, lines, values)
        if offset == hw:
            return out
        if offset > hw or offset < 0:
            raise self._out_of_range(offset, hw)
        rest = self._rest
        if rest is not None and rest[0] == offset and (rest[2] is None) != raw and max_records > 0:
            # The rest of a batch the last read parsed whole but returned in part.
            self._rest = None
            self._take(rest[1], rest[2], max_records, lines, values)
            offset = lines[-1]["offset"] + 1
        while len(lines) < max_records and offset < hw:
            seg, pos = self._position(offset, state)
            active = seg.base == state.active_base
            limit = state.hw_position if active else seg.size()
            got = len(lines)
            if pos < limit:
                self._read_segment(seg, pos, limit, offset, max_records, raw, lines, values)
            if len(lines) == got:
                # Nothing at or after ``offset`` in this segment. A closed segment may end in a gap
                # (compaction, FORMAT.md): go on at the next segment's base.
                nxt = None if active else self._next_base(seg.base)
                if nxt is None:
                    break
                if nxt > offset and offset < read_log_start(self.directory, self.topic, self.partition):
                    # Not a gap: retention removed the segments from ``offset`` on while this one was
                    # held open (the log start is checkpointed before any unlink). Return what was
                    # read; a read at ``offset`` is out of range.
                    self._cursor = None
                    if lines:
                        break
                    raise self._out_of_range(offset, hw)
                offset = max(offset, nxt)
                if self._open(offset).base == offset:
                    self._cursor = (offset, 0)
                continue
            offset = lines[-1]["offset"] + 1
        return out

    def _take(self, batch: list[dict], batch_values: list[bytes] | None, want: int, lines: list[dict],
              values: list[bytes] | None) -> None:
        """Move up to ``want - len(lines)`` lines of a batch to the output; keep the rest for the next read."""
        take = want - len(lines)
        if len(batch) > take:
            self._rest = (batch[take]["offset"], batch[take:], None if batch_values is None else batch_values[take:])
            batch = batch[:take]
            batch_values = None if batch_values is None else batch_values[:take]
        lines += batch
        if values is not None:
            values += batch_values

    def _read_segment(self, seg: Segment, pos: int, limit: int, offset: int, want: int, raw: bool,
                      lines: list[dict], values: list[bytes] | None) -> None:
        """Append to ``lines`` (and ``values``) the batches of ``seg`` from ``offset``, until ``want`` lines."""
        try:
            for buf, start, first, rest, end, fpos in iter_batches(seg.fd, pos, limit, CHUNK, self._held):
                self._held = (fpos, buf)
                count = first["batch"]["count"] if end > rest else 1  # SegmentBatch.count, inline
                after = first["offset"] + count  # the offset after this batch
                take = want - len(lines)
                left = after - max(offset, first["offset"])
                # A batch that holds more than is wanted, but not much more (a poll of 500 in batches
                # of 1,000), is parsed whole and its rest kept for the next read: parsing it in parts
                # would split and join its lines again. A seek for a few records parses only those.
                whole = take < left <= 4 * take
                got, got_values = batch_lines(buf, start, first, rest, end, offset, raw, None if whole else take)
                if got:
                    nxt = got[take]["offset"] if whole else got[-1]["offset"] + 1
                    self._take(got, got_values, want, lines, values)
                    # A batch read in part leaves the cursor at its start (the next read skips what was
                    # read), or after it when its rest is kept.
                    self._cursor = (nxt, fpos + end) if nxt == after else (
                        (after, fpos + end) if whole else (nxt, fpos + start))
                    offset = nxt
                if len(lines) >= want:
                    break
        except BadBatch as exc:
            raise CorruptionError(
                f"corruption in {seg.path} at position {exc.position}: {exc.reason}",
                path=seg.path, position=exc.position, offset=offset) from None

    def _next_base(self, base: int) -> int | None:
        """The base offset of the segment after the one at ``base`` (listed again when not cached)."""
        i = bisect.bisect_right(self._bases, base)
        if i >= len(self._bases):
            self._bases = list_segments(self.directory)
            i = bisect.bisect_right(self._bases, base)
        return self._bases[i] if i < len(self._bases) else None

    def _position(self, offset: int, state: PartitionState) -> tuple[Segment, int]:
        if self._cursor is not None and self._cursor[0] == offset and self._segment is not None:
            return self._segment, self._cursor[1]
        if offset < read_log_start(self.directory, self.topic, self.partition):
            # delete-records moved the log start into a segment: what lies below it is gone.
            raise self._out_of_range(offset, state.high_watermark)
        seg = self._open(offset)
        size = state.hw_position if seg.base == state.active_base else seg.size()
        pos = seg.position_for_offset(offset, size)
        if pos and not self._batch_starts_at_or_before(seg, pos, size, offset):
            # An index entry that lies (damaged, or a crash mid-rebuild): scan this segment instead.
            seg.trust_index = False
            pos = 0
        return seg, pos

    @staticmethod
    def _batch_starts_at_or_before(seg: Segment, pos: int, size: int, offset: int) -> bool:
        """Check the one line an index entry points at: a valid line at or before ``offset``."""
        head = os.pread(seg.fd, min(size - pos, 1 << 16), pos)
        try:
            first = parse_first_line(head)
            return first is None or first["offset"] <= offset  # None: a line longer than 64 KiB, the batch checks judge it
        except (ValueError, KeyError, TypeError):
            return False

    def _open(self, offset: int) -> Segment:
        """Open the segment holding ``offset`` (the one with the largest base <= offset)."""
        # Closed segments change only by deletion (retention) or replacement (the cleaner), so the
        # cached listing is right for an offset below the last cached base's successor unless a
        # file is gone; the last one may have rolled since, so look again there.
        for attempt in range(2):
            bases = self._bases
            i = bisect.bisect_right(bases, offset) - 1
            if attempt or i < 0 or i == len(bases) - 1:
                bases = self._bases = list_segments(self.directory)
                i = bisect.bisect_right(bases, offset) - 1
            if i < 0:
                raise self._out_of_range(offset, self._read_state().high_watermark)
            base = bases[i]
            if self._segment is not None and self._segment.base == base and not self._segment.replaced():
                return self._segment
            try:
                seg = Segment.open_read(self.directory, base)
            except FileNotFoundError:
                # Retention removed it (then the offset is out of range), or the cleaner merged it
                # into the segment before it (then that one holds the offset now): list again.
                self._bases = []
                continue
            if self._segment is not None:
                self._segment.close()
            self._segment = seg
            self._cursor = None
            self._held = None
            self._rest = None
            return seg
        raise self._out_of_range(offset, self._read_state().high_watermark)

    def _out_of_range(self, offset: int, hw: int) -> OffsetOutOfRangeError:
        bases = list_segments(self.directory)
        start = read_log_start(self.directory, self.topic, self.partition)
        start = max(start, bases[0]) if bases else start
        return OffsetOutOfRangeError(
            f"offset {offset} is out of range for {self.topic}-{self.partition}: the log holds offsets "
            f"{start} to {hw - 1}" if hw > start else
            f"offset {offset} is out of range for {self.topic}-{self.partition}: the log is empty "
            f"(log start offset {start}, log end offset {hw})",
            topic=self.topic, partition=self.partition, offset=offset, log_start_offset=start,
            log_end_offset=hw)

    # -- timestamps ---------------------------------------------------------------------------

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The first offset whose record has a timestamp >= ``timestamp``; None when there is none.

        Kafka's lookup: the first segment whose newest timestamp is >= the target, then its time
        index, then a short forward scan.
        """
        try:
            found = self._offset_for_timestamp(timestamp)
        except (FileNotFoundError, NotADirectoryError, CorruptionError):
            self._check_identity()
            raise
        self._check_identity()
        return found

    def _offset_for_timestamp(self, timestamp: int, retries: int = 3) -> int | None:
        state = self._read_state()
        bases = list_segments(self.directory)
        for base in bases:
            if base > state.active_base:
                break  # rolled after the state was read: nothing in it is visible to this lookup
            active = base == state.active_base
            try:
                seg = Segment.open_read(self.directory, base)
            except FileNotFoundError:
                if retries and base < bases[-1]:
                    # Removed meanwhile: by retention (skip it), or merged by the cleaner into an
                    # earlier segment already passed over (look again from the start).
                    return self._offset_for_timestamp(timestamp, retries - 1)
                continue
            try:
                # The size of the file opened (a cleaner may swap the name at any moment).
                size = state.hw_position if active else seg.size()
                max_ts = state.max_timestamp if active else seg.max_timestamp()
            except (FileNotFoundError, CorruptionError):
                max_ts = timestamp  # its indexes are being replaced: scan it
            except BaseException:
                seg.close()
                raise
            if max_ts < timestamp and not active:
                seg.close()
                continue
            try:
                pos = seg.position_for_timestamp(timestamp, size)
                if pos and not self._batch_starts_at_or_before(seg, pos, size, 1 << 62):
                    pos = 0
                for buf, start, first, rest, end, fpos in iter_batches(seg.fd, pos, size):
                    for rec in batch_records(buf, start, first, rest, end, self.topic, self.partition, 0, raw=True):
                        if rec.timestamp >= timestamp and rec.offset < state.high_watermark:
                            return rec.offset
            except BadBatch as exc:
                raise CorruptionError(f"corruption in {seg.path} at position {exc.position}: {exc.reason}",
                                      path=seg.path, position=exc.position) from None
            finally:
                seg.close()
        return None
