"""The producer's record accumulator and its sender thread (Kafka's ``RecordAccumulator`` and ``Sender``).

``Producer.send`` encodes each record, in the caller's thread, into its *tail* (all of its line but
the offset, :func:`~logbroker.storage.record.encode_tails`) and appends it to the open batch of its
partition; the sender thread takes whole batches, appends them to the partition logs (adding only
offsets, crcs and the batch field) and resolves their futures. Nobody has to call ``flush()`` for
a record to be written.

When a batch is ready (the sender takes it):

- it reached ``batch.size`` bytes (it is closed, and a new open batch starts);
- ``linger.ms`` passed since its first record;
- its first record arrived while the sender had nothing to write, or the sender's last round
  wrote less than ``batch.size``: a disk that keeps up gains nothing from waiting, so records are
  written at once, each round taking what arrived during the previous one (as a database's group
  commit delays only when other commits are in flight). Linger therefore only holds records back
  while the sender is saturated (its rounds are full batches), which is when waiting fills
  batches;
- ``flush()`` or ``close()`` is waiting, or another batch of the same partition is ready (it
  rides along in the same write and fsync).

Group commit: every ready batch of a partition is appended by one ``PartitionLog.append`` call,
i.e. written and, under ``fsync=always``, covered by one fdatasync of the segment file; each
partition of a round gets its own append (one fsync per file). Records that arrive while a round
writes and syncs collect for the next round, so under load batches grow by themselves.

What a resolved future means, by fsync policy: ``always``: written and fdatasynced, and visible to
consumers; ``interval``: written (durable at the next sync, at most ``flush.ms`` later, or at
``flush()``/``close()``), visible once synced; ``never``: written and visible, durable when the OS
writes it back. No future resolves before the append that covers it returned; an append that
fails (disk full, failed fsync, fenced partition) fails exactly the futures of the records it did
not make durable (records made durable by a roll inside it stay acknowledged).

Locks, and who holds them:

- ``lock`` (a ``threading.Lock``): the open batches, the ready queue, the bytes of ``buffer.memory``
  reserved, and the flags. Held for microseconds, never across I/O. ``acked`` (a Condition on it)
  is notified after every round: ``flush()``, ``get()`` and a ``send()`` blocked on
  ``buffer.memory`` wait on it. ``send()``'s common path does not take it: a record that fits in
  what its batch reserved (``Batch.limit``) is added with one ``list.append``, which is atomic.
  Whoever takes a batch from the accumulator seals it under the lock (:meth:`Batch.seal`: the
  flag, then the count of records it holds); a ``send()`` that finds the flag set after its
  append looks under the lock whether its record was counted, and puts it again if not. Every
  other way in (a batch's first record, one that passes the reservation or fills the batch, a
  record with a key or headers, ``send_json_many``) goes through :meth:`Sender.put` under the lock.
- ``io_lock``: whoever appends to this producer's partition logs (the sender for a round,
  ``send_batch`` and the interval flush in the caller's thread). The sender takes it *before*
  collecting a round, so a ``send_batch`` that drains a partition's batches first can never
  overtake batches the sender collected earlier: per partition, records are appended in ``send``
  order. Across processes, the partition's flock (see :mod:`logbroker.storage.log`) serializes appends.

After ``fork()`` the child starts afresh: new locks (a thread of the parent may have held them,
and no thread of the parent runs in the child), no sender thread until its first record, and the
records the parent had buffered fail in the child (the parent writes them; written by both, they
would be stored twice).

``buffer.memory`` counts what unresolved batches reserved: each reserves, under the lock, the size
of the records it takes: at its first record, room for a whole batch (``batch.size``, as Kafka's
BufferPool hands out whole batches), or a sixteenth of ``buffer.memory`` when that is smaller, and
more, in pieces as large, when its records pass it. A ``send()`` whose reservation would pass
``buffer.memory`` blocks up to ``max.block.ms``, then raises ProducerTimeoutError (a piece
shrinks to what the record needs before it blocks).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Callable

from ..errors import LogBrokerError, ProducerTimeoutError, RecordTooLargeError
from ..storage.record import TailGroup, tails_max_timestamp

__all__ = ["Batch", "Sender"]

_monotonic = time.monotonic


class Batch:
    """Records buffered for one partition, and the outcome of their append (shared by their futures).

    ``tails`` are the records encoded up to their offsets (:func:`~logbroker.storage.record.encode_tails`),
    in send order. ``reserved`` bytes of ``buffer.memory`` are held for it; ``limit`` is what a
    record may bring ``size`` up to without the lock (see :meth:`Sender.put`): 0 once sealed.
    Sealing (with the lock held) fixes ``count``: the records taken are ``tails[:count]``; one a
    thread appended after that is not in the batch, and its sender re-sends it.

    ``results`` are the AppendResults of the append that wrote it, which may have written other
    batches of the partition before it: its record ``i`` is record ``start + i`` of that append.
    """

    __slots__ = ("topic", "partition", "sender", "tails", "cuts", "size", "reserved", "limit", "first_ts",
                 "max_ts", "sealed", "count", "results", "error", "start", "ready_at")

    def __init__(self, topic: str = "", partition: int = 0, sender: "Sender | None" = None) -> None:
        self.topic, self.partition, self.sender = topic, partition, sender
        self.tails: list[bytes] = []
        self.cuts: dict[int, int] | None = None  # head lengths of tails with headers (TailGroup.cuts)
        self.size = 0  # the tails' sizes as the producer estimates them (over-estimates of the lines)
        self.reserved = 0
        self.limit = 0
        self.first_ts = self.max_ts = 0
        self.sealed = False
        self.count = 0
        self.results: list | None = None
        self.error: BaseException | None = None
        self.start = 0
        self.ready_at = 0.0  # monotonic time at which linger makes it ready (set at its first record)

    @property
    def done(self) -> bool:
        return self.results is not None or self.error is not None

    def seal(self) -> None:
        """Take the records appended so far (lock held): the sealed flag first, then the count,
        so that a thread seeing ``sealed`` false after its append knows its record is counted."""
        self.sealed = True
        self.limit = 0
        self.count = len(self.tails)

    def group(self) -> TailGroup:
        """The sealed records, as the log encodes them."""
        tails = self.tails[:self.count]
        if tails and self.sender is not None and self.sender.shared:
            # send() raises max_ts without the lock: with several threads, one may have lowered
            # it under another's record (a time index entry too old would skip that record), even
            # after the seal, so the newest timestamp is read from the records themselves
            return TailGroup(tails, self.cuts, self.first_ts, tails_max_timestamp(tails))
        return TailGroup(tails, self.cuts, self.first_ts, self.max_ts)

    def offset_of(self, index: int) -> int | None:
        """The offset of record ``index``, or None when it was not written (``error`` says why)."""
        index += self.start
        for res in self.results or ():
            if index < res.count:
                return res.base_offset + index
            index -= res.count
        return None


AppendFn = Callable[[str, int, list], list]

_BATCH_FIELD_ROOM = 128  # more than a batch field takes (FORMAT.md): kept free under max.message.bytes


_senders: "weakref.WeakSet[Sender]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sender in list(_senders):
        sender._after_fork_in_child()


class Sender:
    """The accumulator and the thread that drains it; see the module docstring for the contract.

    ``append(topic, partition, groups)`` writes the TailGroups ``groups`` (one per batch, in
    order) to a partition log with one fsync and returns their AppendResults (or raises with
    ``appended`` set); it is called with ``io_lock`` held.
    """

    def __init__(self, append: AppendFn, *, batch_size: int, linger_ms: float, buffer_memory: int,
                 max_block_ms: float) -> None:
        self.append = append
        self.batch_size = batch_size
        self.linger = linger_ms / 1000.0
        self.buffer_memory = buffer_memory
        self.max_block = max_block_ms / 1000.0
        self.chunk = max(1, min(batch_size, buffer_memory // 16))
        self.lock = threading.Lock()
        self.acked = threading.Condition(self.lock)
        self.io_lock = threading.Lock()
        self.wake = threading.Event()
        self.batches: dict[str, list[Batch]] = {}  # the open batch of each partition, per topic
        self.max_bytes: dict[str, int] = {}  # max.message.bytes per topic
        self.ready: list[Batch] = []  # closed (full) batches, in send order
        self.inflight: list[Batch] = []
        self.buffered = 0  # bytes of buffer.memory reserved by unresolved batches
        self.busy = False
        self.shared = False  # send() was called from more than one thread (see Batch.seal)
        self.last_round = 0  # bytes the sender's last round wrote
        self.flushing = 0
        self.stopping = False
        self.aborting = False
        self._thread: threading.Thread | None = None
        _senders.add(self)

    def _after_fork_in_child(self) -> None:
        """In the child of ``fork()``: fresh locks and no thread; the parent's buffered records fail here."""
        self.lock = threading.Lock()
        self.acked = threading.Condition(self.lock)
        self.io_lock = threading.Lock()
        self.wake = threading.Event()
        inherited = self.unresolved()
        self.ready, self.inflight = [], []
        for topic, batches in self.batches.items():
            for p in range(len(batches)):
                batches[p] = Batch(topic, p, self)
        error = LogBrokerError("sent before fork(): the parent process writes these records (its futures "
                               "say whether they were written), not this child")
        for b in inherited:
            if not b.done:
                b.error = error
                b.results = []
        self.buffered = self.flushing = self.last_round = 0
        self.busy = False
        self._thread = None

    def open_topic(self, topic: str, partitions: int, max_bytes: int) -> list[Batch]:
        """Start buffering for ``topic``: its list of open batches (one per partition)."""
        with self.lock:
            batches = self.batches.get(topic)
            if batches is None:
                batches = self.batches[topic] = [Batch(topic, p, self) for p in range(partitions)]
                self.max_bytes[topic] = max_bytes
        return batches

    # -- called by send() ----------------------------------------------------------------------

    def put(self, topic: str, partition: int, tail: bytes, size: int, ts: int, cut: int | None) -> tuple[Batch, int]:
        """Add a record to its partition's open batch with the lock held: the way of a batch's
        first record, of one that does not fit in what its batch reserved, of one that fills
        it, and of one with headers. Returns the batch and the record's index in it.

        A batch reserves buffer.memory in pieces of up to batch.size (Kafka's BufferPool hands
        out whole batches; fewer pieces, fewer records that take this way) and sets ``limit`` so that the records sent without the lock (``Producer.send``) stay
        within the reservation, below batch.size and below max.message.bytes; blocks (up to
        max.block.ms) while buffer.memory is full.
        """
        with self.lock:
            while True:
                if self.stopping:  # also after a wait for space: nobody would write the record
                    raise LogBrokerError("the producer is closed")
                batches = self.batches[topic]
                batch = batches[partition]
                max_bytes = self.max_bytes[topic] - _BATCH_FIELD_ROOM
                if batch.tails and batch.size + size > max_bytes:
                    self._close(batch)  # together they would pass max.message.bytes
                    continue
                need = batch.size + size - batch.reserved
                if need > 0:
                    # a piece for the records that may follow without the lock, no more than the
                    # batch can still take before it is full
                    room = self.batch_size - 1 - (batch.size + size)
                    grow = need + max(0, min(self.chunk - need, room))
                    if self.buffered + grow > self.buffer_memory:
                        grow = need
                    if self.buffered + grow > self.buffer_memory:
                        self._wait_for_space(grow)  # releases the lock: the batch may be sealed meanwhile
                        continue
                    batch.reserved += grow
                    self.buffered += grow
                break
            tails = batch.tails
            tails.append(tail)
            index = len(tails) - 1
            batch.size += size
            if cut is not None:
                if batch.cuts is None:
                    batch.cuts = {}
                batch.cuts[index] = cut
            if index == 0:
                batch.first_ts = batch.max_ts = ts
                self._started(batch)
            elif ts > batch.max_ts:
                batch.max_ts = ts
            if batch.size >= self.batch_size:
                self._close(batch)
            else:
                batch.limit = min(batch.reserved, self.batch_size - 1, max_bytes)
            return batch, index

    def put_many(self, topic: str, partition: int, tails: list[bytes], sizes: list[int], ts: int,
                 cut: int | None) -> list[tuple[Batch, int, int]]:
        """:meth:`put` of many records of one timestamp under one hold of the lock, each run of them
        that fits in the open batch at once. Returns ``(batch, first index, count)`` per run."""
        runs = []
        i, n = 0, len(tails)
        batch_size = self.batch_size
        with self.lock:
            while i < n:
                if self.stopping:
                    raise LogBrokerError("the producer is closed")
                batch = self.batches[topic][partition]
                max_bytes = self.max_bytes[topic] - _BATCH_FIELD_ROOM
                size, j = batch.size, i
                while j < n and size < batch_size and (size + sizes[j] <= max_bytes or not (batch.tails or j > i)):
                    size += sizes[j]
                    j += 1
                if j == i:
                    self._close(batch)  # the next record would pass max.message.bytes
                    continue
                need = size - batch.reserved
                if need > 0:
                    if self.buffered + need > self.buffer_memory:
                        while j > i + 1 and self.buffered + need > self.buffer_memory:
                            j -= 1  # fewer records, if that fits
                            size -= sizes[j]
                            need -= sizes[j]
                        if self.buffered + need > self.buffer_memory:
                            self._wait_for_space(need)  # releases the lock: the batch may be sealed meanwhile
                            continue
                    batch.reserved += need
                    self.buffered += need
                first = len(batch.tails)
                batch.tails += tails[i:j]
                batch.size = size
                if cut is not None:
                    if batch.cuts is None:
                        batch.cuts = {}
                    batch.cuts.update((k, cut) for k in range(first, first + j - i))
                if first == 0:
                    batch.first_ts = batch.max_ts = ts
                    self._started(batch)
                elif ts > batch.max_ts:
                    batch.max_ts = ts
                if size >= batch_size:
                    self._close(batch)
                else:
                    batch.limit = min(batch.reserved, batch_size - 1, max_bytes)
                runs.append((batch, first, j - i))
                i = j
        return runs

    def settle(self, batch: Batch, tail: bytes) -> int | None:
        """The index of ``tail`` in ``batch``, appended without the lock, if it was taken with the
        batch; None if the batch was sealed before it (its sender puts it again)."""
        with self.lock:
            tails = batch.tails
            for i in range(len(tails) - 1, -1, -1):
                if tails[i] is tail:
                    return i if not batch.sealed or i < batch.count else None
        raise AssertionError("a record vanished from its batch")  # pragma: no cover

    def _wait_for_space(self, size: int) -> None:
        """Block until ``size`` more bytes fit in ``buffer.memory`` (Kafka's max.block.ms)."""
        if size > self.buffer_memory:
            raise RecordTooLargeError(f"record of about {size} bytes is larger than buffer.memory="
                                      f"{self.buffer_memory}")
        deadline = _monotonic() + self.max_block
        while self.buffered + size > self.buffer_memory:
            left = deadline - _monotonic()
            if left <= 0 or self.aborting:
                raise ProducerTimeoutError(
                    f"buffer.memory={self.buffer_memory} bytes of records are waiting to be written and "
                    f"none was acknowledged within max.block.ms={self.max_block * 1000:.0f}")
            self.wake.set()
            self.acked.wait(left)

    def _started(self, batch: Batch) -> None:
        """The first record went into ``batch``: ready at once if the sender is idle, else after linger."""
        if self.busy:
            batch.ready_at = _monotonic() + self.linger
        else:
            batch.ready_at = 0.0
            self.wake.set()
        if self._thread is None:
            self._start()

    def _close(self, batch: Batch) -> None:
        """``batch`` is full: seal it, queue it, and open a new one for the partition (lock held)."""
        batch.seal()
        self.batches[batch.topic][batch.partition] = Batch(batch.topic, batch.partition, self)
        self.ready.append(batch)
        if not self.busy:
            self.wake.set()

    def _take(self, batch: Batch) -> None:
        """Seal an open batch and replace it with a new one (lock held)."""
        batch.seal()
        self.batches[batch.topic][batch.partition] = Batch(batch.topic, batch.partition, self)

    # -- flush, close, send_batch --------------------------------------------------------------

    def unresolved(self) -> list[Batch]:
        """Every batch handed to the sender and not resolved yet (lock held)."""
        out = list(self.ready)
        out.extend(self.inflight)
        for batches in self.batches.values():
            out.extend(b for b in batches if b.tails)
        return out

    def flush(self, timeout: float | None = None) -> list[Batch]:
        """Make every batch buffered so far ready and wait until all are resolved; returns them."""
        with self.lock:
            pending = self.unresolved()
            if not pending:
                return pending
            self.flushing += 1
            self.wake.set()
            try:
                self._wait(pending, timeout)
            finally:
                self.flushing -= 1
        return pending

    def wait(self, batch: Batch, timeout: float | None) -> None:
        with self.lock:
            self._wait([batch], timeout)

    def _wait(self, batches: list[Batch], timeout: float | None) -> None:
        deadline = None if timeout is None else _monotonic() + timeout
        for b in batches:
            while not b.done:
                left = None if deadline is None else deadline - _monotonic()
                if left is not None and left <= 0:
                    raise ProducerTimeoutError(f"records not acknowledged within {timeout * 1000:.0f} ms")
                if self._thread is None or not self._thread.is_alive():
                    self._start()
                self.acked.wait(left)

    def take_partition(self, topic: str, partition: int) -> list[Batch]:
        """Remove and return every unsent batch of one partition, oldest first (``io_lock`` held)."""
        with self.lock:
            taken = [b for b in self.ready if b.topic == topic and b.partition == partition]
            if taken:
                self.ready = [b for b in self.ready if not (b.topic == topic and b.partition == partition)]
            open_batch = self.batches[topic][partition]
            if open_batch.tails:
                self._take(open_batch)
                taken.append(open_batch)
            self.inflight.extend(taken)
        return taken

    def stop(self, abort: bool = False) -> None:
        """Stop the thread after its current round. ``abort``: fail what is still buffered
        (Kafka's ``close(0)``); otherwise the caller flushed first."""
        with self.lock:
            self.stopping = True
            self.aborting = self.aborting or abort
            thread = self._thread
            self.acked.notify_all()
        self.wake.set()
        while thread is not None and thread.is_alive():
            try:
                thread.join()  # at most the round in progress: one write and fsync per partition
            except KeyboardInterrupt:
                with self.lock:
                    self.aborting = True  # a round cut short here would leave futures unresolved
        with self.lock:
            # Each open batch is sealed before it is counted as left over: a send() appending
            # without the lock lands before the seal (and fails with the batch) or after it (and
            # goes to put(), which refuses now), never in a batch nobody writes or fails.
            leftover = self.ready + self.inflight
            self.ready = []
            for batches in self.batches.values():
                for b in batches:
                    self._take(b)
                    leftover.append(b)
        self._fail(leftover, LogBrokerError("the producer was closed before these records were written"))

    # -- the thread ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self.stopping:
            return
        self._thread = threading.Thread(target=self._run, name="logbroker-sender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.wake.clear()
            with self.io_lock:
                with self.lock:
                    if self.aborting:
                        return
                    work, timeout = self._collect(_monotonic())
                    self.busy = bool(work)
                    if not work and self.stopping:
                        return
                if work:
                    self.write(work)
                    continue
            self.wake.wait(timeout)

    def _collect(self, now: float) -> tuple[list[tuple[str, int, list[Batch]]], float | None]:
        """The ready batches grouped by partition, and how long until the next one is (lock held)."""
        groups: dict[tuple[str, int], list[Batch]] = {}
        for b in self.ready:
            groups.setdefault((b.topic, b.partition), []).append(b)
        self.ready.clear()
        everything = self.flushing or self.stopping
        eager = self.last_round < self.batch_size  # the disk keeps up: no reason to linger
        next_ready = None
        for topic, batches in self.batches.items():
            for p, b in enumerate(batches):
                if not b.tails:
                    continue
                if everything or eager or b.ready_at <= now or (topic, p) in groups:
                    self._take(b)
                    groups.setdefault((topic, p), []).append(b)
                elif next_ready is None or b.ready_at < next_ready:
                    next_ready = b.ready_at
        work = [(t, p, bs) for (t, p), bs in groups.items()]
        for _, _, bs in work:
            self.inflight.extend(bs)
        return work, None if next_ready is None else max(0.0, next_ready - now)

    def write(self, work: list[tuple[str, int, list[Batch]]]) -> None:
        """Append each partition's batches with one call (one fsync), then resolve them (``io_lock``
        held). A partition that fails does not stop the others."""
        for topic, partition, batches in work:
            start = 0
            for b in batches:
                b.start = start
                start += b.count
            try:
                results = self.append(topic, partition, [b.group() for b in batches])
            except Exception as exc:  # noqa: BLE001 (any failure belongs to the futures, not to this thread)
                appended = getattr(exc, "appended", None) or []
                for b in batches:
                    b.error = exc  # before results: done() must never see results without the error
                    b.results = appended
            else:
                for b in batches:
                    b.results = results
        with self.lock:
            done = [b for _, _, bs in work for b in bs]
            self.last_round = sum(b.size for b in done)
            self.buffered -= sum(b.reserved for b in done)
            ids = {id(b) for b in done}
            self.inflight = [b for b in self.inflight if id(b) not in ids]
            self.acked.notify_all()

    def _fail(self, batches: list[Batch], error: BaseException) -> None:
        with self.lock:
            for b in batches:
                if not b.done:
                    b.error = error
                    b.results = []
                    self.buffered -= b.reserved
            self.inflight = [b for b in self.inflight if not b.done]
            self.acked.notify_all()


os.register_at_fork(after_in_child=_after_fork_in_child)
