"""``logbroker serve`` beside a stopped lock holder: a process holding one partition's lock and
stopped (SIGSTOP) must not stop the server. Produce to that partition waits (its records are not
answered while the holder is stopped), every other partition is served meanwhile, and once the
holder is killed the waiting records are appended once each and acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_support import ServerProcess
from logbroker.storage.topic import Topic
from waiting import wait_until

HOLD = textwrap.dedent("""
    import sys, time
    from logbroker.storage.topic import Topic
    log = Topic(sys.argv[1], "held").log(0)
    with log.locked():
        print("locked", flush=True)
        time.sleep(600)
""")


def read_values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    try:
        while len(got) < count:
            m = c.poll(10)
            assert m is not None, f"only {got} of {count} records of {topic} read back"
            if not m.error():
                got.append(m.value())
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, count), f"{topic} holds offsets {low}..{high - 1}, not exactly the {count} read"
    finally:
        c.close()
    return got


@pytest.mark.slow
def test_a_stopped_lock_holder_of_one_partition_does_not_stop_the_server_for_the_others(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data)
    for name in ("held", "free"):
        Topic.create(data, name, 1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, data], stdout=subprocess.PIPE)
    srv = None
    try:
        assert holder.stdout.readline() == b"locked\n"
        os.kill(holder.pid, signal.SIGSTOP)
        srv = ServerProcess(data, str(tmp_path / "requests.log"))
        answers: dict[bytes, object] = {}

        def on_delivery(err, msg):
            answers[msg.value()] = err if err is not None else msg.offset()

        blocked = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all"})
        other = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all"})
        blocked.produce("held", b"waits", partition=0, on_delivery=on_delivery)
        blocked.flush(2)  # sent; its append now waits for the stopped holder
        for i in range(20):
            other.produce("free", b"free-%d" % i, partition=0, on_delivery=on_delivery)
        assert other.flush(30) == 0, "a produce to another topic waited for the stopped holder"
        assert [answers[b"free-%d" % i] for i in range(20)] == list(range(20))
        blocked.poll(0.5)
        assert b"waits" not in answers, f"answered while its partition's lock holder is stopped: {answers[b'waits']}"
        assert srv.alive()

        os.kill(holder.pid, signal.SIGKILL)  # the holder dies still stopped: its flock goes with it
        holder.wait()
        wait_until(lambda: blocked.flush(0.2) == 0, "the waiting record's acknowledgement")
        assert answers[b"waits"] == 0
        assert read_values(srv.bootstrap, "held", 1) == [b"waits"]
        assert read_values(srv.bootstrap, "free", 20) == [b"free-%d" % i for i in range(20)]
        rc, stderr = srv.stop()
        srv = None
        assert rc == 0 and "Traceback" not in stderr, stderr
        assert f"waiting for the lock of partition held-0: it is held by process {holder.pid}" in stderr
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            os.kill(holder.pid, signal.SIGCONT)
            holder.wait()
        if srv is not None:
            srv.stop()
