"""confluent-kafka, kafka-python 3 and aiokafka against ``logbroker serve`` (a server process per
module): admin, produce, consume, offsets, configs, compression, idempotence, transactions refused,
and a Hypothesis round trip of arbitrary bytes through a real client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_support import module_server
from waiting import wait_until

pytestmark = pytest.mark.slow  # a server process and real Kafka clients

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "clients")


def _consume_all(bootstrap: str, topic: str, partition: int, n: int, timeout: float = 20.0) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []

    def read_one() -> bool:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
        return len(got) >= n
    wait_until(read_one, f"{n} records of {topic}-{partition}", timeout, seen=lambda: [m.value() for m in got], interval=0)
    c.close()
    return got


def test_confluent_admin_creates_refuses_duplicates_describes_and_deletes_topics(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("ck-admin", 2, 1, config={"retention.ms": "3600000"})])["ck-admin"].result(15)
    with pytest.raises(KafkaException) as info:
        admin.create_topics([NewTopic("ck-admin", 2, 1)])["ck-admin"].result(15)
    assert info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    md = admin.list_topics(timeout=10)
    assert len(md.topics["ck-admin"].partitions) == 2
    res = ConfigResource(ConfigResource.Type.TOPIC, "ck-admin")
    configs = admin.describe_configs([res])[res].result(15)
    assert configs["retention.ms"].value == "3600000" and not configs["retention.ms"].is_default
    assert configs["segment.bytes"].is_default
    described = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, "topics",
                                "describe", "ck-admin"], capture_output=True, text=True, timeout=60, check=True)
    assert "PartitionCount: 2" in described.stdout and "retention.ms=3600000" in described.stdout
    broker = ConfigResource(ConfigResource.Type.BROKER, "0")
    assert admin.describe_configs([broker])[broker].result(15)["num.partitions"].value == "3"
    admin.delete_topics(["ck-admin"])["ck-admin"].result(15)
    assert "ck-admin" not in admin.list_topics(timeout=10).topics


def test_confluent_idempotent_producer_keys_headers_watermarks_and_offsets_for_times(server):
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("ck-data", 1, 1)])["ck-data"].result(15)
    p = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    base = 1_764_230_400_000
    for i in range(10):
        p.produce("ck-data", value=b"v%d" % i, key=b"k%d" % i, headers=[("h", b"1"), ("h", b"2")],
                  partition=0, timestamp=base + 1000 * i)
    assert p.flush(15) == 0
    got = _consume_all(server.bootstrap, "ck-data", 0, 10)
    assert [(m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in got] == [
        (b"k%d" % i, b"v%d" % i, [("h", b"1"), ("h", b"2")], base + 1000 * i) for i in range(10)]
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition("ck-data", 0), timeout=10) == (0, 10)
    [found] = c.offsets_for_times([TopicPartition("ck-data", 0, base + 3500)], timeout=10)
    assert found.offset == 4
    [beyond] = c.offsets_for_times([TopicPartition("ck-data", 0, base + 10**9)], timeout=10)
    assert beyond.offset == -1  # no record that late: the end (librdkafka reports it as -1)
    c.close()


def test_confluent_transactional_producer_is_refused(server):
    p = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "tx-1"})
    with pytest.raises(KafkaException) as info:
        p.init_transactions(15)
    assert info.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_kafka_python_idempotent_gzip_producer_and_consumer(server):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, compression_type="gzip")  # idempotent by default
    for i in range(20):
        producer.send("kp-data", value=b"value-%d" % i, key=b"k", headers=[("n", str(i).encode())], partition=i % 2)
    producer.flush(15)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, consumer_timeout_ms=3000, auto_offset_reset="earliest")
    consumer.assign([KTP("kp-data", 0), KTP("kp-data", 1)])
    got = sorted(((m.partition, m.offset, m.value, m.headers) for m in consumer), key=lambda t: (t[0], t[1]))
    assert [g[2] for g in got] == [b"value-%d" % i for i in range(0, 20, 2)] + [b"value-%d" % i for i in range(1, 20, 2)]
    assert got[0][3] == [("n", b"0")]
    assert consumer.end_offsets([KTP("kp-data", 0), KTP("kp-data", 1)]) == {KTP("kp-data", 0): 10, KTP("kp-data", 1): 10}
    consumer.close()


def test_kafka_python_admin_creates_describes_and_deletes(server):
    from kafka.admin import ConfigResource as KCR, ConfigResourceType, KafkaAdminClient, NewTopic as KNT
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    admin.create_topics([KNT("kp-admin", 4, 1, topic_configs={"segment.bytes": "1048576"})])
    assert "kp-admin" in admin.list_topics()
    described = admin.describe_configs([KCR(ConfigResourceType.TOPIC, "kp-admin")], config_filter="all")
    assert "retention.ms" in str(described) and "1048576" in str(described)
    admin.delete_topics(["kp-admin"])
    assert "kp-admin" not in admin.list_topics()
    admin.close()


def test_aiokafka_produces_and_a_group_consumer_reads_and_commits(server):
    aiokafka = pytest.importorskip("aiokafka")

    async def run():
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=server.bootstrap)
        await producer.start()
        for i in range(6):
            await producer.send_and_wait("aio-data", b"a%d" % i, key=b"k%d" % i, partition=i % 3)
        await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer("aio-data", bootstrap_servers=server.bootstrap, group_id="aio-g",
                                             auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 6:
            assert time.monotonic() < deadline, f"timed out after 30 s waiting for 6 records of aio-data; read {got}"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got += [r.value for r in records]
        await consumer.commit()
        committed = await consumer.committed(aiokafka.TopicPartition("aio-data", 0))
        await consumer.stop()
        return sorted(got), committed

    got, committed = asyncio.run(run())
    assert got == [b"a%d" % i for i in range(6)]
    assert committed == 2


class _RoundTrip:
    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self.tp = KTP("hyp-bytes", 0)
        self.producer.send("hyp-bytes", b"warm-up", partition=0).get(15)
        self.consumer.assign([self.tp])
        self.offset = 0
        self._next(1)

    def _next(self, n: int) -> list:
        got: list = []

        def poll() -> bool:
            for records in self.consumer.poll(timeout_ms=500).values():
                got.extend(records)
            return len(got) >= n
        wait_until(poll, f"{n} more records of hyp-bytes-0", 20, seen=lambda: got, interval=0)
        return got

    def send(self, key, value, headers):
        self.producer.send("hyp-bytes", value=value, key=key, headers=headers, partition=0).get(15)
        [m] = self._next(1)
        return m.key, m.value, m.headers


@pytest.fixture(scope="module")
def round_trip(server):
    rt = _RoundTrip(server.bootstrap)
    yield rt
    rt.producer.close()
    rt.consumer.close()


@settings(max_examples=40, deadline=None)
@given(key=st.none() | st.binary(max_size=30), value=st.binary(max_size=60) | st.sampled_from([b"null", b'{"a":1}', b'{"a": 1}', b"v1"]),
       headers=st.lists(st.tuples(st.text(max_size=6), st.binary(max_size=10)), max_size=3))
def test_arbitrary_bytes_keys_values_and_headers_round_trip_through_a_real_client(round_trip, key, value, headers):
    assert round_trip.send(key, value, headers) == (key, value, headers)
