"""A fetch at the high watermark (every fetch of an idle long poll) without a network: what it
reads from the partition's files, and what it reports."""

from __future__ import annotations

import asyncio
import time

from logbroker.kafka import server as server_module
from logbroker.kafka import storage as storage_module
from logbroker.kafka.batch import encode_batch
from logbroker.kafka.handlers import DataHandlers, ServerConfig
from logbroker.kafka.server import Connection, KafkaServer
from logbroker.kafka.storage import Storage
from logbroker.storage.reader import PartitionReader
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic


def test_fetches_at_the_end_read_the_log_start_offset_at_most_once_per_ttl_and_report_it_moved(
        tmp_path, monkeypatch):
    """Once per TTL for the whole server, whatever the connections polling the partition."""
    topic = Topic.create(str(tmp_path), "t", 1)
    topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": i}) for i in range(5)])
    calls = []
    real = PartitionReader.log_start_offset

    def counted(self):
        calls.append(1)
        return real(self)
    monkeypatch.setattr(PartitionReader, "log_start_offset", counted)
    storage = Storage(str(tmp_path))
    handlers, conn, other = DataHandlers(storage, ServerConfig()), Connection("test"), Connection("other")
    try:
        ends = [handlers._fetch_partition("t", 0, 5, 1 << 20, c) for c in (conn, conn, other, other)]
        assert [(p["HighWatermark"], p["LogStartOffset"], p["Records"]) for p in ends] == [(5, 0, b"")] * 4
        assert len(calls) == 1  # one directory listing and checkpoint read for four fetches at the end
        handlers._fetch_partition("t", 0, 2, 1 << 20, conn)
        assert len(calls) == 2  # a fetch of records checks its offset against a fresh log start
        topic.log(0).delete_records(3)
        monkeypatch.setattr(storage_module, "LOG_START_TTL_S", 0.0)  # the TTL has passed
        assert handlers._fetch_partition("t", 0, 5, 1 << 20, conn)["LogStartOffset"] == 3
    finally:
        conn.close()
        other.close()
        storage.close()
        topic.close()


def test_a_long_poll_is_answered_as_soon_as_a_produce_through_the_server_is_durable(tmp_path):
    """Not at its MaxWaitMs: the append that acknowledges the produce wakes the waiting fetch, which
    has its answer before the event loop's next turn (the end-to-end latency's server part)."""
    Topic.create(str(tmp_path), "e", 1).close()

    async def main():
        server = KafkaServer(str(tmp_path))
        producer, consumer = Connection("producer"), Connection("consumer")
        fetch = asyncio.ensure_future(server.data.fetch(
            {"MaxWaitMs": 30_000, "MinBytes": 1, "Topics": [{"Topic": "e", "Partitions": [
                {"Partition": 0, "FetchOffset": 0, "PartitionMaxBytes": 1 << 20}]}]}, 11, consumer))
        for _ in range(5):
            await asyncio.sleep(0)
        parked = not fetch.done()
        batch = encode_batch(0, [(0, int(time.time() * 1000), None, [], b'{"n":1}')])
        acked = await server.data.produce({"Acks": -1, "TopicData": [
            {"Name": "e", "PartitionData": [{"Index": 0, "Records": batch}]}]}, 8, producer)
        await asyncio.sleep(0)
        answered = fetch.done()
        fetch.cancel()
        producer.close()
        consumer.close()
        await server.close()
        return parked, acked, answered, fetch.result() if answered else None
    parked, acked, answered, got = asyncio.run(asyncio.wait_for(main(), 20))
    assert parked and acked["Responses"][0]["PartitionResponses"][0]["ErrorCode"] == 0
    assert answered and b'{"n":1}' in got["Responses"][0]["Partitions"][0]["Records"]


def test_a_large_produced_batch_is_decoded_and_checked_with_no_garbage_collection():
    """Its thousands of record tuples are made with the collector paused (they hold no cycle), and
    the collector is enabled again afterwards, also when the batch is refused."""
    import gc

    import pytest

    from logbroker.kafka import handlers
    from logbroker.kafka.batch import BatchError, decode_batches
    batch = encode_batch(0, [(i, 1_700_000_000_000, None, [], b'{"n":%d}' % i) for i in range(5000)])
    collections, counting = [], [False]

    def count(phase, info):
        if phase == "start" and counting[0]:
            collections.append(info["generation"])

    def collections_during(fn, *args):
        gc.collect()  # the collector's count at zero: a collection now is the call's own
        del collections[:]
        counting[0] = True
        try:
            return fn(*args)
        finally:
            counting[0] = False
    gc.callbacks.append(count)
    try:
        collections_during(decode_batches, batch)
        unpaused = len(collections)
        decoded = collections_during(handlers._without_gc, decode_batches, batch)
        paused = len(collections)
        collections_during(handlers._without_gc, PendingRecord.from_kafka_records, decoded[0].records)
        paused += len(collections)
        with pytest.raises(BatchError):
            handlers._without_gc(decode_batches, batch[:-1])
    finally:
        gc.callbacks.remove(count)
    assert unpaused > 0 and paused == 0 and gc.isenabled()


def _fetch_frame(correlation: int, offset: int, max_wait_ms: int = 0) -> bytes:
    import struct

    from logbroker.kafka.schemas import FETCH
    from logbroker.kafka.wire import encode
    out = bytearray(struct.pack(">hhih", 1, 11, correlation, 4) + b"test")
    encode(FETCH.request, {"MaxWaitMs": max_wait_ms, "MinBytes": 1, "Topics": [{"Topic": "f", "Partitions": [
        {"Partition": 0, "FetchOffset": offset, "PartitionMaxBytes": 1 << 20}]}]}, 11, False, out)
    return bytes(out)


def _counted(monkeypatch, name: str) -> list:
    """The schemas ``server_module.<name>`` (decode or encode) is called with, from now on."""
    calls = []
    real = getattr(server_module, name)

    def counted(*args):
        calls.append(args[0])
        return real(*args)
    monkeypatch.setattr(server_module, name, counted)
    return calls


def test_a_fetch_sent_again_unchanged_is_decoded_once_and_answered_with_its_own_correlation_id(tmp_path, monkeypatch):
    import struct

    from logbroker.kafka.schemas import FETCH
    topic = Topic.create(str(tmp_path), "f", 1)
    topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": 1})])
    topic.close()
    decoded = _counted(monkeypatch, "decode")

    async def main():
        server = KafkaServer(str(tmp_path))
        conn = Connection("consumer")
        try:
            return [await server._handle(_fetch_frame(c, o), conn) for c, o in ((7, 1), (8, 1), (9, 0))]
        finally:
            conn.close()
            await server.close()
    answers = asyncio.run(main())
    assert [struct.unpack_from(">i", a)[0] for a in answers] == [7, 8, 9]
    assert answers[0][4:] == answers[1][4:] and b'{"n":1}' in answers[2]
    assert len([s for s in decoded if s is FETCH.request]) == 2  # the repeat of the first was not decoded again


def test_an_unchanged_answer_without_records_is_encoded_once_per_connection(tmp_path, monkeypatch):
    import struct

    topic = Topic.create(str(tmp_path), "f", 1)
    topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": 1})])
    encoded = _counted(monkeypatch, "_fetch_response_bytes")  # a Fetch response is written by it

    async def main():
        server = KafkaServer(str(tmp_path))
        conn = Connection("consumer")
        try:
            answers = [await server._handle(_fetch_frame(c, o), conn) for c, o in ((7, 1), (8, 1), (9, 0), (10, 0))]
            topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": 2})])
            answers.append(await server._handle(_fetch_frame(11, 1), conn))  # the end moved: a new answer
            return answers
        finally:
            conn.close()
            await server.close()
    answers = asyncio.run(main())
    topic.close()
    assert [struct.unpack_from(">i", a)[0] for a in answers] == [7, 8, 9, 10, 11]
    assert answers[0][4:] == answers[1][4:] and b'{"n":1}' in answers[2] and b'{"n":1}' in answers[3]
    assert b'{"n":2}' in answers[4] and answers[4][4:] != answers[0][4:]
    # the repeat without records reused the first encoding; both answers with records were encoded
    assert len(encoded) == 4


def test_a_long_poll_at_a_watched_end_parks_on_the_watchers_read_and_wakes_at_the_next_append(tmp_path, monkeypatch):
    """Every fetch of an idle consumer: no read of the partition of its own while the watcher read
    its end less than WATCH_INTERVAL_S ago; the append through the server then wakes it, and it
    reads and answers with the record."""
    topic = Topic.create(str(tmp_path), "f", 1)
    topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": 1})])
    topic.close()
    reads = []
    real = PartitionReader.high_watermark

    async def main():
        server = KafkaServer(str(tmp_path))
        conn = Connection("consumer")
        server.storage.watch([("f", 0)])  # another connection's long poll
        watcher_reader = server.storage._watched[("f", 0)][1]

        def counted(self):
            if self is not watcher_reader:
                reads.append(1)
            return real(self)
        monkeypatch.setattr(PartitionReader, "high_watermark", counted)
        try:
            poll = asyncio.ensure_future(server._handle(_fetch_frame(7, 1, 30_000), conn))
            for _ in range(5):
                await asyncio.sleep(0)
            parked_reads, parked = len(reads), not poll.done()
            batch = encode_batch(0, [(0, 1_700_000_000_000, None, [], b'{"n":2}')])
            await server.data.produce({"Acks": -1, "TopicData": [
                {"Name": "f", "PartitionData": [{"Index": 0, "Records": batch}]}]}, 8, Connection("producer"))
            return parked_reads, parked, await poll
        finally:
            conn.close()
            await server.close()
    parked_reads, parked, answer = asyncio.run(asyncio.wait_for(main(), 20))
    assert parked and parked_reads == 0
    assert b'{"n":2}' in answer and b'{"n":1}' not in answer


def test_an_append_by_another_process_since_the_watchers_read_reaches_a_poll_parked_on_that_read(tmp_path):
    """The poll takes the watcher's read (offset 1 = its end then) although another process has
    appended since: the watcher's next read wakes it with the record, not its MaxWaitMs."""
    topic = Topic.create(str(tmp_path), "f", 1)
    topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": 1})])

    async def main():
        server = KafkaServer(str(tmp_path))
        conn = Connection("consumer")
        try:
            server.storage.watch([("f", 0)])  # another connection's long poll
            topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": 2})])  # not through the server
            return await server._handle(_fetch_frame(7, 1, 30_000), conn)
        finally:
            conn.close()
            await server.close()
    try:
        answer = asyncio.run(asyncio.wait_for(main(), 10))
    finally:
        topic.close()
    assert b'{"n":2}' in answer


def test_a_partition_stays_watched_between_two_polls_and_is_dropped_once_none_waits(tmp_path):
    """A consumer's next long poll, sent as soon as the last is answered, finds the partition's
    watch (its reader, its end read) still there; the watcher drops it at a turn where no poll waits."""
    Topic.create(str(tmp_path), "f", 1).close()

    async def main():
        storage = Storage(str(tmp_path))
        try:
            storage.watch([("f", 0)])
            first = storage._watched[("f", 0)][1]
            storage.unwatch([("f", 0)])
            storage.watch([("f", 0)])  # the next poll
            again = storage._watched[("f", 0)][1]
            storage.unwatch([("f", 0)])
            for _ in range(500):
                if ("f", 0) not in storage._watched:
                    break
                await asyncio.sleep(0.01)
            return first, again, ("f", 0) in storage._watched
        finally:
            storage.close()
    first, again, still_watched = asyncio.run(asyncio.wait_for(main(), 20))
    assert first is not None and again is first and not still_watched
