"""One scan of a partition, one verdict: what ``recover`` repairs and what ``inspect --verify`` prints.

:func:`check_partition` reads every byte of a partition directory and returns a
:class:`PartitionCheck`: where the log really ends, where the recorded high watermark is, what lies
past it, and two lists of one-line findings:

- ``repairs``: what recovery would change (cut a torn tail, keep whole batches a writer wrote but
  never recorded, make records past the high watermark durable and visible, rebuild the partition
  state, an index or the log start offset checkpoint, remove leftovers). Each line says what and why.
- ``damage``: what recovery will not change on its own (corruption followed by valid records, a
  gap between segments), each with the command that gets out of it.

The verdict is ``OK`` when both lists are empty. ``PartitionLog.recover`` runs this check under
the partition lock, applies exactly the repairs listed and checks again; ``inspect --verify`` prints
the same check. So the two cannot disagree: a partition inspect calls OK is one recover leaves alone.

The rules (FORMAT.md, "Recovery rules"): the log is the truth and every small file beside it is
derived from it. A torn tail (incomplete or damaged bytes with no valid batch after them, or
anything past the recorded high watermark, which was never durable) is cut; damage followed by
valid records below the high watermark is corruption and is never cut.

Reads only; concurrency is the caller's business (recover holds the partition lock; inspect takes
it without waiting when it can, and otherwise says that a writer may be changing the tail).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import fsutil
from .checkpoint import (CLEANER_NAME, LOG_START_NAME, STATE_NAME, PartitionState, StateFile, read_cleaner_offset,
                         read_log_start)
from ..errors import CorruptionError
from .index import IndexEntries, load_index, write_index
from .record import BadBatch, parse_first_line
from .segment import (ScanResult, Segment, index_name, iter_batches, list_segments, log_name, scan_segment,
                      timeindex_name, valid_batch_after)

__all__ = ["PartitionCheck", "SegmentCheck", "RecoveryReport", "check_partition", "tail_damage", "state_problem",
           "tail_problem", "recover_active", "rebuild_closed_index"]


@dataclass(slots=True)
class RecoveryReport:
    """What recovery changed (``actions``, one line each) and what it found but left alone
    (``problems``). Empty ``actions`` means nothing was changed."""

    topic: str
    partition: int
    actions: list[str] = field(default_factory=list)
    truncated_bytes: int = 0
    problems: list[str] = field(default_factory=list)  # damage found and left alone, each with a way out
    subject: str = ""  # what the report is about when not a partition (a group's offsets)

    def __bool__(self) -> bool:
        return bool(self.actions)


@dataclass(slots=True)
class SegmentCheck:
    """One segment as the scan found it. ``valid_end``/``next_offset``: after its last whole valid batch."""

    base_offset: int
    path: str
    size: int
    valid_end: int
    next_offset: int
    records: int
    index_entries: int | None  # entries of a sane ``.index``; None when missing or insane
    active: bool = False


@dataclass(slots=True)
class PartitionCheck:
    """The result of :func:`check_partition`. ``ok`` iff there is nothing to repair and no damage."""

    topic: str
    partition: int
    directory: str
    state: PartitionState | None = None
    state_problem: str | None = None  # "missing or empty" or "damaged" when the state is not trusted
    log_start_offset: int = 0
    log_end_offset: int = 0  # where the log ends once recovered (the scan's answer)
    segments: list[SegmentCheck] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)
    damage_at: list[tuple[str, int | None, int | None]] = field(default_factory=list)  # (path, position, offset)
    writer_active: bool = False  # another process held the partition lock during the check
    notes: list[str] = field(default_factory=list)
    # What recover acts on (each matches one or more lines of ``repairs``):
    temp_files: list[str] = field(default_factory=list)
    rewrite_log_start: int | None = None
    rewrite_cleaner_offset: int | None = None
    below_log_start: list[int] = field(default_factory=list)
    closed_indexes: list[int] = field(default_factory=list)
    active_work: bool = False  # the active segment or the partition state needs recovering
    active_damaged: bool = False
    truncated_bytes: int = 0

    @property
    def high_watermark(self) -> int | None:
        return None if self.state is None else self.state.high_watermark

    @property
    def ok(self) -> bool:
        return not self.repairs and not self.damage

    @property
    def verdict(self) -> str:
        if self.ok:
            return "OK"
        parts = []
        if self.damage:
            parts.append(f"{len(self.damage)} damaged (recover will not repair: see above)")
        if self.repairs:
            parts.append(f"{len(self.repairs)} to repair (`logbroker recover {self.topic}` would do what is "
                         f"listed above)")
        return "NOT OK: " + "; ".join(parts)


def state_problem(directory: str) -> tuple[PartitionState | None, str | None]:
    """The partition state and, when it cannot be trusted, why: "missing or empty" (a writer creates the
    file empty, so the two look alike once a writer opened the partition) or "damaged"."""
    path = os.path.join(directory, STATE_NAME)
    if not os.path.exists(path):
        return None, "missing or empty"
    sf = StateFile(directory)
    try:
        state = sf.read()
    except CorruptionError:
        return None, "damaged"
    finally:
        sf.close()
    return (None, "missing or empty") if state is None else (state, None)


def tail_damage(fd: int, path: str, result: ScanResult, size: int, hw_position: int | None) -> str | None:
    """Whether the bad bytes a scan stopped at are corruption (returns why) or a torn tail (None).

    Incomplete bytes are a torn tail. So is damage past the high watermark position of a trusted
    state (``hw_position``; those bytes were never durable), whatever follows. Below it, or with no
    trusted state, damage followed by a whole valid batch is corruption; a batch out of offset order
    always is.
    """
    if result.error is None or result.incomplete:
        return None
    in_tail = hw_position is not None and result.valid_end >= hw_position
    if result.corrupt or (not in_tail and valid_batch_after(fd, result.valid_end, size)):
        return (f"corruption in {path} at position {result.valid_end} (offset {result.next_offset}): "
                f"{result.error}; valid records follow, so it is not a torn tail and nothing cuts it")
    return None


# -- recovering the active segment and the indexes (what PartitionLog runs, lock held) ----------

def tail_problem(active: Segment, state: PartitionState, index_interval: int) -> str | None:
    """Why the active segment (open for append) does not end as ``state`` says, or None when it
    does: its size is the recorded log end position, its last batch is whole and ends at the log
    end offset, and every byte past the high watermark (never synced, so after a power loss any of
    it may be zeros) is whole valid batches. A writer's check before its first append."""
    size = active.size()
    if size != state.log_end_position:
        return ("the segment is longer than the recorded log end position (a writer stopped before recording "
                "its last batches)" if size > state.log_end_position else
                "the segment is shorter than the recorded log end position")
    if size > 0:
        rfd = os.open(active.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not last_batch_intact(rfd, state, size):
                return "the last batch is not intact"
        finally:
            os.close(rfd)
    if state.high_watermark < state.log_end_offset:
        r = active.scan(size, index_interval, start=state.hw_position, start_offset=state.high_watermark,
                        entries=IndexEntries(state.active_base))
        if r.error is not None or r.next_offset != state.log_end_offset:
            return "records past the high watermark are damaged"
    return None


def last_batch_intact(fd: int, state: PartitionState, size: int) -> bool:
    """True when one whole valid batch runs from the recorded last batch position to ``size`` and
    ends at the recorded log end offset (its first offset is not in the state, so read it)."""
    try:
        for batch in iter_batches(fd, state.last_batch_position, size):
            return batch.file_pos + batch.end == size and batch.first["offset"] + batch.count == state.log_end_offset
    except BadBatch:
        pass
    return False


def recover_active(active: Segment, state: PartitionState, why: str | None, index_interval: int,
                   topic: str, partition: int, trusted: bool = True) -> tuple[PartitionState, RecoveryReport]:
    """Rescan the active segment (open for append, partition lock held) from its start: cut a torn
    tail (durably), rebuild its indexes in place, and return the partition state the bytes say and
    what was done (``why``: the reason given in the report).

    ``trusted``: ``state`` (its high watermark position) may decide what is a torn tail (see
    :func:`tail_damage`). Damage that is not a torn tail raises CorruptionError and changes nothing.
    The caller records the returned state.
    """
    report = RecoveryReport(topic, partition)
    size = active.size()
    rfd = os.open(active.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        result = scan_segment(rfd, active.base, size, index_interval)
        damage = tail_damage(rfd, active.path, result, size, state.hw_position if trusted else None)
        if damage is not None:
            raise CorruptionError(f"{damage}. Run `logbroker inspect {active.directory} --verify`",
                                  path=active.path, position=result.valid_end, offset=result.next_offset)
    finally:
        os.close(rfd)
    if result.valid_end < size:
        report.truncated_bytes = size - result.valid_end
        report.actions.append(
            f"truncated {size - result.valid_end} bytes of torn tail at position {result.valid_end} "
            f"of {active.path} (offset {result.next_offset}): {result.error}")
        fsutil.truncate(active.fd, result.valid_end, active.path)
    else:
        fsutil.sync_file(active.fd, active.path)
    # Rewrite the active index in place: other writers keep valid descriptors to it.
    entries = result.entries
    active.rewrite_indexes(entries)
    if why or report.actions:
        report.actions.insert(0, f"recovered {topic}-{partition}: {why or 'state rebuilt'}")
    new_state = PartitionState(
        active_base=active.base,
        log_end_offset=result.next_offset,
        log_end_position=result.valid_end,
        last_batch_position=result.last_batch_position,
        high_watermark=result.next_offset,
        hw_position=result.valid_end,
        last_index_position=entries.last_position(),
        max_timestamp=result.max_timestamp,
        first_timestamp=result.first_timestamp,
    )
    return new_state, report


def rebuild_closed_index(directory: str, base: int, index_interval: int) -> None:
    """Rewrite a closed segment's indexes from its bytes, atomically (a check found them unusable)."""
    # A compacted partition's closed segment may have gaps and end below the next base (FORMAT.md).
    compacted = os.path.exists(os.path.join(directory, CLEANER_NAME))
    later = [b for b in list_segments(directory) if b > base]
    segment = Segment.open_read(directory, base)
    try:
        result = segment.scan(segment.size(), index_interval, gaps=compacted)
    finally:
        segment.close()
    result.entries.closing = (result.max_timestamp, max(result.next_offset, later[0]) if later and compacted
                              else result.next_offset)
    write_index(os.path.join(directory, index_name(base)), os.path.join(directory, timeindex_name(base)),
                result.entries)


_CLEANER_LEFTOVER = re.compile(r"(\d{20})\.(\d{20})\.(cleaned|swap)\Z")


def _scan(path: str, base: int, index_interval: int, gaps: bool = False) -> tuple[ScanResult, int, int]:
    """(scan, size, fd) of a whole segment; the caller closes ``fd``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    size = os.fstat(fd).st_size
    return scan_segment(fd, base, size, index_interval, gaps=gaps), size, fd


def _index_sane(fd: int, directory: str, base: int, limit: int, closed_next: int | None) -> IndexEntries | None:
    """The loaded indexes when they are sane for bytes below ``limit`` and each entry points at the
    start of a batch holding its offset; ``closed_next``: the closing entry a closed segment needs."""
    entries = load_index(os.path.join(directory, index_name(base)), os.path.join(directory, timeindex_name(base)),
                         base, max(limit, 1))
    if entries is None:
        return None
    if closed_next is not None and (entries.closing is None or entries.closing[1] != closed_next):
        return None
    if closed_next is None and entries.closing is not None:
        return None
    for offset, position in zip(entries.offsets, entries.positions):
        if position >= limit:
            return None
        head = os.pread(fd, min(limit - position, 1 << 16), position)
        try:
            first = parse_first_line(head)  # None: a first line longer than 64 KiB (the scan verified it)
            if first is not None and first["offset"] != offset:
                return None
        except (ValueError, KeyError, TypeError):
            return None
    return entries


def check_partition(directory: str, topic: str, partition: int, index_interval: int,
                    writer_active: bool = False) -> PartitionCheck:
    """Scan every file of one partition directory; see the module docstring."""
    check = PartitionCheck(topic, partition, directory, writer_active=writer_active)
    for name in sorted(os.listdir(directory)):
        if name.endswith(fsutil.TMP_SUFFIX):
            check.temp_files.append(name)
            check.repairs.append(f"remove leftover temp file {name} (an atomic replace that never finished)")
    bases = list_segments(directory)
    # Compaction (FORMAT.md, "Compacted logs"): gaps are expected where the cleaner has worked, and
    # the segments a pending swap replaces are as good as gone.
    compacted = os.path.exists(os.path.join(directory, CLEANER_NAME))
    for name in sorted(os.listdir(directory)):
        m = _CLEANER_LEFTOVER.match(name)
        if m is not None:
            check.repairs.append(f"remove {name}, a cleaned segment whose swap never started" if m.group(3) == "cleaned"
                                 else f"finish the cleaner's swap {name}")
            if m.group(3) == "swap":
                bases = [b for b in bases if not int(m.group(1)) < b < int(m.group(2))]
    state, problem = state_problem(directory)
    check.state, check.state_problem = state, problem

    try:
        log_start = read_log_start(directory, topic, partition)
        log_start_damaged = False
    except CorruptionError:
        log_start, log_start_damaged = 0, True
    if bases:
        for i, base in enumerate(bases[:-1]):
            if bases[i + 1] <= log_start:
                check.below_log_start.append(base)
                check.repairs.append(f"delete segment {log_name(base)}, wholly below the log start offset "
                                     f"{log_start} (a retention pass stopped before unlinking it)")
        bases = [b for b in bases if b not in check.below_log_start]
    check.log_start_offset = max(log_start, bases[0]) if bases else log_start

    if not bases:
        if state is not None and state.log_end_offset > state.active_base:
            check.damage_at.append((directory, None, state.active_base))
            check.damage.append(f"{directory} holds no segment, yet its partition state records log end offset "
                                f"{state.log_end_offset}; the records are gone. `logbroker topics delete {topic}` "
                                f"and re-create it, or restore the segment files")
        check.log_end_offset = state.log_end_offset if state is not None else log_start
        _log_start_finding(check, log_start_damaged, log_start)
        return check

    # The active segment, as a writer would find it (see tail_problem, which a writer runs before its first append).
    active = bases[-1]
    if state is not None and state.active_base > active and state.log_end_position == 0:
        _tail_work(check, f"create the active segment {log_name(state.active_base)} the partition state records "
                          f"(a roll stopped before creating it)")
        active = state.active_base
        bases = bases + [active]
    elif state is not None and state.active_base in bases and state.active_base != active:
        later = [b for b in bases if b > state.active_base]
        if all(os.path.getsize(os.path.join(directory, log_name(b))) == 0 for b in later):
            _tail_work(check, f"remove empty segment(s) {', '.join(log_name(b) for b in later)} past the recorded "
                              f"active segment (a roll stopped before recording them)")
            bases = [b for b in bases if b <= state.active_base]
            active = state.active_base
    trusted = state is not None and state.active_base == active

    expected = None
    for base in bases:
        path = os.path.join(directory, log_name(base))
        if expected is not None and base != expected and not (compacted and expected < base):
            how = (f"offsets {expected} to {base - 1} are missing" if expected < base
                   else f"offsets {base} to {expected - 1} overlap")
            check.damage_at.append((path, 0, expected))
            check.damage.append(f"segment {log_name(base)} in {directory} does not continue the one before it: "
                                f"segment starts at {base} but the previous one ends before {expected} ({how}); "
                                f"segments of another log may be mixed into this partition. Copy the partition "
                                f"aside and read it with `logbroker inspect {directory} --print-records`")
        if base == active:
            _check_active(check, path, base, index_interval, state if trusted else None)
        else:
            result, size, fd = _scan(path, base, index_interval, gaps=compacted)
            try:
                seg = SegmentCheck(base, path, size, result.valid_end, result.next_offset, result.records, None)
                i = bases.index(base)
                # The last file is not the active segment when a roll recorded the next one and has
                # not created it yet (it stopped there, or a writer is rolling right now).
                nxt = bases[i + 1] if i + 1 < len(bases) else active
                if result.error is not None:
                    check.damage_at.append((path, result.valid_end, result.next_offset))
                    check.damage.append(f"corruption in closed segment {path} at position {result.valid_end} "
                                        f"(offset {result.next_offset}): {result.error}; closed segments are never "
                                        f"cut. Copy the partition aside and read it with `logbroker inspect "
                                        f"{directory} --print-records`")
                else:
                    # a compacted segment may end below the next base; its closing entry names that base
                    ends = result.next_offset == nxt or (compacted and result.next_offset < nxt)
                    entries = _index_sane(fd, directory, base, size, nxt if ends else result.next_offset)
                    if entries is None or not ends:
                        what = (f"rebuild the indexes of closed segment {log_name(base)} "
                                f"(missing, insane or pointing at no batch start)")
                        if not ends:
                            pass  # the gap is reported as damage above
                        elif check.writer_active and nxt == active:
                            # A roll appends the closing time-index entry after creating the new segment.
                            check.notes.append(f"{what} (a writer holds the partition lock: a roll may be finishing)")
                        else:
                            check.closed_indexes.append(base)
                            check.repairs.append(what)
                    else:
                        seg.index_entries = len(entries.offsets)
            finally:
                os.close(fd)
            check.segments.append(seg)
            expected = seg.next_offset
            continue
        expected = check.segments[-1].next_offset
    check.log_end_offset = check.segments[-1].next_offset
    _log_start_finding(check, log_start_damaged or log_start > check.log_end_offset, log_start)
    if compacted:
        _cleaner_offset_finding(check, directory)
    return check


def _tail_work(check: PartitionCheck, what: str) -> None:
    """A repair at the tail of the log, or a note when a writer is at work (it may be mid-roll)."""
    if check.writer_active:
        check.notes.append(f"{what} (a writer holds the partition lock: the tail may be changing)")
    else:
        check.active_work = True
        check.repairs.append(what)


def _cleaner_offset_finding(check: PartitionCheck, directory: str) -> None:
    """A damaged cleaner checkpoint stops every compaction pass: rewritten with the log start offset,
    the next pass takes the whole log as dirty (cleaning clean records again changes nothing) and
    removes no tombstone it would not have removed before (only those below the first dirty offset go)."""
    try:
        read_cleaner_offset(directory, check.topic, check.partition)
    except CorruptionError:
        check.rewrite_cleaner_offset = check.log_start_offset
        check.repairs.append(f"rewrite {CLEANER_NAME} with the log start offset {check.log_start_offset} (it was "
                             f"damaged): the next compaction pass cleans the whole log again")


def _log_start_finding(check: PartitionCheck, damaged: bool, log_start: int) -> None:
    if not damaged:
        return
    first = check.segments[0].base_offset if check.segments else (check.state.active_base if check.state else 0)
    check.rewrite_log_start = first
    check.log_start_offset = first
    check.repairs.append(f"rewrite {LOG_START_NAME} with the log start offset {first}, the first segment's base "
                         f"offset (it was damaged or beyond the log end)")


def _check_active(check: PartitionCheck, path: str, base: int, index_interval: int,
                  state: PartitionState | None) -> None:
    """The active segment against the partition state (None: missing, damaged or naming another segment)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        # Recorded by a roll that stopped before creating it: already listed in ``repairs``.
        check.segments.append(SegmentCheck(base, path, 0, 0, base, 0, 0, active=True))
        return
    try:
        size = os.fstat(fd).st_size
        result = scan_segment(fd, base, size, index_interval)
        seg = SegmentCheck(base, path, size, result.valid_end, result.next_offset, result.records, None, active=True)
        check.segments.append(seg)
        damage = tail_damage(fd, path, result, size, state.hw_position if state is not None else None)
        if damage is not None:
            check.active_damaged = True
            check.damage_at.append((path, result.valid_end, result.next_offset))
            check.damage.append(f"{damage}. Copy the partition aside and read it with `logbroker inspect "
                                f"{check.directory} --print-records`")
            return
        work = []
        if result.valid_end < size:
            check.truncated_bytes = size - result.valid_end
            lost = ""
            if state is not None and result.next_offset < state.high_watermark:
                lost = (f"; records {result.next_offset} to {state.high_watermark - 1} were below the high "
                        f"watermark and are lost")
            work.append(f"truncated {size - result.valid_end} bytes of torn tail at position {result.valid_end} of "
                        f"{path} (offset {result.next_offset}): {result.error}{lost}")
        if state is None:
            if check.state_problem == "missing or empty" and size == 0 and not any(
                    s.size for s in check.segments):
                pass  # a partition never written to (no segment holds a byte): nothing to rebuild
            else:
                work.append(f"rebuild the partition state ({STATE_NAME} is {check.state_problem or 'stale'}) from "
                            f"the segments: log end offset {result.next_offset}")
        else:
            leo, hw = state.log_end_offset, state.high_watermark
            if result.next_offset > leo:
                work.append(f"keep {result.next_offset - leo} records (offsets {leo} to {result.next_offset - 1}) "
                            f"found past the recorded log end offset {leo}: whole valid batches of a writer that "
                            f"stopped before recording them (never acknowledged)")
            elif result.next_offset < leo and result.valid_end == size:
                work.append(f"{path} ends at offset {result.next_offset}, before the recorded log end offset {leo}: "
                            f"records {result.next_offset} to {leo - 1} are gone; the state is rebuilt")
            elif result.valid_end == size and (result.valid_end != state.log_end_position
                                               or result.last_batch_position != state.last_batch_position):
                work.append(f"rewrite the partition state: its positions disagree with {path}")
            if hw < min(leo, result.next_offset):
                if check.writer_active:
                    check.notes.append(f"records {hw} to {min(leo, result.next_offset) - 1} are past the high "
                                       f"watermark {hw} while a writer holds the lock (not synced yet)")
                else:
                    work.append(f"make records {hw} to {min(leo, result.next_offset) - 1} durable and visible: "
                                f"they are past the high watermark {hw} (a writer stopped between its write and "
                                f"its fsync)")
        if size and _index_sane(fd, check.directory, base, result.valid_end, None) is None:
            work.append(f"rebuild the indexes of the active segment {log_name(base)} (missing, insane or pointing "
                        f"at no batch start)")
        elif size:
            seg.index_entries = len(load_index(os.path.join(check.directory, index_name(base)),
                                               os.path.join(check.directory, timeindex_name(base)),
                                               base, max(result.valid_end, 1)).offsets)
        for what in work:
            _tail_work(check, what)
    finally:
        os.close(fd)
