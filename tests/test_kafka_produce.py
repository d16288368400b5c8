"""Produce through ``logbroker serve``: idempotent retries are not appended twice, codecs the server
lacks are refused with 76, and what was acknowledged survives a kill -9 of the server."""

from __future__ import annotations

import os
import signal
import socket
import struct

import pytest

from kafka_support import ServerProcess, module_server
from waiting import wait_until
from logbroker.kafka.batch import encode_batch
from logbroker.kafka.crc32c import crc32c
from logbroker.kafka.schemas import by_key
from logbroker.kafka.wire import Reader, decode, encode

ck = pytest.importorskip("confluent_kafka")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "produce", clients_only=False)


def _idempotent_batch(producer_id: int, sequence: int, values: list[bytes]) -> bytes:
    data = bytearray(encode_batch(0, [(i, 1_764_230_400_000, None, [], v) for i, v in enumerate(values)]))
    struct.pack_into(">qhi", data, 43, producer_id, 0, sequence)
    struct.pack_into(">I", data, 17, crc32c(bytes(data[21:])))
    return bytes(data)


def _call(sock: socket.socket, api_key: int, version: int, body: dict) -> dict:
    api = by_key[api_key]
    out = bytearray(struct.pack(">hhih", api_key, version, 1, 1) + b"t")
    encode(api.request, body, version, False, out)
    sock.sendall(struct.pack(">i", len(out)) + out)
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    frame = sock.recv(size, socket.MSG_WAITALL)
    return decode(api.response, Reader(frame, 4), version, False)


def _produce(sock, topic: str, batch: bytes) -> dict:
    resp = _call(sock, 0, 8, {"Acks": -1, "TimeoutMs": 5000,
                              "TopicData": [{"Name": topic, "PartitionData": [{"Index": 0, "Records": batch}]}]})
    return resp["Responses"][0]["PartitionResponses"][0]


def test_a_retried_batch_of_an_idempotent_producer_is_acknowledged_once_and_stored_once(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        pid = _call(sock, 22, 1, {"TransactionalId": None, "TransactionTimeoutMs": 60000})["ProducerId"]
        first = _produce(sock, "idem", _idempotent_batch(pid, 0, [b"a", b"b"]))
        retry = _produce(sock, "idem", _idempotent_batch(pid, 0, [b"a", b"b"]))
        second = _produce(sock, "idem", _idempotent_batch(pid, 2, [b"c"]))
        gap = _produce(sock, "idem", _idempotent_batch(pid, 9, [b"x"]))
        end = _call(sock, 2, 5, {"ReplicaId": -1, "Topics": [{"Name": "idem", "Partitions": [
            {"PartitionIndex": 0, "Timestamp": -1}]}]})["Topics"][0]["Partitions"][0]["Offset"]
    assert (first["ErrorCode"], first["BaseOffset"]) == (0, 0)
    assert (retry["ErrorCode"], retry["BaseOffset"]) == (0, 0)
    assert (second["ErrorCode"], second["BaseOffset"]) == (0, 2)
    assert gap["ErrorCode"] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert end == 3


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_compression_codec_is_accepted_and_read_back(server, codec):
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({"bootstrap.servers": server.bootstrap, "compression.type": codec, "linger.ms": 20})
    values = [b"%s-%d-" % (codec.encode(), i) * 20 for i in range(50)]
    for v in values:
        p.produce(f"codec-{codec}", value=v, partition=0)
    assert p.flush(20) == 0
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "x", "enable.auto.commit": False})
    c.assign([TopicPartition(f"codec-{codec}", 0, 0)])
    got = []
    while len(got) < 50:
        m = c.poll(10)
        assert m is not None, f"{len(got)} of 50 {codec} records read back"
        if not m.error():
            got.append(m.value())
    c.close()
    assert got == values


@pytest.mark.slow
def test_records_acknowledged_with_acks_all_survive_a_kill_9_of_the_server(tmp_path):
    from confluent_kafka import Consumer, Producer, TopicPartition
    data = str(tmp_path / "data")
    srv = ServerProcess(data, str(tmp_path / "r1.log"))
    acked = []
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(200):
        p.produce("durable", value=b"%d" % i, partition=0,
                  on_delivery=lambda err, msg: acked.append(msg.offset()) if err is None else None)
    p.flush(20)
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    assert len(acked) == 200
    again = ServerProcess(data, str(tmp_path / "r2.log"))
    try:
        c = Consumer({"bootstrap.servers": again.bootstrap, "group.id": "x", "enable.auto.commit": False})
        c.assign([TopicPartition("durable", 0, 0)])
        got = []
        while len(got) < 200:
            m = c.poll(10)
            assert m is not None, f"only {len(got)} of 200 acknowledged records after the restart"
            if not m.error():
                got.append(int(m.value()))
        c.close()
        assert got == list(range(200))
    finally:
        again.stop()


def test_under_fsync_interval_a_lone_record_becomes_visible_without_another_append(server):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("lazy", 1, 1, config={"fsync": "interval", "flush.ms": "200"})])["lazy"].result(15)
    p = Producer({"bootstrap.servers": server.bootstrap})
    p.produce("lazy", value=b"only", partition=0)
    assert p.flush(20) == 0
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "x", "enable.auto.commit": False})
    c.assign([TopicPartition("lazy", 0, 0)])
    m = None
    for _ in range(40):
        m = c.poll(0.5)
        if m is not None and not m.error():
            break
    c.close()
    assert m is not None and m.value() == b"only", f"after 40 polls of lazy-0 the last message was {m}"


def test_a_long_poll_is_answered_with_a_record_another_process_appends_meanwhile(server):
    import subprocess
    import sys
    import threading
    subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, "topics", "create", "watched",
                    "--partitions", "1"], check=True, capture_output=True, timeout=60)
    result = {}

    def long_poll():
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            result["resp"] = _call(sock, 1, 11, {"ReplicaId": -1, "MaxWaitMs": 20000, "MinBytes": 1, "Topics": [
                {"Topic": "watched", "Partitions": [{"Partition": 0, "FetchOffset": 0, "PartitionMaxBytes": 1 << 20}]}]})

    fetches = sum(1 for r in server.requests() if r[1] == 1)
    poller = threading.Thread(target=long_poll)
    poller.start()
    wait_until(lambda: sum(1 for r in server.requests() if r[1] == 1) > fetches,  # the poll is parked on the server
               "the server to receive the long poll",
               seen=lambda: "no new Fetch request" if poller.is_alive() else "the polling thread had ended")
    subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, "publish", "watched"],
                   input='{"from":"another process"}\n', text=True, check=True, capture_output=True, timeout=60)
    poller.join(60)
    assert "resp" in result, ("the long poll was not answered within 60 s of the append" if poller.is_alive()
                              else "the polling thread ended without an answer")
    part = result["resp"]["Responses"][0]["Partitions"][0]
    # Without a watch on other processes' appends the poll would end empty at its 20 s timeout.
    assert part["ErrorCode"] == 0 and part["HighWatermark"] == 1 and b'{"from":"another process"}' in part["Records"]
