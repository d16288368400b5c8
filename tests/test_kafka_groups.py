"""Consumer groups of Kafka clients in separate processes against ``logbroker serve``: two members
split three partitions, commit and resume, and a kill -9 hands everything to the survivor."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kafka_support import module_server

pytest.importorskip("confluent_kafka")
pytest.importorskip("kafka")

pytestmark = pytest.mark.slow
MEMBER = str(Path(__file__).with_name("kafka_member.py"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "groups")


class Member:
    def __init__(self, kind: str, bootstrap: str, topic: str, group: str, session_ms: int = 6000) -> None:
        self.proc = subprocess.Popen([sys.executable, MEMBER, kind, bootstrap, topic, group, str(session_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: queue.Queue = queue.Queue()
        self.assigned: list[int] = []
        self.records: set[tuple[int, int]] = set()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def drain(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if "assigned" in event:
                self.assigned = event["assigned"]
            else:
                self.records.add(tuple(event["record"]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait(members, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.drain()
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {[(m.assigned, len(m.records)) for m in members]}")


def _produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, value=b"%d" % i, key=b"key-%d" % i)
    assert p.flush(20) == 0


def _create(server, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": server.bootstrap})  # kept alive until the result is in
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(15)


@pytest.mark.parametrize("kinds", [("ck", "ck"), ("kp", "kp"), ("aio", "aio"), ("ck", "kp"), ("ck", "aio")],
                         ids="+".join)
def test_two_member_processes_split_three_partitions_consume_everything_and_commit(server, kinds):
    topic, group = f"g2-{'-'.join(kinds)}", f"grp-{'-'.join(kinds)}"
    _create(server, topic)
    members = [Member(kind, server.bootstrap, topic, group) for kind in kinds]
    try:
        _wait(members, lambda: sorted(p for m in members for p in m.assigned) == [0, 1, 2]
              and all(m.assigned for m in members), 60, "a disjoint covering assignment")
        _produce(server.bootstrap, topic, 30)
        _wait(members, lambda: len(set().union(*(m.records for m in members))) == 30, 60, "30 records")
        assert sum(len(m.records) for m in members) == 30  # none read twice
    finally:
        for m in members:
            m.stop()
    described = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", server.data_dir, "groups",
                                "describe", group], capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split() for line in described.splitlines()[2:]]
    assert len(rows) == 3 and all(r[2] == r[3] and r[4] == "0" for r in rows), described  # committed == end


@pytest.mark.parametrize("kind", ["ck", "kp"])
def test_kill_9_of_one_member_hands_all_partitions_to_the_survivor_within_the_session_timeout(server, kind):
    topic, group = f"fo-{kind}", f"fo-grp-{kind}"
    _create(server, topic)
    members = [Member(kind, server.bootstrap, topic, group, session_ms=3000) for _ in range(2)]
    try:
        _wait(members, lambda: sorted(p for m in members for p in m.assigned) == [0, 1, 2]
              and all(m.assigned for m in members), 60, "a disjoint covering assignment")
        os.kill(members[0].proc.pid, signal.SIGKILL)
        members[0].proc.wait()
        _wait(members[1:], lambda: members[1].assigned == [0, 1, 2], 30, "the survivor to own every partition")
        _produce(server.bootstrap, topic, 9)
        _wait(members[1:], lambda: len(members[1].records) == 9, 30, "the survivor to read all 9 records")
    finally:
        for m in members:
            m.stop()


def test_commits_survive_a_server_restart_and_reset_offsets_moves_where_kafka_clients_resume(tmp_path):
    from kafka_support import ServerProcess, run_kcat
    data = str(tmp_path / "data")
    first = ServerProcess(data, str(tmp_path / "r1.log"))
    try:
        run_kcat(first.bootstrap, "-P", "-t", "rs", "-p", "0", input="".join(f"m{i}\n" for i in range(10)))
        got = run_kcat(first.bootstrap, "-G", "rs-g", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%s\n", "rs")
        assert len(got.splitlines()) == 10
    finally:
        assert first.stop()[0] == 0
    second = ServerProcess(data, str(tmp_path / "r2.log"))
    try:
        again = run_kcat(second.bootstrap, "-G", "rs-g", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%s\n",
                         "rs")
        assert again == ""  # resumed from the commits made before the restart
        subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", data, "groups", "reset-offsets", "rs-g",
                        "--topic", "rs", "--to-earliest", "--execute"], check=True, capture_output=True, timeout=60)
        replayed = run_kcat(second.bootstrap, "-G", "rs-g", "-X", "auto.offset.reset=latest", "-e", "-q", "-f",
                            "%s\n", "rs")
        assert replayed.splitlines() == [f"m{i}" for i in range(10)]
    finally:
        assert second.stop()[0] == 0
