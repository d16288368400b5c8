"""The log cleaner: one compaction pass over one partition (Kafka's ``LogCleaner``).

Files owned: ``.cleaner.lock``, ``cleaner-offset-checkpoint``, ``<base>.<next>.cleaned`` and
``<base>.<next>.swap`` in a partition directory, and the closed segments it replaces
(FORMAT.md, "Compacted logs": the pass, the swap protocol and its recovery).

Concurrency contract:

- One cleaner per partition: a pass holds ``.cleaner.lock`` (non-blocking; a second cleaner skips
  the partition and says so). It reads closed segments without the partition lock (closed segments
  change only through retention, ``delete-records`` or a cleaner) and takes the partition lock only
  for each group's swap, so appends wait for renames and unlinks, never for the rewrite.
- Before a swap, every old segment of the group must still be there with the size it was read at;
  otherwise the group is skipped (retention or ``delete-records`` ran meanwhile).
- Readers take no lock: at every instant, ``<base>.log`` is the old segment or the complete new one,
  and old segments of a group are unlinked only after the new one is in place.

What decides what is kept is in :mod:`logbroker.storage.compaction` (pure functions).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Iterator

import orjson

from . import fsutil
from .checkpoint import read_cleaner_offset, read_log_start, write_cleaner_offset
from .compaction import group_segments, keep_record, plan_cleaning
from ..errors import CorruptionError
from .index import IndexEntries, write_index
from .policy import SegmentInfo
from .record import BadBatch, batch_raw_lines, rebatch
from .segment import index_name, iter_batches, list_segments, log_name, scan_segment, timeindex_name

__all__ = ["CleaningReport", "clean_partition", "finish_swaps", "CLEANER_LOCK"]

CLEANER_LOCK = ".cleaner.lock"
_LEFTOVER = re.compile(r"(\d{20})\.(\d{20})\.(cleaned|swap)\Z")
_loads = orjson.loads


def _cleaned_name(base: int, next_offset: int) -> str:
    return f"{base:020d}.{next_offset:020d}.cleaned"


def _swap_name(base: int, next_offset: int) -> str:
    return f"{base:020d}.{next_offset:020d}.swap"


@dataclass(slots=True)
class CleaningReport:
    """What one pass over one partition did (or, with ``dry_run``, would do)."""

    topic: str
    partition: int
    ran: bool = False
    dry_run: bool = False
    reason: str = ""
    dirty_ratio: float = 0.0
    first_dirty_offset: int = 0  # before the pass
    end_offset: int = 0  # the first dirty offset after the pass (end of the cleanable range)
    segments_before: int = 0
    segments_after: int = 0
    records_before: int = 0
    records_after: int = 0
    tombstones_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    skipped_groups: int = 0
    actions: list[str] = field(default_factory=list)  # swaps finished, leftovers removed

    @property
    def bytes_reclaimed(self) -> int:
        return self.bytes_before - self.bytes_after

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["bytes_reclaimed"] = self.bytes_reclaimed
        return out


def clean_partition(log, now: int | None = None, dry_run: bool = False, force: bool = False) -> CleaningReport:
    """Run one cleaning pass over ``log`` (a :class:`~logbroker.storage.log.PartitionLog`).

    The pass runs when the rules of :func:`~logbroker.storage.compaction.plan_cleaning` say so (``force``:
    whatever the dirty ratio). Raises CorruptionError when a segment it reads is damaged (nothing
    is replaced then).
    """
    now = int(time.time() * 1000) if now is None else now
    report = CleaningReport(log.topic, log.partition, dry_run=dry_run)
    lock = fsutil.try_lock_path(os.path.join(log.directory, CLEANER_LOCK))
    if lock is None:
        report.reason = "another cleaner is running on this partition"
        return report
    try:
        if not dry_run:
            report.actions = finish_swaps(log)
        log_start = read_log_start(log.directory, log.topic, log.partition)
        recorded = read_cleaner_offset(log.directory, log.topic, log.partition)
        first_dirty = log_start if recorded is None else max(recorded, log_start)
        plan = plan_cleaning(log.segment_infos(), log.config, now, first_dirty, force)
        report.reason, report.dirty_ratio = plan.reason, plan.dirty_ratio
        report.first_dirty_offset, report.end_offset = first_dirty, plan.end_offset
        if not plan.run:
            return report
        report.ran = True
        if recorded is None and not dry_run:
            # Written before the first swap: from now on gaps in this partition are compaction's
            # (inspect --verify relies on it).
            write_cleaner_offset(log.directory, log.topic, log.partition, first_dirty)
        try:
            latest = _offset_map(log.directory, plan.segments, log_start)
            for group in group_segments(plan.segments, log.config.segment_bytes):
                _clean_group(log, group, latest, log_start, first_dirty, now, dry_run, report)
        except FileNotFoundError as exc:
            # Retention or delete-records removed a segment while it was being read: the groups
            # swapped so far stand, the rest is left for the next pass.
            report.skipped_groups += 1
            report.reason = f"{os.path.basename(exc.filename or '?')} was deleted during the pass; the rest is left for the next pass"
        if not dry_run and not report.skipped_groups:
            write_cleaner_offset(log.directory, log.topic, log.partition, plan.end_offset)
        return report
    finally:
        lock.close()


def finish_swaps(log, locked: bool = False) -> list[str]:
    """Recovery of the swap protocol: delete every ``.cleaned`` file, finish every ``.swap``.

    Takes the partition lock unless the caller holds it (``locked``). Returns what it did.
    """
    if not locked:
        with log.locked():
            return finish_swaps(log, locked=True)
    actions = []
    for name in sorted(os.listdir(log.directory)):
        m = _LEFTOVER.match(name)
        if m is None:
            continue
        base, next_offset, kind = int(m.group(1)), int(m.group(2)), m.group(3)
        if kind == "cleaned":
            fsutil.remove_file(os.path.join(log.directory, name))
            actions.append(f"removed {name}, a cleaned segment whose swap never started")
        else:
            _finish_swap(log, base, next_offset, None)
            actions.append(f"finished the swap of {name} (segments {base} to {next_offset})")
    if actions:
        fsutil.sync_dir(log.directory)
    return actions


# -- the pass ----------------------------------------------------------------------------------

def _lines(directory: str, seg: SegmentInfo) -> Iterator[tuple[list[bytes], list[dict], bytes]]:
    """Every batch of a closed segment: its raw lines, their parsed fields, and its bytes."""
    path = os.path.join(directory, log_name(seg.base_offset))
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        for buf, start, _first, _rest, end, fpos in iter_batches(fd, 0, seg.size):
            raw = batch_raw_lines(buf, start, end)
            yield raw, [_loads(line) for line in raw], buf[start:end]
    except BadBatch as exc:
        raise CorruptionError(f"the cleaner found corruption in {path} at position {exc.position}: "
                              f"{exc.reason}; nothing was replaced", path=path, position=exc.position) from None
    finally:
        os.close(fd)


def _key_of(line: dict) -> tuple | None:
    key = line["key"]
    return None if key is None else (line.get("kenc"), key)


def _offset_map(directory: str, segments: tuple[SegmentInfo, ...], log_start: int) -> dict[tuple, int]:
    """Each key's highest offset in the cleanable range (Kafka's ``OffsetMap``)."""
    latest: dict[tuple, int] = {}
    for seg in segments:
        for _raw, lines, _data in _lines(directory, seg):
            for line in lines:
                key = _key_of(line)
                if key is not None and line["offset"] >= log_start:
                    latest[key] = line["offset"]
    return latest


def _kept_batches(directory: str, group: list[SegmentInfo], latest: dict[tuple, int], log_start: int,
                  first_dirty: int, now: int, config, report: CleaningReport) -> Iterator[bytes]:
    """The bytes of the group's new segment, batch by batch (runs of kept records of one old batch)."""
    for seg in group:
        for raw, lines, data in _lines(directory, seg):
            keep = []
            for line in lines:
                key = _key_of(line)
                tombstone = line.get("venc") == "null"
                kept = keep_record(line["offset"], key is not None, tombstone, line["timestamp"],
                                   latest.get(key) if key is not None else None, log_start, first_dirty, now, config)
                keep.append(kept)
                report.records_before += 1
                if kept:
                    report.records_after += 1
                elif tombstone and latest.get(key) == line["offset"]:
                    report.tombstones_removed += 1
            if all(keep):
                yield data  # untouched: same bytes, same checksums
                continue
            i = 0
            while i < len(keep):
                if not keep[i]:
                    i += 1
                    continue
                j = i
                while j < len(keep) and keep[j]:
                    j += 1
                yield rebatch(raw[i:j], was_first=i == 0 and len(raw) > 1)
                i = j


def _clean_group(log, group: list[SegmentInfo], latest: dict[tuple, int], log_start: int, first_dirty: int,
                 now: int, dry_run: bool, report: CleaningReport) -> None:
    base, next_offset = group[0].base_offset, group[-1].next_offset
    report.segments_before += len(group)
    report.segments_after += 1
    report.bytes_before += sum(s.size for s in group)
    batches = _kept_batches(log.directory, group, latest, log_start, first_dirty, now, log.config, report)
    if dry_run:
        report.bytes_after += sum(map(len, batches))
        return
    cleaned = os.path.join(log.directory, _cleaned_name(base, next_offset))
    fsutil.remove_file(cleaned)
    fd = os.open(cleaned, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        pending: list[bytes] = []
        size = 0
        for data in batches:
            pending.append(data)
            size += len(data)
            if size >= 1 << 20:
                fsutil.append_all(fd, pending, cleaned)
                pending, size = [], 0
        if pending:
            fsutil.append_all(fd, pending, cleaned)
        fsutil.sync_file(fd, cleaned)
        total = os.fstat(fd).st_size
        entries = _index_of(fd, base, next_offset, total, log.config.index_interval_bytes, cleaned)
    except BaseException:
        os.close(fd)
        fsutil.remove_file(cleaned)
        raise
    os.close(fd)
    report.bytes_after += total
    with log.locked():
        if not all(_size_or_none(os.path.join(log.directory, log_name(s.base_offset))) == s.size for s in group):
            fsutil.remove_file(cleaned)
            report.skipped_groups += 1
            report.actions.append(f"skipped segments {base} to {next_offset}: they changed during the pass")
            return
        swap = os.path.join(log.directory, _swap_name(base, next_offset))
        fsutil.rename_durably(cleaned, swap)  # the commit point
        _finish_swap(log, base, next_offset, entries)


def _size_or_none(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return None


def _index_of(fd: int, base: int, next_offset: int, size: int, interval: int, path: str) -> IndexEntries:
    """The sparse indexes of a cleaned segment, checking every batch of it once more."""
    result = scan_segment(fd, base, size, interval, gaps=True)
    if result.error is not None or result.next_offset > next_offset:
        raise CorruptionError(f"cleaned segment {path} does not verify at position {result.valid_end}: "
                              f"{result.error or 'offsets past the group'}", path=path, position=result.valid_end)
    result.entries.closing = (result.max_timestamp, next_offset)
    return result.entries


def _finish_swap(log, base: int, next_offset: int, entries: IndexEntries | None) -> None:
    """Steps 4-8 of the swap (FORMAT.md), each idempotent. Partition lock held."""
    directory = log.directory
    swap = os.path.join(directory, _swap_name(base, next_offset))
    fsutil.remove_file(os.path.join(directory, index_name(base)))
    fsutil.remove_file(os.path.join(directory, timeindex_name(base)))
    fsutil.replace_keeping(swap, os.path.join(directory, log_name(base)))
    for other in list_segments(directory):
        if base < other < next_offset:
            log.delete_segment(other)
    fsutil.sync_dir(directory)
    if entries is None:
        fd = os.open(os.path.join(directory, log_name(base)), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            entries = _index_of(fd, base, next_offset, os.fstat(fd).st_size, log.config.index_interval_bytes, swap)
        finally:
            os.close(fd)
    write_index(os.path.join(directory, index_name(base)), os.path.join(directory, timeindex_name(base)), entries)
    fsutil.remove_file(swap)
    fsutil.sync_dir(directory)
