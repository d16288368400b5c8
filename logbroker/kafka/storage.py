"""The server's view of a data directory: topics, partition logs and readers, shared by every
connection of one ``logbroker serve`` process.

Contract: the server is one more process over the same files and locks (FORMAT.md), so what it
writes is what ``logbroker consume`` reads and the other way round. Everything runs on the event
loop's thread, appends included: the library's open-file LRU (:mod:`logbroker.storage.handles`) is not
thread-safe, and an append in a worker thread could see its log closed by a fetch's eviction. An
append under ``fsync=always`` therefore holds the loop for its fdatasync: one per group commit
(:meth:`Storage.append_soon`), shared by every produced batch of the partition queued when it runs. Under ``fsync=interval`` a flush is scheduled ``flush.ms`` after an append, so
records become visible without waiting for the next one. Topic objects are cached by name and
dropped when the topic's directory changes identity (deleted and re-created by another process).

The loop never waits for a partition lock: its logs are opened with a max.block.ms of 0, so a lock
held by another process (``logbroker publish`` in its fsync, or a writer stopped with SIGSTOP)
makes the append fail at once with nothing written; the partition's group commit is then tried
again a few milliseconds later, new batches joining it, while every other partition is served.
After ``LOCK_WAIT_WARN_S`` one warning names the holder; after ``max.block.ms`` (60 s) the
waiting batches fail with :class:`~logbroker.errors.LockTimeoutError` naming it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ..storage.config import validate_topic_name
from ..errors import (FsyncError, LockTimeoutError, LogBrokerError, StorageError, TopicExistsError,
                      UnknownTopicError)
from ..storage.config import DEFAULT_MAX_BLOCK_MS
from ..storage.fsutil import LOCK_WAIT_WARN_S, holder_description
from ..storage.log import AppendResult
from ..storage.record import PendingRecord
from ..storage.datadir import resolve_data_dir
from ..storage.topic import Topic, list_topics

__all__ = ["Storage", "WATCH_INTERVAL_S"]

log = logging.getLogger("logbroker.serve")

WATCH_INTERVAL_S = 0.05  # how soon a long poll sees an append made by another process
LOG_START_TTL_S = 1.0  # how old a log start offset a fetch at the end of a partition may report
LOCK_RETRY_S = (0.001, 0.02)  # a busy partition lock is tried again after 1 ms, doubling up to 20 ms


class Storage:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self._topics: dict[str, tuple[Topic, int]] = {}  # name -> (topic, inode of its directory)
        self._flush_due: set[tuple[str, int]] = set()
        #: (topic, partition) -> (topic, producer batches, their futures) waiting for their group commit
        self._groups: dict[tuple[str, int], tuple[Topic, list, list]] = {}
        #: (topic, partition) -> [monotonic start, tries, warned] of a group commit waiting for a lock
        self._lock_waits: dict[tuple[str, int], list] = {}
        #: Long-polling fetches' futures (:meth:`next_append`), set when this process appends or the
        #: watcher sees another process's append to a watched partition.
        self._waiters: set[asyncio.Future] = set()
        #: (topic, partition) -> [waiters, reader, last high watermark read, loop time of that read or None
        #: once this process appended to the partition since]
        self._watched: dict[tuple[str, int], list] = {}
        self._watcher: asyncio.Task | None = None
        self._log_starts: dict[tuple[str, int], tuple[float, int]] = {}  # key -> (read at, log start offset)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for key in list(self._watched):
            self._drop_watch(key)
        for topic, _ in self._topics.values():
            topic.close()
        self._topics.clear()

    # -- watching for other processes' appends -------------------------------------------------

    def watch(self, keys: list[tuple[str, int]]) -> None:
        """Long-polling fetches wait on these partitions: one task checks each one's high watermark
        every ``WATCH_INTERVAL_S`` for appends made by other processes (``logbroker publish``), however
        many connections wait on it, and wakes the polls when one moved. A partition no poll waits
        on is dropped by the watcher's next turn, not when its last poll ends: a consumer's next
        poll, sent as soon as the last one is answered, mostly finds its reader open and its end
        read."""
        for key in keys:
            entry = self._watched.get(key)
            if entry is None:
                entry = self._watched[key] = [0, None, None, None]
                entry[2] = self._high_watermark(key, entry)
                entry[3] = asyncio.get_running_loop().time()
            entry[0] += 1
        if self._watched and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())

    def unwatch(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            entry = self._watched.get(key)
            if entry is not None:
                entry[0] -= 1

    def _drop_watch(self, key: tuple[str, int]) -> None:
        entry = self._watched.pop(key)
        if entry[1] is not None:
            entry[1].close()

    def _high_watermark(self, key: tuple[str, int], entry: list) -> int | None:
        try:
            if entry[1] is None:
                entry[1] = self.topic(key[0]).reader(key[1])
            return entry[1].high_watermark()
        except LogBrokerError:
            if entry[1] is not None:
                entry[1].close()
                entry[1] = None
            return None

    def watched_high_watermark(self, key: tuple[str, int]) -> int | None:
        """The partition's high watermark as the watcher read it less than ``WATCH_INTERVAL_S`` ago,
        when no append of this process came since; None when not watched or older.

        For a long poll that will wait at least ``2 * WATCH_INTERVAL_S``: when it equals the poll's
        offset, the poll may park without reading the partition itself (an idle consumer's every
        fetch), since an append another process made since the watcher's read is seen at its next
        read, within ``WATCH_INTERVAL_S``: the same bound as for a poll parked before that append.
        """
        entry = self._watched.get(key)
        if entry is None or entry[3] is None or asyncio.get_running_loop().time() - entry[3] >= WATCH_INTERVAL_S:
            return None
        return entry[2]

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._watched:
                await asyncio.sleep(WATCH_INTERVAL_S)
                moved = False
                for key, entry in list(self._watched.items()):
                    if entry[0] <= 0:  # no poll waits on it now
                        self._drop_watch(key)
                        continue
                    hw = self._high_watermark(key, entry)
                    entry[3] = loop.time()
                    if hw != entry[2]:
                        entry[2], moved = hw, True
                if moved:
                    self._notify()
        finally:
            self._watcher = None

    def next_append(self) -> asyncio.Future:
        """A future set (to True) at the next append this process makes to any partition, or the
        watcher sees; taken before a fetch reads, so that no append falls between the read and the
        wait. Pass it to :meth:`wait_append`, or to :meth:`drop_waiter` when not waiting."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        return fut

    async def wait_append(self, fut: asyncio.Future, timeout: float) -> bool:
        """Wait until ``fut`` is set or ``timeout`` seconds have passed: whether an append came.
        One timer, no task: an idle long poll costs nothing until its deadline or an append."""
        if not fut.done():
            handle = asyncio.get_running_loop().call_later(timeout, _expire, fut)
            try:
                await fut
            finally:
                handle.cancel()
                self._waiters.discard(fut)
        return fut.result()

    def drop_waiter(self, fut: asyncio.Future) -> None:
        self._waiters.discard(fut)

    def _appended(self, key: tuple[str, int]) -> None:
        """This process made records of the partition visible: the watcher's last read of it no
        longer stands for its end, and every long poll wakes."""
        entry = self._watched.get(key)
        if entry is not None:
            entry[3] = None
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)

    def log_start_offset(self, key: tuple[str, int], reader: Any) -> int:
        """The partition's log start offset as read (through ``reader``, any reader of it) at most
        ``LOG_START_TTL_S`` ago, for a fetch at the high watermark, where it is only information (no
        offset is checked against it): idle long polls then cost no directory listing and
        checkpoint read each, however many connections poll the partition."""
        now = time.monotonic()
        cached = self._log_starts.get(key)
        if cached is None or now - cached[0] >= LOG_START_TTL_S:
            cached = self._log_starts[key] = (now, reader.log_start_offset())
        return cached[1]

    def list_topics(self) -> list[str]:
        return list_topics(self.data_dir)

    def topic(self, name: str) -> Topic:
        """The topic ``name``; raises UnknownTopicError (or InvalidNameError)."""
        cached = self._topics.get(name)
        if cached is None:
            validate_topic_name(name)  # before any path is made of it (a client's name may hold NUL)
        try:
            ino = os.stat(os.path.join(self.data_dir, name)).st_ino
        except (FileNotFoundError, NotADirectoryError):
            ino = None
        if cached is not None:
            if cached[1] == ino:
                return cached[0]
            cached[0].close()
            del self._topics[name]
        topic = Topic(self.data_dir, name, max_block_ms=0)  # the loop never blocks on a lock
        self._topics[name] = (topic, ino)
        return topic

    def forget(self, name: str) -> None:
        for key in [k for k in self._log_starts if k[0] == name]:
            del self._log_starts[key]
        cached = self._topics.pop(name, None)
        if cached is not None:
            cached[0].close()

    def create_topic(self, name: str, partitions: int, config: dict[str, Any] | None = None) -> Topic:
        try:
            return Topic.create(self.data_dir, name, partitions, config)
        finally:
            self.forget(name)

    def ensure_topic(self, name: str, partitions: int) -> Topic:
        """The topic, created with ``partitions`` when missing (auto-create)."""
        try:
            return self.topic(name)
        except UnknownTopicError:
            try:
                self.create_topic(name, partitions)
            except TopicExistsError:
                pass  # another process created it meanwhile
            return self.topic(name)

    def delete_topic(self, name: str) -> None:
        topic = self.topic(name)
        self.forget(name)
        topic.delete()

    def append_soon(self, topic: Topic, partition: int, records: list[PendingRecord]) -> asyncio.Future:
        """Queue ``records`` (one producer batch) for the partition's next group commit; the future
        gets their :class:`AppendResult` list once they are acknowledged under the topic's fsync
        policy, or the error.

        Group commit: the first batch queued for a partition schedules its commit with
        ``call_soon``, so every batch that requests already read (pipelined by one connection, or
        sent by several) queue before it runs joins it: one write sequence and one fdatasync under
        one hold of the partition lock (``PartitionLog.append_batches``), then every future is
        answered. A failed fdatasync fails every batch it covered. Any other error (a record too
        large, a full disk) is not allowed to fail another client's batch: the batches are then
        appended one by one, and only those that fail get the error.
        """
        key = (topic.name, partition)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = (topic, [], [])
            asyncio.get_running_loop().call_soon(self._commit, key)
        fut = asyncio.get_running_loop().create_future()
        group[1].append(records)
        group[2].append(fut)
        return fut

    def _commit(self, key: tuple[str, int]) -> None:
        topic, batches, futures = self._groups.pop(key)
        waiting = self._lock_waits.pop(key, None)
        try:
            _answer(batches, futures, self.append(topic, key[1], batches))
        except LockTimeoutError as exc:  # held by another process: nothing written, try again soon
            self._retry_commit(key, topic, batches, futures, exc, waiting)
        except FsyncError as exc:  # the log is fenced: nothing this fdatasync covered is acknowledged
            for fut in futures:
                _fail(fut, exc)
        except LogBrokerError as exc:
            # Batches made durable by a roll before the error stay appended (``exc.appended``):
            # answered as such; the rest are appended one by one, so that only a failing one fails.
            done = _answer(batches, futures, getattr(exc, "appended", []))
            if len(batches) - done == 1:
                _fail(futures[done], exc)
                return
            for i in range(done, len(batches)):
                try:
                    _answer([batches[i]], [futures[i]], self.append(topic, key[1], [batches[i]]))
                except LockTimeoutError as busy:
                    self._retry_commit(key, topic, batches[i:], futures[i:], busy, waiting)
                    return
                except LogBrokerError as one:
                    _fail(futures[i], one)

    def _retry_commit(self, key: tuple[str, int], topic: Topic, batches: list, futures: list,
                      exc: LockTimeoutError, wait: list | None) -> None:
        """Queue a group commit whose partition lock was busy again (no batch was queued since:
        nothing ran in between, so later batches join it, in order), or fail it once it has waited
        ``max.block.ms``. ``wait``: [monotonic start, tries, warned] of its earlier tries."""
        now = time.monotonic()
        wait = wait or [now, 0, False]
        waited = now - wait[0]
        what = f"the lock of partition {key[0]}-{key[1]}"
        path = getattr(exc, "path", "")
        if waited >= DEFAULT_MAX_BLOCK_MS / 1000:
            error = LockTimeoutError(
                f"gave up waiting for {what} after {DEFAULT_MAX_BLOCK_MS} ms (max.block.ms): it is held by "
                f"{holder_description(path)} ({path}); nothing was written", path=path)
            for fut in futures:
                _fail(fut, error)
            return
        if not wait[2] and waited >= LOCK_WAIT_WARN_S:
            wait[2] = True
            log.warning("waiting for %s: it is held by %s (%s); waiting up to %d ms (max.block.ms)",
                        what, holder_description(path), path, DEFAULT_MAX_BLOCK_MS)
        self._groups[key] = (topic, batches, futures)
        self._lock_waits[key] = wait
        delay = min(LOCK_RETRY_S[0] * (1 << min(wait[1], 10)), LOCK_RETRY_S[1])
        wait[1] += 1
        asyncio.get_running_loop().call_later(delay, self._commit, key)

    def append(self, topic: Topic, partition: int, batches: list[list[PendingRecord]]) -> list[AppendResult]:
        """Append producer batches under the topic's fsync policy, one write sequence and one
        fdatasync for all (see :meth:`append_soon`): returns once the records are acknowledged."""
        results = topic.log(partition).append_batches(batches)
        key = (topic.name, partition)
        if topic.config.fsync == "interval":
            if key not in self._flush_due:
                self._flush_due.add(key)
                asyncio.get_running_loop().call_later(topic.config.flush_ms / 1000.0, self._flush, topic, partition)
        self._appended(key)
        return results

    def _flush(self, topic: Topic, partition: int) -> None:
        """Make an ``fsync=interval`` partition's appends durable and visible (scheduled by append)."""
        self._flush_due.discard((topic.name, partition))
        try:
            topic.log(partition).flush()
        except LockTimeoutError:  # another process holds the lock (and flushes as it appends): again soon
            self._flush_due.add((topic.name, partition))
            asyncio.get_running_loop().call_later(LOCK_RETRY_S[1], self._flush, topic, partition)
            return
        except LogBrokerError as exc:
            log.warning("flush of %s-%d failed: %s", topic.name, partition, exc)
            return
        self._appended((topic.name, partition))


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)


def _answer(batches: list[list], futures: list[asyncio.Future], results: list[AppendResult]) -> int:
    """Hand each future the results covering its batch's records, in order (a producer batch that
    max.message.bytes cut in several has several); returns how many batches were fully covered.
    A batch only partly covered (a roll between its parts, then an error) gets nothing here."""
    i, it = 0, iter(results)
    for records, fut in zip(batches, futures):
        mine, count = [], 0
        for r in it:
            mine.append(r)
            count += r.count
            if count >= len(records):
                break
        if count < len(records):
            if mine:
                _fail(fut, StorageError(f"only {count} of {len(records)} records of a batch were appended"))
                i += 1
            return i
        if not fut.done():
            fut.set_result(mine)
        i += 1
    return i


def _fail(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
