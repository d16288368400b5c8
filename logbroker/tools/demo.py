"""``logbroker demo``: the whole model in one command, with real processes.

It creates a topic with three partitions, starts two consumer processes in group ``shipping`` and
one in group ``analytics``, publishes generated orders from this process, and shows who received
what: inside a group the partitions are split, and each group receives every order. Consumers are
separate Python processes sharing nothing but the data directory, as in real life.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson

from ..groups.admin import describe_group, group_members
from ..broker import Broker
from ..errors import UnknownTopicError
from .generator import generate_orders
from ..clients.producer import Producer
from .render import group_description, topic_description

__all__ = ["run_demo", "DEMO_TOPIC"]

DEMO_TOPIC = "kpop_merchandise_orders_demo"
_MEMBERS = (("shipping-1", "shipping"), ("shipping-2", "shipping"), ("analytics-1", "analytics"))

# The member process: join, say "ready", report every record as a JSON line, stop on stdin EOF.
_MEMBER_CODE = """
import sys, threading, orjson
from logbroker.clients.consumer import Consumer
data_dir, topic, group = sys.argv[1:4]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
c = Consumer(topic, data_dir=data_dir, group_id=group, auto_offset_reset="earliest", session_timeout_ms=3000)
c.poll(timeout_ms=0)
print("ready", flush=True)
while not stop.is_set():
    for tp, records in c.poll(timeout_ms=50).items():
        for r in records:
            sys.stdout.write(orjson.dumps([r.partition, r.offset]).decode() + "\\n")
        sys.stdout.flush()
    c.commit()
c.close()
print("done", flush=True)
"""


@dataclass
class _Member:
    name: str
    group: str
    proc: subprocess.Popen
    received: list[tuple[int, int]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                self.ready.set()
            elif line.startswith("["):
                p, o = orjson.loads(line)
                self.received.append((p, o))


def run_demo(data_dir: str | None, say: Callable[[str], None], orders: int = 30) -> dict:
    """Run the demo and narrate it through ``say``; returns the per-member results."""
    broker = Broker(data_dir)
    say(f"logbroker demo — data directory: {os.path.abspath(broker.data_dir)}\n")
    try:
        broker.delete_topic(DEMO_TOPIC)
    except UnknownTopicError:
        pass
    broker.create_topic(DEMO_TOPIC, partitions=3)
    say(f"1. Created topic {DEMO_TOPIC} with 3 partitions.")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")])}
    members = []
    for name, group in _MEMBERS:
        proc = subprocess.Popen([sys.executable, "-c", _MEMBER_CODE, broker.data_dir, DEMO_TOPIC, group],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        m = _Member(name, group, proc)
        threading.Thread(target=m.read, daemon=True).start()
        members.append(m)
    try:
        for m in members:
            if not m.ready.wait(30):
                raise RuntimeError(f"consumer {m.name} did not start")
        time.sleep(0.5)  # let the two shipping members settle their split
        say("2. Started 3 consumer processes: shipping-1 and shipping-2 in group \"shipping\", "
            "analytics-1 in group \"analytics\".")

        with Producer(broker.data_dir) as producer:
            for order in generate_orders(orders, seed=2026):
                producer.send(DEMO_TOPIC, order, key=order["txid"])
        say(f"3. Published {orders} orders (keyed by txid, so Kafka's partitioner spreads them).")

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            per_group = {}
            for m in members:
                per_group.setdefault(m.group, set()).update(m.received)
            if all(len(v) >= orders for v in per_group.values()):
                break
            time.sleep(0.05)
    finally:
        for m in members:
            try:
                m.proc.stdin.close()
            except OSError:
                pass
        for m in members:
            try:
                m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()

    say("\n4. Who received what:")
    width = max(len(m.name) for m in members)
    say(f"   {'CONSUMER'.ljust(width)}  GROUP      PARTITIONS  ORDERS")
    for m in members:
        parts = ", ".join(str(p) for p in sorted({p for p, _ in m.received})) or "-"
        say(f"   {m.name.ljust(width)}  {m.group.ljust(9)}  {parts.ljust(10)}  {len(m.received)}")
    shipping = [m for m in members if m.group == "shipping"]
    analytics = [m for m in members if m.group == "analytics"]
    shipped = [r for m in shipping for r in m.received]
    twice = len(shipped) - len(set(shipped))
    say(f"   -> same group (shipping): the partitions are split between its members; together they "
        f"processed {len(set(shipped))} of {orders} orders"
        + (", none twice." if not twice else f", {twice} twice (a rebalance moved a partition mid-way)."))
    say(f"   -> different groups: analytics on its own also received all {len(analytics[0].received)} orders "
        "(fan-out). Two groups are two independent readers of the whole topic.")

    # The same tables as the commands they name, from the same render functions.
    say(f"\n5. Topic statistics (logbroker topics describe {DEMO_TOPIC}):")
    say(_indent(topic_description(broker.describe_topic(DEMO_TOPIC))))
    for number, group in ((6, "shipping"), (7, "analytics")):
        say(f"\n{number}. Group statistics (logbroker groups describe {group}):")
        say(_indent(group_description(group, describe_group(broker.data_dir, group),
                                      group_members(broker.data_dir, group))))
    say("\nThe records stay on disk. Try next, in two terminals:\n"
        f"   logbroker consume {DEMO_TOPIC} --group shipping --from-beginning --format pretty\n"
        f"   logbroker generate 5 | logbroker publish {DEMO_TOPIC}")
    return {m.name: {"group": m.group, "received": m.received} for m in members}


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
