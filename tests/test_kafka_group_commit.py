"""Group commit of pipelined produce requests: a server in this process, a client that writes many
ProduceRequests before reading any response, and the storage layer's fsyncs counted or failed
through its fault hook."""

from __future__ import annotations

import asyncio
import errno
import struct

from logbroker import Broker
from logbroker.kafka.batch import encode_batch
from logbroker.kafka.crc32c import crc32c
from logbroker.kafka.schemas import by_key
from logbroker.kafka.server import KafkaServer, ServerConfig
from logbroker.kafka.wire import Reader, decode, encode

T = 1_764_230_400_000


def _batch(values: list[bytes], producer_id: int = -1, sequence: int = -1) -> bytes:
    data = bytearray(encode_batch(0, [(i, T, None, [], v) for i, v in enumerate(values)]))
    struct.pack_into(">qhi", data, 43, producer_id, 0, sequence)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    return bytes(data)


def _request(api_key: int, version: int, correlation: int, body: dict) -> bytes:
    out = bytearray(struct.pack(">hhih", api_key, version, correlation, 1) + b"t")
    encode(by_key[api_key].request, body, version, False, out)
    return struct.pack(">i", len(out)) + out


def _produce(correlation: int, topic: str, batch: bytes) -> bytes:
    return _request(0, 8, correlation, {"Acks": -1, "TimeoutMs": 5000, "TopicData": [
        {"Name": topic, "PartitionData": [{"Index": 0, "Records": batch}]}]})


async def _responses(reader: asyncio.StreamReader, n: int, api_key: int, version: int) -> list[tuple[int, dict]]:
    out = []
    for _ in range(n):
        size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 30))[0]
        frame = await reader.readexactly(size)
        out.append((struct.unpack_from(">i", frame)[0], decode(by_key[api_key].response, Reader(frame, 4), version, False)))
    return out


def _pipelined(data_dir: str, requests: list[bytes], api_key: int = 0, version: int = 8) -> list[tuple[int, dict]]:
    """Send every request in one write, then read as many responses."""
    async def main():
        srv = KafkaServer(data_dir, ServerConfig(port=0))
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"".join(requests))
            await writer.drain()
            got = await _responses(reader, len(requests), api_key, version)
            writer.close()
            return got
        finally:
            await srv.close()
    return asyncio.run(main())


def _partition(responses):
    return [(c, r["Responses"][0]["PartitionResponses"][0]) for c, r in responses]


def test_pipelined_produce_requests_share_fsyncs_and_are_answered_in_order(tmp_path, fault_hook):
    Broker(str(tmp_path)).create_topic("gc", 1)
    fsyncs = []
    fault_hook(lambda op, target: fsyncs.append(target) if op == "fsync" and str(target).endswith(".log") else None)
    got = _partition(_pipelined(str(tmp_path), [_produce(i, "gc", _batch([b"%d" % i, b"x"])) for i in range(40)]))
    assert [c for c, _ in got] == list(range(40))
    assert [(p["ErrorCode"], p["BaseOffset"]) for _, p in got] == [(0, 2 * i) for i in range(40)]
    assert 0 < len(fsyncs) < 40  # one per request without group commit
    values = [r.value for r in Broker(str(tmp_path)).topic("gc").reader(0).read(0, max_records=100)]
    assert values == [v for i in range(40) for v in (i, b"x")]


def test_produce_requests_waiting_unread_behind_an_fsync_all_join_the_next_group_commit(tmp_path, fault_hook):
    """librdkafka keeps many produce requests in flight: those that arrived while the event loop
    was held by a group commit's fdatasync (here: 40 sent in one write) are read together and
    share one fdatasync, instead of 16 per fdatasync, each later one waiting for the one before."""
    fsyncs = []
    fault_hook(lambda op, target: fsyncs.append(target) if op == "fsync" and str(target).endswith(".log") else None)
    counts = []
    for n in (1, 40):
        data_dir = str(tmp_path / str(n))
        Broker(data_dir).create_topic("gc", 1)
        del fsyncs[:]
        got = _partition(_pipelined(data_dir, [_produce(i, "gc", _batch([b"%d" % i])) for i in range(n)]))
        assert [(c, p["ErrorCode"], p["BaseOffset"]) for c, p in got] == [(i, 0, i) for i in range(n)]
        counts.append(len(fsyncs))
    assert counts[1] == counts[0]  # 40 requests cost the fsyncs of one


def test_pipelined_batches_of_one_idempotent_producer_are_all_appended_in_sequence(tmp_path):
    Broker(str(tmp_path)).create_topic("idem", 1)
    requests = [_request(22, 1, 100, {"TransactionalId": None, "TransactionTimeoutMs": 60000})]
    [(_, init)] = _pipelined(str(tmp_path), requests, 22, 1)
    pid = init["ProducerId"]
    got = _partition(_pipelined(str(tmp_path), [_produce(i, "idem", _batch([b"1", b"2"], pid, 2 * i))
                                                 for i in range(10)]))
    assert [(p["ErrorCode"], p["BaseOffset"]) for _, p in got] == [(0, 2 * i) for i in range(10)]


def test_a_failed_fsync_fails_every_produce_request_it_covered(tmp_path, fault_hook):
    Broker(str(tmp_path)).create_topic("gc", 1)

    def hook(op, target):
        if op == "fsync" and str(target).endswith(".log"):
            raise OSError(errno.EIO, "injected")
    fault_hook(hook)
    got = _partition(_pipelined(str(tmp_path), [_produce(i, "gc", _batch([b"1"])) for i in range(20)]))
    assert [c for c, _ in got] == list(range(20))
    assert {p["ErrorCode"] for _, p in got} == {56}  # KAFKA_STORAGE_ERROR, none acknowledged


def test_a_record_too_large_fails_only_its_own_request_of_a_group(tmp_path):
    Broker(str(tmp_path)).create_topic("small", 1, {"max.message.bytes": 2000})
    requests = [_produce(i, "small", _batch([b"7" * (5000 if i == 5 else 10)])) for i in range(12)]
    got = _partition(_pipelined(str(tmp_path), requests))
    assert [p["ErrorCode"] for _, p in got] == [10 if i == 5 else 0 for i in range(12)]  # MESSAGE_TOO_LARGE
    assert [p["BaseOffset"] for _, p in got if not p["ErrorCode"]] == list(range(11))
