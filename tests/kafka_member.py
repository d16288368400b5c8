"""A consumer-group member in its own process, for the ``logbroker serve`` group tests.

    python kafka_member.py ck|kp|aio BOOTSTRAP TOPIC GROUP SESSION_TIMEOUT_MS

Prints one JSON line per event on stdout: {"assigned": [partitions]} after each rebalance and
{"record": [partition, offset]} per record. Commits after each record; SIGTERM closes cleanly.
"""

from __future__ import annotations

import json
import signal
import sys

kind, bootstrap, topic, group, session_ms = sys.argv[1:6]
stop = False


def _stop(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, _stop)


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if kind == "ck":
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": int(session_ms),
                  "heartbeat.interval.ms": 500})
    c.subscribe([topic], on_assign=lambda cons, parts: emit({"assigned": sorted(p.partition for p in parts)}))
    while not stop:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        emit({"record": [m.partition(), m.offset()]})
        c.commit(m, asynchronous=False)
    c.close()
elif kind == "aio":
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.abc import ConsumerRebalanceListener as AioListener

    class AioAssigned(AioListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit({"assigned": sorted(tp.partition for tp in assigned)})

    async def run() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=int(session_ms), heartbeat_interval_ms=500)
        c.subscribe([topic], listener=AioAssigned())
        await c.start()
        while not stop:
            for records in (await c.getmany(timeout_ms=200)).values():
                for r in records:
                    emit({"record": [r.partition, r.offset]})
                await c.commit()
        await c.stop()

    asyncio.run(run())
else:
    from kafka import KafkaConsumer
    from kafka.consumer.subscription_state import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit({"assigned": sorted(tp.partition for tp in assigned)})

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=int(session_ms), heartbeat_interval_ms=500)
    c.subscribe([topic], listener=Listener())
    while not stop:
        for records in c.poll(timeout_ms=200).values():
            for r in records:
                emit({"record": [r.partition, r.offset]})
            c.commit()
    c.close()
