"""The sender thread: linger, group commit, buffer.memory, and what a future means when it resolves.

Deterministic: a fault hook on fsutil's writes and fsyncs holds the sender inside an fsync, so the
tests control when it is busy. The only waits are for visibility, with a generous bound.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from waiting import wait_until
from logbroker import Broker, FencedError, FsyncError, Producer, ProducerTimeoutError
from logbroker.errors import LogBrokerError

GENEROUS_S = 10.0


def _values(broker, partition=0):
    return [r.value for r in broker.topic("t").reader(partition).read(0, 100_000)]


class _Gate:
    """A fault hook that holds the first fsync of a partition's segment until ``release()``."""

    def __init__(self, partition_dir: str = "t-0") -> None:
        self.partition_dir = partition_dir
        self.entered = threading.Event()
        self.released = threading.Event()
        self.log_fsyncs = 0

    def __call__(self, op: str, target: object) -> None:
        path = str(target)
        if op == "fsync" and path.endswith(".log") and os.path.basename(os.path.dirname(path)) == self.partition_dir:
            self.log_fsyncs += 1
            self.entered.set()
            assert self.released.wait(GENEROUS_S)

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.create_topic("t", 2)
    return b


def test_a_record_sent_alone_is_appended_without_flush(broker, tmp_path):
    producer = Producer(tmp_path)
    try:
        future = producer.send("t", {"n": 1}, partition=0)
        # nobody calls flush() or get(): the sender thread appends it on its own
        wait_until(lambda: _values(broker) == [{"n": 1}], "the record to be appended", seen=lambda: _values(broker))
        wait_until(future.done, "its future to resolve")
        assert future.get().offset == 0
    finally:
        producer.close()


def test_records_sent_while_the_sender_is_saturated_wait_for_linger_and_close_appends_them(
        broker, tmp_path, fault_hook):
    producer = Producer(tmp_path, linger_ms=3_600_000, batch_size=300)  # ~2 records of ~130 bytes
    producer.send("t", "warm-up", partition=0).get()
    gate = fault_hook(_Gate())
    with producer._acc.io_lock:  # the sender waits: one round of a full batch
        first = [producer.send("t", f"first {i}", partition=0) for i in range(3)]
    assert gate.entered.wait(GENEROUS_S)  # ... now held inside its fsync: the sender is saturated
    held = [producer.send("t", f"held {i}", partition=0) for i in range(2)]  # less than batch.size
    gate.release()
    wait_until(lambda: all(f.done() for f in first), "the full batch's futures to resolve",
               seen=lambda: [f.done() for f in first])
    assert first[-1].get().offset == 3
    assert not any(f.done() for f in held)  # an hour of linger: they wait for more records
    assert len(_values(broker)) == 4
    producer.close()
    assert [f.get().offset for f in held] == [4, 5]
    assert _values(broker)[4:] == ["held 0", "held 1"]


def test_records_sent_while_a_small_round_is_written_follow_it_without_linger(broker, tmp_path, fault_hook):
    producer = Producer(tmp_path, linger_ms=3_600_000)
    producer.send("t", "warm-up", partition=0).get()
    gate = fault_hook(_Gate())
    try:
        first = producer.send("t", "first", partition=0)  # the sender is idle: written at once
        assert gate.entered.wait(GENEROUS_S)  # ... and now held inside its fsync
        next_ones = [producer.send("t", f"next {i}", partition=0) for i in range(3)]
        gate.release()
        # the disk keeps up (that round was one record): they follow at once, no hour of linger
        wait_until(lambda: all(f.done() for f in next_ones), "the records sent meanwhile to be appended",
                   seen=lambda: [f.done() for f in next_ones])
        assert [f.get().offset for f in [first, *next_ones]] == [1, 2, 3, 4]
    finally:
        gate.release()
        producer.close()


def test_no_future_resolves_before_the_fsync_that_covers_it(broker, tmp_path, fault_hook):
    gate = fault_hook(_Gate())
    producer = Producer(tmp_path, fsync="always")
    try:
        futures = [producer.send("t", i, partition=0) for i in range(5)]
        assert gate.entered.wait(GENEROUS_S)
        assert not any(f.done() for f in futures)
        assert _values(broker) == []  # written, not yet synced: not visible either
        gate.release()
        producer.flush()
        assert [f.get().offset for f in futures] == [0, 1, 2, 3, 4]
    finally:
        gate.release()
        producer.close()


def test_batches_ready_together_share_one_fsync_per_partition_file(broker, tmp_path, fault_hook):
    producer = Producer(tmp_path, fsync="always", batch_size=1)  # every record is a full batch
    producer.send("t", "warm-up", partition=0).get()  # the first append's tail check syncs too
    gate = fault_hook(_Gate())
    try:
        producer.send("t", "first", partition=0)
        assert gate.entered.wait(GENEROUS_S)
        futures = [producer.send("t", i, partition=0) for i in range(50)]  # 50 ready batches
        gate.release()
        producer.flush()
        assert [f.get().offset for f in futures] == list(range(2, 52))
        assert gate.log_fsyncs == 2  # the first record's, then one for all 50 batches
        # each producer batch is still its own batch on disk
        assert len(broker.topic("t").reader(0).read(0, 100)) == 52
    finally:
        gate.release()
        producer.close()


def test_a_failed_fsync_fails_exactly_the_futures_it_covered(broker, tmp_path, fault_hook):
    gate = _Gate()
    failing = threading.Event()

    def hook(op, target):
        path = str(target)
        if failing.is_set() and op == "fsync" and path.endswith(".log") and "t-0" == os.path.basename(os.path.dirname(path)):
            raise OSError(5, "Input/output error")
        gate(op, target)

    producer = Producer(tmp_path, fsync="always", batch_size=100)
    producer.send("t", "warm-up", partition=0).get()
    producer.send("t", "warm-up", partition=1).get()
    fault_hook(hook)
    try:
        acked = producer.send("t", "before", partition=0)
        assert gate.entered.wait(GENEROUS_S)  # held in the fsync covering "before"
        covered = [producer.send("t", {"i": i, "pad": "x" * 40}, partition=0) for i in range(20)]
        other = [producer.send("t", i, partition=1) for i in range(20)]
        failing.set()
        gate.release()  # the first fsync succeeds; the next one of t-0 fails
        with pytest.raises(FsyncError):
            producer.flush()
        assert acked.get().offset == 1
        for f in covered:
            with pytest.raises(FsyncError):
                f.get()
        assert [f.get().offset for f in other] == list(range(1, 21))  # another file, another fsync
        later = producer.send("t", "after", partition=0)
        with pytest.raises(FencedError):
            later.get()  # the fencing rule: no append to t-0 after a failed fsync
    finally:
        gate.release()
        producer.close()


def test_send_blocks_when_buffer_memory_is_full_and_gives_up_after_max_block_ms(broker, tmp_path, fault_hook):
    gate = fault_hook(_Gate())
    producer = Producer(tmp_path, buffer_memory=4000, max_block_ms=200)
    try:
        producer.send("t", "first", partition=0)
        assert gate.entered.wait(GENEROUS_S)  # the disk is stuck: nothing gets acknowledged
        accepted = []
        with pytest.raises(ProducerTimeoutError, match="buffer.memory=4000"):
            for i in range(1000):
                accepted.append(producer.send("t", {"i": i, "pad": "y" * 100}, partition=0))
                assert producer._acc.buffered <= 4000
        assert 0 < len(accepted) < 40
        gate.release()
        producer.flush()
        assert [f.get().offset for f in accepted] == list(range(1, len(accepted) + 1))
    finally:
        gate.release()
        producer.close()


def test_a_producer_outrunning_the_disk_holds_at_most_buffer_memory(broker, tmp_path, fault_hook):
    def slow_disk(op, target):
        if op == "fsync" and str(target).endswith(".log"):
            time.sleep(0.01)

    fault_hook(slow_disk)
    limit = 64 * 1024
    peak = 0
    with Producer(tmp_path, buffer_memory=limit) as producer:
        for i in range(5000):
            producer.send("t", {"i": i, "pad": "z" * 80})
            peak = max(peak, producer._acc.buffered)
    assert peak <= limit
    assert len(_values(broker, 0)) + len(_values(broker, 1)) == 5000


def test_close_zero_fails_what_was_not_written(broker, tmp_path, fault_hook):
    gate = fault_hook(_Gate())
    producer = Producer(tmp_path, linger_ms=3_600_000)
    first = producer.send("t", "first", partition=0)
    assert gate.entered.wait(GENEROUS_S)
    held = producer.send("t", "held", partition=0)

    def release_once_aborting():
        while not producer._acc.aborting:
            time.sleep(0.001)
        gate.release()
    threading.Thread(target=release_once_aborting, daemon=True).start()
    producer.close(0)
    assert first.get().offset == 0  # the round in progress completed
    with pytest.raises(LogBrokerError, match="closed before"):
        held.get()
    assert _values(broker) == ["first"]


def test_send_batch_writes_after_the_records_sent_before_it(broker, tmp_path):
    with Producer(tmp_path, linger_ms=3_600_000, batch_size=1 << 30) as producer:
        sent = [producer.send("t", i, partition=0) for i in range(5)]
        batch = producer.send_batch("t", [5, 6, 7], partition=0)
        assert batch.base_offset == 5
        assert [f.get().offset for f in sent] == [0, 1, 2, 3, 4]
    assert _values(broker) == list(range(8))


def test_a_record_appended_to_a_batch_after_it_was_sealed_is_left_out_of_it_and_sent_again(broker, tmp_path):
    with Producer(tmp_path, linger_ms=3_600_000) as producer:
        acc = producer._acc
        acc.io_lock.acquire()  # the sender waits, so the batch stays open until the hook below
        try:
            first = producer.send("t", "first", partition=0)  # opens the batch (the locked way)
            batch = first.batch

            class SealedUnderIt(list):
                """The sender takes the batch just as send() appends to it without the lock."""

                def append(self, tail):
                    with acc.lock:
                        batch.seal()
                        acc.batches["t"][0] = type(batch)("t", 0, acc)
                        acc.ready.append(batch)
                        acc.wake.set()
                    list.append(self, tail)

            batch.tails = SealedUnderIt(batch.tails)
            late = producer.send("t", "late", partition=0)
        finally:
            acc.io_lock.release()
        assert late.batch is not batch  # not in the batch taken without it: sent again
        producer.flush()
        assert (first.get().offset, late.get().offset) == (0, 1)
    assert _values(broker) == ["first", "late"]


def test_threads_sending_at_once_get_futures_naming_their_own_records(broker, tmp_path):
    import sys
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between almost every few bytecodes
    try:
        with Producer(tmp_path, linger_ms=0, batch_size=600) as producer:
            futures: dict[str, object] = {}

            def sender(name):
                for i in range(500):
                    futures[f"{name}-{i}"] = producer.send("t", f"{name}-{i}", partition=0)
            threads = [threading.Thread(target=sender, args=(n,)) for n in "abcd"]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            producer.flush()
            offsets = {value: f.get().offset for value, f in futures.items()}
    finally:
        sys.setswitchinterval(interval)
    stored = _values(broker)
    assert sorted(stored) == sorted(futures)  # every record once
    assert all(stored[offset] == value for value, offset in offsets.items())
    for name in "abcd":  # and each thread's records in the order it sent them
        mine = [v for v in stored if v.startswith(name)]
        assert mine == [f"{name}-{i}" for i in range(500)]


def test_futures_name_their_batch_record_topic_partition_and_timestamp(broker, tmp_path):
    with Producer(tmp_path) as producer:
        a = producer.send("t", "a", partition=1)
        b = producer.send("t", "b", partition=1, timestamp_ms=1234)
        producer.flush()
        assert (a.topic, a.partition, b.timestamp) == ("t", 1, 1234)
        assert a.batch.done and a.get().offset == 0 and b.get().offset == 1
        assert a.index == 0


def test_a_batch_reserves_no_more_buffer_memory_than_it_can_take_before_it_is_full(broker, tmp_path):
    with Producer(tmp_path, batch_size=1) as producer:  # every record is a full batch
        with producer._acc.io_lock:  # the sender waits: nothing is released meanwhile
            futures = [producer.send("t", {"i": i}, partition=0) for i in range(20)]
            sizes = sum(f.batch.size for f in futures)
            assert producer._acc.buffered == sizes  # each batch reserved its one record, not a 4 KiB piece
        producer.flush()
        assert producer._acc.buffered == 0




def test_a_batch_reserves_room_for_a_whole_batch_at_its_first_record_so_the_rest_skip_the_lock(broker, tmp_path):
    # Kafka's BufferPool hands out a whole batch.size at once; reserving in smaller pieces sent
    # every few kilobytes of records the locked way (Sender.put) instead of send()'s fast path
    with Producer(tmp_path) as producer:  # batch.size 16 KiB, buffer.memory 32 MiB
        acc = producer._acc
        puts = []
        put = acc.put
        acc.put = lambda *args: puts.append(args[1]) or put(*args)
        with acc.io_lock:  # the sender waits: the batch stays open
            futures = [producer.send("t", {"i": i, "pad": "p" * 120}, partition=0) for i in range(50)]
            assert len({id(f.batch) for f in futures}) == 1  # ~13 KB as the producer counts: one batch
            assert puts == [0]  # its first record only
            assert acc.buffered == producer.batch_size - 1
        producer.flush()
        assert acc.buffered == 0
    assert [v["i"] for v in _values(broker)] == list(range(50))


def test_a_batch_that_two_threads_filled_takes_its_newest_timestamp_from_its_records(tmp_path):
    # send() raises a batch's newest timestamp without the lock, so two threads can interleave and
    # leave it lower than one of their records: the time index entry after the batch would then
    # say nothing newer came before it, and a lookup of that record's timestamp would skip it
    Broker(tmp_path).create_topic("t", 1, config={"index.interval.bytes": "1"})
    with Producer(tmp_path, linger_ms=3_600_000) as producer:
        acc = producer._acc
        acc.io_lock.acquire()  # the batch stays open until both records are in it
        try:
            first = producer.send("t", "first", partition=0, timestamp_ms=1_000)
            other = []
            worker = threading.Thread(target=lambda: other.append(producer.send("t", "other", partition=0)))
            worker.start()
            worker.join()
            assert other[0].batch is first.batch
            first.batch.max_ts = 1_000  # the first thread's lower timestamp, written back last
        finally:
            acc.io_lock.release()
        newest = other[0].get().timestamp
        producer.send("t", "later", partition=0, timestamp_ms=newest + 1).get()  # indexed after them
    assert Broker(tmp_path).topic("t").reader(0).offset_for_timestamp(newest) == 1


def test_a_batch_sealed_between_a_sends_append_and_its_timestamp_still_covers_the_record(tmp_path):
    # One sending thread and the sender thread: send() appends its record to the open batch without
    # the lock; a seal landing right after that append must not leave the batch's newest timestamp
    # below the record's (its time index entry would make a lookup of that timestamp skip it)
    import inspect
    import sys

    from logbroker.clients import producer as producer_module

    Broker(tmp_path).create_topic("t", 1, config={"index.interval.bytes": "1"})
    source, first_line = inspect.getsourcelines(producer_module.Producer.send)
    append_line = first_line + next(i for i, line in enumerate(source) if "tails.append(tail)" in line)
    code = producer_module.Producer.send.__code__
    with Producer(tmp_path, linger_ms=3_600_000) as producer:
        acc = producer._acc
        producer.send("t", "first", partition=0).get()
        acc.io_lock.acquire()  # the sender thread takes no batch meanwhile
        producer.send("t", "warm", partition=0)  # opens a batch with room for more records
        time.sleep(0.003)  # the next record's millisecond is later

        def seal_after_the_append(frame, event, arg):
            if frame.f_code is not code:
                return None
            def line(frame, event, arg):
                if event == "line" and frame.f_lineno == append_line + 1:  # the append just ran
                    # the sender seals and writes the batch right then (the test holds io_lock for it)
                    acc.write([("t", 0, acc.take_partition("t", 0))])
                    sealed.append(frame.f_locals["batch"])
                return line
            return line

        sealed = []
        sys.settrace(seal_after_the_append)
        try:
            second = producer.send("t", "second", partition=0)
        finally:
            sys.settrace(None)
            acc.io_lock.release()
        assert sealed and second.batch is sealed[0] and sealed[0].count == 2
        stamp = second.get().timestamp
        time.sleep(0.003)
        producer.send("t", "later", partition=0).get()  # indexed after it
    reader = Broker(tmp_path).topic("t").reader(0)
    assert reader.offset_for_timestamp(stamp) == 2
