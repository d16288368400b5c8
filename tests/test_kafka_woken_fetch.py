"""A long poll woken by an append through the server (the end-to-end latency's path), without a
network: what it reads, and in which order the woken fetch and the produce are answered."""

from __future__ import annotations

import asyncio
import time

from logbroker.kafka.batch import encode_batch
from logbroker.kafka.server import Connection, KafkaServer
from logbroker.storage.reader import PartitionReader
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic


def _fetch(offset: int, min_bytes: int = 1, max_wait_ms: int = 30_000) -> dict:
    return {"MaxWaitMs": max_wait_ms, "MinBytes": min_bytes, "Topics": [{"Topic": "w", "Partitions": [
        {"Partition": 0, "FetchOffset": offset, "PartitionMaxBytes": 1 << 20}]}]}


def _produce(n: int) -> dict:
    batch = encode_batch(0, [(0, int(time.time() * 1000), None, [], b'{"n":%d}' % n)])
    return {"Acks": -1, "TopicData": [{"Name": "w", "PartitionData": [{"Index": 0, "Records": batch}]}]}


def _woken_poll(tmp_path, monkeypatch, offset: int, more_bytes: bool = False) -> tuple[dict, int, list]:
    """Park a fetch at ``offset``, produce one record through the server; the fetch's answer, how many
    log start offsets the partition's readers read once it parked, and the order things finished.
    ``more_bytes``: the fetch's MinBytes is one byte more than what it finds before the produce."""
    topic = Topic.create(str(tmp_path), "w", 1)
    topic.log(0).append([PendingRecord(1_700_000_000_000, None, None, {"n": i}) for i in range(3)])
    topic.close()
    reads, order = [], []
    real = PartitionReader.log_start_offset

    def counted(self):
        reads.append(1)
        return real(self)
    monkeypatch.setattr(PartitionReader, "log_start_offset", counted)

    async def main():
        server = KafkaServer(str(tmp_path))
        producer, consumer = Connection("producer"), Connection("consumer")
        try:
            min_bytes = 1
            if more_bytes:
                sizer = Connection("sizer")
                first = await server.data.fetch(_fetch(offset, max_wait_ms=0), 11, sizer)
                sizer.close()
                min_bytes = len(first["Responses"][0]["Partitions"][0]["Records"]) + 1
            fetch = asyncio.ensure_future(server.data.fetch(_fetch(offset, min_bytes), 11, consumer))
            fetch.add_done_callback(lambda _: order.append("fetch"))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not fetch.done()
            del reads[:]
            produce = asyncio.ensure_future(server.data.produce(_produce(3), 8, producer))
            produce.add_done_callback(lambda _: order.append("produce"))
            acked = await produce
            assert acked["Responses"][0]["PartitionResponses"][0]["ErrorCode"] == 0
            return await asyncio.wait_for(fetch, 10)
        finally:
            producer.close()
            consumer.close()
            await server.close()
    got = asyncio.run(main())
    return got["Responses"][0]["Partitions"][0], len(reads), order


def test_a_poll_woken_at_the_end_reads_no_log_start_offset_and_reports_the_known_one(tmp_path, monkeypatch):
    part, log_start_reads, _ = _woken_poll(tmp_path, monkeypatch, 3)
    assert b'{"n":3}' in part["Records"] and part["HighWatermark"] == 4 and part["ErrorCode"] == 0
    assert part["LogStartOffset"] == 0
    assert log_start_reads == 0  # no directory listing or checkpoint read between the append and the answer


def test_a_poll_woken_after_reading_records_short_of_min_bytes_reads_a_fresh_log_start(tmp_path, monkeypatch):
    """Its offset was below the end when it parked: checked against a log start read now."""
    part, log_start_reads, _ = _woken_poll(tmp_path, monkeypatch, 1, more_bytes=True)
    assert b'{"n":1}' in part["Records"] and b'{"n":3}' in part["Records"] and part["HighWatermark"] == 4
    assert log_start_reads == 1


def test_a_waiting_fetch_is_answered_before_the_produce_that_woke_it(tmp_path, monkeypatch):
    """The fetch is latency-critical end to end; the produce's acknowledgement is not."""
    _, _, order = _woken_poll(tmp_path, monkeypatch, 3)
    assert order == ["fetch", "produce"]


def test_a_fetch_response_written_field_by_field_has_the_schemas_bytes_in_every_version():
    """Or is left to the schema's encoder (None) when it holds what the fetch handler never answers."""
    from logbroker.kafka.schemas import FETCH
    from logbroker.kafka.server import _fetch_response_bytes
    from logbroker.kafka.wire import encode

    def part(index, error=0, records=b"", **extra):
        return {"PartitionIndex": index, "ErrorCode": error, "HighWatermark": 7 + index, "LastStableOffset": 7 + index,
                "LogStartOffset": index, "AbortedTransactions": None, "PreferredReadReplica": -1, "Records": records,
                **extra}
    answers = [
        {"ErrorCode": 0, "SessionId": 0, "Responses": [{"Topic": "w", "Partitions": [part(0, records=b"\x01" * 70)]}]},
        {"ErrorCode": 0, "SessionId": 0, "Responses": [
            {"Topic": "orders-\u00e9", "Partitions": [part(0), part(1, error=1), part(2, records=None)]},
            {"Topic": "t", "Partitions": []}]},
        {"ErrorCode": 0, "SessionId": 0, "Responses": []},
        {"ThrottleTimeMs": 5, "ErrorCode": 0, "SessionId": 3, "Responses": [{"Topic": "w", "Partitions": [part(4)]}]},
    ]
    for version in range(4, 12):
        for answer in answers:
            expected = bytearray()
            encode(FETCH.response, answer, version, False, expected)
            assert _fetch_response_bytes(answer, version) == bytes(expected), (version, answer)
    assert _fetch_response_bytes({"ErrorCode": 41}, 11) is None  # a handler's failure: no Responses
    aborted = {"ErrorCode": 0, "SessionId": 0, "Responses": [{"Topic": "w", "Partitions": [
        part(0, AbortedTransactions=[{"ProducerId": 1, "FirstOffset": 0}])]}]}
    assert _fetch_response_bytes(aborted, 11) is None
