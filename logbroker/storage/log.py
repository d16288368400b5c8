"""One partition's log: append, roll, recover and retain (Kafka's ``UnifiedLog`` for one partition).

Files owned: everything in ``<topic>/<topic>-<p>/`` (FORMAT.md).

Concurrency contract:

- Any number of processes may hold a :class:`PartitionLog` for the same partition. Every mutation
  (append, roll, flush, retention, recovery) happens under the partition's exclusive ``flock`` on
  ``.lock``, and starts by reading the partition state, so each process appends where the last
  writer, whoever it was, stopped. Nothing a writer caches outlives its hold of the lock except open
  file descriptors, which are reopened when the state names another active segment.
- Before its first append a process checks the tail: the file must end exactly where the state says
  and its last batch must be intact. Otherwise the active segment is recovered: torn bytes are cut,
  the index is rebuilt, and the cut is reported (see :class:`RecoveryReport`). The rules live in
  :mod:`logbroker.storage.recovery`; this module opens the files, holds the lock and records the state.
- Invariants after every mutation: offsets contiguous from the log start offset, every byte of every
  segment part of a whole valid batch, high watermark <= log end offset, and the high watermark only
  moves past records that are durable under the fsync policy.
- Reads (:mod:`logbroker.storage.reader`) take no lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from . import fsutil
from .checkpoint import PartitionState, StateFile, read_log_start, write_cleaner_offset, write_log_start
from .config import DEFAULT_MAX_BLOCK_MS, TopicConfig
from ..errors import (CorruptionError, FencedError, FsyncError, InvalidRecordError, LogBrokerError,
                     OffsetOutOfRangeError, RecordTooLargeError, UnsafePathError)
from .fsutil import FsyncPolicy
from .recovery import (PartitionCheck, RecoveryReport, check_partition, rebuild_closed_index, recover_active,
                       tail_problem)
from .index import load_index
from .policy import SegmentInfo, segments_to_delete, should_roll
from .record import EncodedBatch, PendingRecord, TailGroup, encode_records, encode_tails, encode_values
from .segment import (Segment, delete_segment, index_name, list_segments, log_name, segment_max_timestamp,
                      timeindex_name)

if TYPE_CHECKING:
    from .topic import TopicIdentity  # topic sits above log

__all__ = ["PartitionLog", "RecoveryReport", "RetentionReport", "AppendResult", "partition_dir_name"]

def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class RetentionReport:
    topic: str
    partition: int
    deleted: list[SegmentInfo] = field(default_factory=list)
    reason: str = ""
    log_start_offset: int = 0

    @property
    def bytes_freed(self) -> int:
        return sum(s.size for s in self.deleted)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an appended batch landed: offsets ``base_offset`` .. ``base_offset + count - 1``."""

    partition: int
    base_offset: int
    count: int
    timestamp: int


class PartitionLog:
    """The writable log of one partition. See the module docstring for the contract."""

    def __init__(self, topic: str, partition: int, directory: str, config: TopicConfig,
                 identity: TopicIdentity | None = None, max_block_ms: int | None = DEFAULT_MAX_BLOCK_MS) -> None:
        fsutil.check_not_symlink(directory, "partition directory")
        if not os.path.isdir(directory):
            if identity is not None:
                identity.check(partition)
            raise UnsafePathError(f"partition directory {directory} is missing", path=directory)
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.config = config
        # Checked under the lock before any file is touched (see :meth:`locked`).
        self._identity = identity
        #: How long a mutation waits for the partition lock before LockTimeoutError (Kafka's
        #: max.block.ms; None: for ever). The wait says after a second who holds the lock.
        self.max_block_ms = max_block_ms
        try:
            self._lock = fsutil.FileLock(os.path.join(directory, ".lock"), record_holder=True)
            self._state_file = StateFile(directory, create=True)
        except FileNotFoundError:
            if identity is not None:
                identity.check(partition)
            raise
        self._active: Segment | None = None  # the active segment, open for append
        self._verified = False  # the tail was checked by this process
        self._fenced: str | None = None
        self._last_sync = time.monotonic()
        self.last_recovery: RecoveryReport | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def fenced(self) -> str | None:
        """Why this log refuses appends and flushes (FencedError), or None. Set by a failed fsync
        (Kafka's answer: the page cache may have dropped the failed pages, so only a reopen, which
        checks the tail, may write again) or by :meth:`fence`."""
        return self._fenced

    def fence(self, reason: str) -> None:
        """Refuse appends and flushes from now on, for ``reason``: how a fenced log closed for want
        of descriptors (see :mod:`logbroker.storage.handles`) stays fenced when opened again."""
        self._fenced = reason

    def close(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None
        self._state_file.close()
        self._lock.close()

    def __enter__(self) -> "PartitionLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending ---------------------------------------------------------------------------

    def append(self, records: list[PendingRecord], policy: FsyncPolicy | None = None) -> list[AppendResult]:
        """Append ``records`` in order; returns one result per batch written.

        Records are grouped into batches of at most ``max.message.bytes``; each batch is one
        ``write``. Raises RecordTooLargeError (nothing written) when one record alone is too large,
        DiskFullError (the batch undone), FsyncError (not acknowledged; the log is fenced).
        """
        if not records:
            return []
        if self.config.compact and any(key_json == b"null" for _ts, key_json, *_ in records):
            raise self._keyless()
        limit = self.config.max_message_bytes
        return self._append(lambda base: encode_records(base, records, limit), policy)

    def append_batches(self, groups: list[list[PendingRecord]], policy: FsyncPolicy | None = None) -> list[AppendResult]:
        """:meth:`append` of several producer batches at once, in order: each group is encoded as
        its own batch(es), all are written under one hold of the lock and covered by one fsync
        (group commit). Results are per batch written, in order."""
        if len(groups) == 1:
            return self.append(groups[0], policy)
        if self.config.compact and any(key_json == b"null" for records in groups for _ts, key_json, *_ in records):
            raise self._keyless()
        limit = self.config.max_message_bytes

        def encode(base: int) -> list[EncodedBatch]:
            out: list[EncodedBatch] = []
            for records in groups:
                out += encode_records(base, records, limit)
                base += len(records)
            return out
        return self._append(encode, policy)

    def append_tails(self, groups: list[TailGroup], policy: FsyncPolicy | None = None) -> list[AppendResult]:
        """:meth:`append_batches` of producer batches whose records the producer already encoded up
        to their offsets (:func:`~logbroker.storage.record.encode_tails`): one write sequence and one
        fsync for all of them. The producer refuses records without a key for a compacted topic."""
        limit = self.config.max_message_bytes

        def encode(base: int) -> list[EncodedBatch]:
            out: list[EncodedBatch] = []
            for group in groups:
                out += encode_tails(base, group, limit)
                base += len(group.tails)
            return out
        return self._append(encode, policy)

    def _keyless(self) -> InvalidRecordError:
        return InvalidRecordError(f"Compacted topic cannot accept message without key in topic partition "
                                  f"{self.topic}-{self.partition} (cleanup.policy={self.config.cleanup_policy})",
                                  topic=self.topic, partition=self.partition)

    def append_values(self, values: list, timestamp: int, key_json: bytes, headers_json: bytes,
                      policy: FsyncPolicy | None = None) -> list[AppendResult]:
        """:meth:`append` for values not encoded yet that share one timestamp, key and headers.

        The values are serialized under the partition lock, straight into their lines (see
        :func:`~logbroker.storage.record.encode_values`): the bulk path of ``Producer.send_batch``. A value
        JSON cannot hold raises InvalidRecordError and nothing is written.
        """
        if not values:
            return []
        if self.config.compact and key_json == b"null":
            raise self._keyless()
        limit = self.config.max_message_bytes
        return self._append(lambda base: encode_values(base, values, timestamp, key_json, headers_json, limit),
                            policy)

    def _append(self, encode: Callable[[int], list[EncodedBatch]], policy: FsyncPolicy | None) -> list[AppendResult]:
        """Write the batches ``encode(log end offset)`` returns, under the lock; all or nothing,
        except that batches made durable by a roll stay (reported in the error's ``appended``)."""
        if self._fenced:
            raise FencedError(self._fenced, topic=self.topic, partition=self.partition)
        policy = policy or FsyncPolicy(self.config.fsync, self.config.flush_ms)
        results = []
        with self.locked():
            state = self._writer_state()
            try:
                batches = encode(state.log_end_offset)
            except RecordTooLargeError as exc:
                raise RecordTooLargeError(f"{exc} (topic {self.topic}, partition {self.partition})",
                                          topic=self.topic) from None
            # What an error undoes: the batches of this call since ``undo`` (a roll makes the
            # ones before it durable and recorded, so they stay and are reported in ``appended``).
            undo, kept = state, 0
            try:
                for parts, nbytes, count, first_ts, max_ts in batches:  # EncodedBatch
                    if should_roll(self.config, state.log_end_position, nbytes, state.first_timestamp, max_ts):
                        state = self._roll(state)
                        undo, kept = state, len(results)
                    state = self._write_batch(state, parts, nbytes, count, first_ts, max_ts)
                    results.append(AppendResult(self.partition, state.log_end_offset - count, count, first_ts))
            except LogBrokerError as exc:
                if len(results) > kept and not isinstance(exc, FsyncError):
                    self._undo(undo)
                exc.appended = results[:kept]
                raise
            if policy.visible_before_sync:
                state = _with_hw(state)
            elif policy.due(self._last_sync, time.monotonic()):
                self._sync(self._active)
                state = _with_hw(state)
            self._state_file.write(state)
        return results

    def _undo(self, state: PartitionState) -> None:
        """Cut the active segment and its indexes back to ``state`` (batches of a failed call)."""
        active = self._active
        os.ftruncate(active.fd, state.log_end_position)
        entries = load_index(os.path.join(self.directory, index_name(active.base)),
                             os.path.join(self.directory, timeindex_name(active.base)), active.base, 1 << 62)
        if entries is not None:
            entries.truncate_to_position(state.log_end_position)
            active.rewrite_indexes(entries)
        self._state_file.write(state)

    def flush(self) -> None:
        """Make everything appended so far durable and visible (fsync, then move the high watermark)."""
        if self._fenced:
            raise FencedError(self._fenced, topic=self.topic, partition=self.partition)
        with self.locked():
            state = self._writer_state()
            if state.high_watermark < state.log_end_offset:
                self._sync(self._active)
                self._state_file.write(_with_hw(state))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the partition's exclusive lock for the body of a ``with`` block: every change to the
        partition's files (append, roll, retention, recovery, the cleaner's swap) happens inside one.

        Waits at most ``max_block_ms`` (then LockTimeoutError naming the holder). Not reentrant: a
        body must not call a method of this log that takes the lock itself (those documented as
        "lock held" expect it held). Any failed fsync inside (data, directory, checkpoint) fences the
        log (see :attr:`fenced`).

        The topic's identity is checked first, under the lock: if it passes, every descriptor this
        log holds is of the topic it opened, and until the lock is released the topic's path names
        that topic or nothing (deletion waits for this lock before its files go, and creation waits
        for the deletion), so nothing opened by path in here can land in a topic created since.
        """
        self._lock.acquire_within(None if self.max_block_ms is None else self.max_block_ms / 1000,
                                  f"the lock of partition {self.topic}-{self.partition}")
        try:
            identity = self._identity
            if identity is not None:
                identity.check(self.partition)
            try:
                yield
            except FsyncError as exc:
                self._fenced = (f"partition {self.topic}-{self.partition} refuses appends after a failed "
                                f"fsync ({exc}); reopen it to recover")
                raise
            except (FileNotFoundError, NotADirectoryError):
                # The topic was renamed away after the check: the path names nothing now.
                if identity is not None:
                    identity.check(self.partition)
                raise
        finally:
            self._lock.release()

    def _sync(self, segment: Segment) -> None:
        """fdatasync a segment's ``.log`` (lock held: a failure fences the partition through :meth:`locked`)."""
        fsutil.sync_file(segment.fd, segment.path)
        self._last_sync = time.monotonic()

    def _write_batch(self, state: PartitionState, parts: tuple[bytes, ...], nbytes: int, count: int,
                     first_ts: int, max_ts: int) -> PartitionState:
        active = self._active
        position = state.log_end_position
        active.append(parts)
        last_index = state.last_index_position
        if position - last_index > self.config.index_interval_bytes:
            active.add_index_entry(state.log_end_offset, position, state.max_timestamp)
            last_index = position
        return PartitionState(
            active_base=active.base,
            log_end_offset=state.log_end_offset + count,
            log_end_position=position + nbytes,
            last_batch_position=position,
            high_watermark=state.high_watermark,
            hw_position=state.hw_position,
            last_index_position=last_index,
            max_timestamp=max(state.max_timestamp, max_ts),
            first_timestamp=state.first_timestamp if state.first_timestamp >= 0 else first_ts,
        )

    def _roll(self, state: PartitionState) -> PartitionState:
        """Close the active segment and start a new one at the log end offset.

        Order matters, because another writer may take the lock after a crash anywhere in here:
        sync the old segment, then record the new one in the state (from that instant every writer
        appends to the new segment, and creates its file if this process died first), then create
        the files and sync the directory, and only then add the old segment's closing time-index
        entry (an optional shortcut: lookups without it scan).
        """
        old = self._active
        self._sync(old)
        new_base = state.log_end_offset
        new_state = PartitionState(active_base=new_base, log_end_offset=new_base, high_watermark=new_base)
        self._state_file.write(new_state)
        # Only once the new files are open does the old segment stop being ours to close.
        self._active = Segment.open_append(self.directory, new_base)
        try:
            if self._active.size():
                raise CorruptionError(
                    f"cannot roll {self.topic}-{self.partition}: {self._active.path} already holds data "
                    f"that no partition state recorded", path=self._active.path)
            fsutil.sync_dir(self.directory)
            old.close_timeindex(state.max_timestamp, state.log_end_offset)
        finally:
            old.close()
        return new_state

    # -- state and recovery ------------------------------------------------------------------

    def _writer_state(self) -> PartitionState:
        """The state, validated against the files, with the active segment open. Lock held."""
        state = self._state_file.read_or_none()
        if state is None or not self._verified:
            state = self._check_tail(state)
        if self._active is None or self._active.base != state.active_base:
            if self._active is not None:
                self._active.close()
                self._active = None  # so that a failing open below leaves nothing to close twice
            self._active = Segment.open_append(self.directory, state.active_base)
            if self._active.created:
                fsutil.sync_dir(self.directory)  # a roll recorded this segment but died before creating it
        size = self._active.size()
        if size != state.log_end_position:
            state = self._recover_active(state, f"segment size {size} differs from the recorded log end "
                                                f"position {state.log_end_position}")
        return state

    def _check_tail(self, state: PartitionState | None) -> PartitionState:
        """First append of this process (or lost state): verify the last batch, recover if needed."""
        bases = list_segments(self.directory)
        if not bases:
            self._create_first_segment()
            bases = [read_log_start(self.directory, self.topic, self.partition)]
        if state is not None and state.active_base > bases[-1] and state.log_end_position == 0:
            # A roll recorded its new segment, then died before creating the file: create it.
            Segment.open_append(self.directory, state.active_base).close()
            fsutil.sync_dir(self.directory)
            bases.append(state.active_base)
        if state is not None and state.active_base in bases and state.active_base != bases[-1]:
            later = [b for b in bases if b > state.active_base]
            if all(os.path.getsize(os.path.join(self.directory, log_name(b))) == 0 for b in later):
                # Empty segments past the one the state names: a roll that died before recording
                # them. Nothing was ever appended there; remove them so offsets stay unique.
                for b in later:
                    self.delete_segment(b)
                fsutil.sync_dir(self.directory)
                bases = [b for b in bases if b <= state.active_base]
        if state is None or state.active_base != bases[-1]:
            if self._active is not None:
                self._active.close()
            self._active = None
            fresh = state is None and os.path.getsize(os.path.join(self.directory, log_name(bases[-1]))) == 0
            state = self._recover_active(PartitionState(active_base=bases[-1]),
                                         None if fresh else "partition state missing or stale", trusted=False)
        else:
            active = Segment.open_append(self.directory, state.active_base)
            if self._active is not None:
                self._active.close()
            self._active = active
            why = tail_problem(active, state, self.config.index_interval_bytes)
            if why is not None:
                state = self._recover_active(state, why)
            elif state.high_watermark < state.log_end_offset:
                # A writer died between its write and its sync: make its records durable now.
                self._sync(active)
                state = _with_hw(state)
                self._state_file.write(state)
        self._verified = True
        return state

    def _create_first_segment(self) -> None:
        base = read_log_start(self.directory, self.topic, self.partition)
        Segment.open_append(self.directory, base).close()
        fsutil.sync_dir(self.directory)

    def _recover_active(self, state: PartitionState, why: str | None, trusted: bool = True) -> PartitionState:
        """Open the active segment named by ``state`` and recover it (:func:`~logbroker.storage.recovery.recover_active`);
        records the new state and the report. Lock held."""
        base = state.active_base
        if self._active is None or self._active.base != base:
            if self._active is not None:
                self._active.close()
                self._active = None
            self._active = Segment.open_append(self.directory, base)
        new_state, report = recover_active(self._active, state, why, self.config.index_interval_bytes,
                                           self.topic, self.partition, trusted)
        self._state_file.write(new_state)
        self.last_recovery = report
        return new_state

    def check(self) -> PartitionCheck:
        """The partition's :func:`~logbroker.storage.recovery.check_partition`, under the lock (no change made)."""
        with self.locked():
            return check_partition(self.directory, self.topic, self.partition, self.config.index_interval_bytes)

    def recover(self) -> RecoveryReport:
        """Full recovery: check the partition (:mod:`logbroker.storage.recovery`), apply exactly the repairs the
        check lists, and check again. Damage the check reports is left alone and returned in
        ``problems``. Raises CorruptionError (its ``report`` attribute holds the report) when damage
        was found, after every other repair was made; a repair that did not take raises too (recover
        and inspect must agree)."""
        report = RecoveryReport(self.topic, self.partition)
        with self.locked():
            # Reopen the state file: the one this process opened may have been deleted since.
            self._state_file.close()
            self._state_file = StateFile(self.directory, create=True)
            from .cleaner import finish_swaps  # the cleaner sits above the log; its swaps first
            swaps = finish_swaps(self, locked=True)
            check = check_partition(self.directory, self.topic, self.partition, self.config.index_interval_bytes)
            report.actions = swaps + list(check.repairs)
            report.problems = list(check.damage)
            report.truncated_bytes = check.truncated_bytes
            if check.repairs:
                self._repair(check)
                after = check_partition(self.directory, self.topic, self.partition, self.config.index_interval_bytes)
                if after.repairs:
                    raise LogBrokerError(f"recovery of {self.topic}-{self.partition} left work undone: "
                                         f"{after.repairs[0]}", topic=self.topic, partition=self.partition)
        self.last_recovery = report
        if check.damage:
            path, position, offset = check.damage_at[0]
            exc = CorruptionError(check.damage[0], path=path, position=position, offset=offset,
                                  topic=self.topic, partition=self.partition)
            exc.report = report
            raise exc
        return report

    def _repair(self, check: PartitionCheck) -> None:
        """Apply the repairs of ``check`` (lock held)."""
        for name in check.temp_files:
            fsutil.remove_file(os.path.join(self.directory, name))
        if check.rewrite_log_start is not None:
            write_log_start(self.directory, self.topic, self.partition, check.rewrite_log_start)
        if check.rewrite_cleaner_offset is not None:
            write_cleaner_offset(self.directory, self.topic, self.partition, check.rewrite_cleaner_offset)
        for base in check.below_log_start:
            self.delete_segment(base)
        if check.below_log_start or check.temp_files:
            fsutil.sync_dir(self.directory)
        for base in check.closed_indexes:
            rebuild_closed_index(self.directory, base, self.config.index_interval_bytes)
        if check.active_work and not check.active_damaged:
            self._verified = False
            self.last_recovery = None
            state = self._check_tail(self._state_file.read_or_none())
            if self.last_recovery is None:
                # The tail check found the state sound (or only synced it): rescan anyway, so the
                # index and every position are rebuilt from the bytes.
                self._recover_active(state, None)

    # -- retention ---------------------------------------------------------------------------

    def segment_infos(self) -> list[SegmentInfo]:
        """Every segment with its size and newest timestamp, oldest first (the last is active)."""
        bases = list_segments(self.directory)
        state = self._state_file.read_or_none()
        infos = []
        for i, base in enumerate(bases):
            path = os.path.join(self.directory, log_name(base))
            try:
                size = os.path.getsize(path)
            except FileNotFoundError:
                continue
            if i + 1 < len(bases):
                next_offset = bases[i + 1]
                max_ts = segment_max_timestamp(self.directory, base, size)
            else:
                next_offset = state.log_end_offset if state else base
                max_ts = state.max_timestamp if state else -1
            infos.append(SegmentInfo(base, next_offset, size, max_ts))
        return infos

    def apply_retention(self, now: int | None = None, dry_run: bool = False) -> RetentionReport:
        """Delete the closed segments that retention.ms / retention.bytes expire (oldest first).

        The new log start offset is checkpointed before any file is unlinked, so a crash in between
        leaves files that the next recovery deletes, never a log start pointing at missing data.
        """
        now = now_ms() if now is None else now
        with self.locked():
            log_start = read_log_start(self.directory, self.topic, self.partition)
            infos = self.segment_infos()
            doomed, reason = segments_to_delete(infos, self.config, now, log_start)
            report = RetentionReport(self.topic, self.partition, doomed, reason, log_start)
            if not doomed or dry_run:
                if doomed:
                    report.log_start_offset = max(log_start, doomed[-1].next_offset)
                return report
            new_start = max(log_start, doomed[-1].next_offset)
            write_log_start(self.directory, self.topic, self.partition, new_start)
            for seg in doomed:
                self.delete_segment(seg.base_offset)
            fsutil.sync_dir(self.directory)
            report.log_start_offset = new_start
            return report

    def delete_records(self, before_offset: int) -> RetentionReport:
        """Kafka's DeleteRecords: advance the log start offset to ``before_offset`` (-1: the high
        watermark) and delete the closed segments wholly below it.

        The checkpoint is written before any unlink (as retention does). An offset above the high
        watermark raises OffsetOutOfRangeError; one at or below the log start offset changes nothing.
        """
        with self.locked():
            state = self._writer_state()
            hw = state.high_watermark
            target = hw if before_offset == -1 else before_offset
            if target < 0 or target > hw:
                raise OffsetOutOfRangeError(
                    f"cannot delete records of {self.topic}-{self.partition} before offset {before_offset}: "
                    f"the high watermark is {hw}", topic=self.topic, partition=self.partition,
                    offset=before_offset, log_end_offset=hw)
            log_start = read_log_start(self.directory, self.topic, self.partition)
            report = RetentionReport(self.topic, self.partition, [], "delete-records", log_start)
            if target <= log_start:
                return report
            write_log_start(self.directory, self.topic, self.partition, target)
            infos = self.segment_infos()
            report.deleted = [s for s in infos[:-1] if s.next_offset <= target]
            for seg in report.deleted:
                self.delete_segment(seg.base_offset)
            fsutil.sync_dir(self.directory)
            report.log_start_offset = target
            return report

    def delete_segment(self, base: int) -> None:
        """Delete the segment at ``base`` (its ``.log``, ``.index`` and ``.timeindex``; missing
        files are skipped). Lock held (:meth:`locked`), the log start offset already past the
        segment; the caller syncs the directory once after its last deletion."""
        delete_segment(self.directory, base)


def _with_hw(state: PartitionState) -> PartitionState:
    return PartitionState(state.active_base, state.log_end_offset, state.log_end_position,
                          state.last_batch_position, state.log_end_offset, state.log_end_position,
                          state.last_index_position, state.max_timestamp, state.first_timestamp)


