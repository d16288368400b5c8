"""A consumer group has Kafka clients (through ``logbroker serve``) or logbroker's own consumers,
never both: whichever kind comes second is refused, with a clear error on both sides."""

from __future__ import annotations

import time

import pytest

from kafka_support import module_server
from logbroker import Consumer, Producer
from logbroker.errors import GroupError

pytestmark = pytest.mark.slow  # a server process and real Kafka clients

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer as KafkaConsumer, KafkaError  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "mixed")


def _topic(server, name: str) -> None:
    with Producer(server.data_dir) as producer:
        producer.send(name, {"n": 1}, partition=0)
        producer.flush()


def test_a_kafka_client_joining_a_group_with_live_logbroker_consumers_is_refused(server):
    _topic(server, "mix-a")
    native = Consumer("mix-a", data_dir=server.data_dir, group_id="mix-a-g", auto_offset_reset="earliest")
    try:
        assert native.poll(timeout_ms=2000)  # a live member of the group
        kc = KafkaConsumer({"bootstrap.servers": server.bootstrap, "group.id": "mix-a-g",
                            "auto.offset.reset": "earliest"})
        kc.subscribe(["mix-a"])
        errors, deadline = [], time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            m = kc.poll(0.3)
            assert m is None or m.error(), "a Kafka client read from a group with logbroker consumers"
            if m is not None:
                errors.append(m.error().code())
            native.poll(timeout_ms=10)  # keep the native member's heartbeat fresh
        kc.close()
        assert errors == [KafkaError.INCONSISTENT_GROUP_PROTOCOL], \
            f"waited 20 s for the Kafka client's join to be refused with INCONSISTENT_GROUP_PROTOCOL; got {errors}"
    finally:
        native.close()


def test_a_logbroker_consumer_joining_a_group_of_kafka_clients_is_refused(server):
    _topic(server, "mix-b")
    kc = KafkaConsumer({"bootstrap.servers": server.bootstrap, "group.id": "mix-b-g", "auto.offset.reset": "earliest"})
    kc.subscribe(["mix-b"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = kc.poll(0.3)
            if m is not None and not m.error():
                break
        else:
            raise AssertionError("the Kafka client never read its record")
        with pytest.raises(GroupError, match="Kafka clients connected through logbroker serve"):
            native = Consumer("mix-b", data_dir=server.data_dir, group_id="mix-b-g")
            try:
                native.poll(timeout_ms=500)
            finally:
                native.close()
    finally:
        kc.close()
    # Once the Kafka clients have left, logbroker consumers may use the group again.
    deadline = time.monotonic() + 20
    while True:
        try:
            native = Consumer("mix-b", data_dir=server.data_dir, group_id="mix-b-g")
        except GroupError:
            assert time.monotonic() < deadline, "the group stayed marked as Kafka clients' after they left"
            time.sleep(0.2)
            continue
        native.poll(timeout_ms=200)
        native.close()
        break
