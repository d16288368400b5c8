"""``logbroker serve``'s group coordinator against an unlucky operator: a zombie member committing
with a generation that a rebalance has ended, and the server killed (-9) right after it
acknowledged an OffsetCommit. Hand-made requests on raw sockets drive the protocol step by step, so
the zombie's commit is the one a stalled real client would send; a committed offset must never move
because of it, and an acknowledged commit must be on disk when the server comes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import socket
import struct
import threading

import pytest

from kafka_support import ServerProcess
from logbroker.groups.offsets import GroupPaths, OffsetStore
from logbroker.kafka.errors import ErrorCode as E
from logbroker.kafka.schemas import by_key
from logbroker.kafka.wire import Reader, decode, encode
from logbroker.storage.topic import Topic
from waiting import wait_until

JOIN, SYNC, COMMIT, FETCH = 11, 14, 8, 9
VERSIONS = {JOIN: 3, SYNC: 2, COMMIT: 2, FETCH: 2, 15: 0}  # all before flexible versions: a v0 response header


class Wire:
    """One connection to the server; ``call`` sends one request and returns its decoded response."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.correlation = 0

    def call(self, key: int, body: dict) -> dict:
        api, version = by_key[key], VERSIONS[key]
        self.correlation += 1
        out = bytearray(struct.pack(">hhih", key, version, self.correlation, 2) + b"op")
        encode(api.request, body, version, False, out)
        self.sock.sendall(struct.pack(">i", len(out)) + bytes(out))
        size = struct.unpack(">i", self._exactly(4))[0]
        frame = self._exactly(size)
        assert struct.unpack(">i", frame[:4])[0] == self.correlation
        return decode(api.response, Reader(frame, 4), version, False)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def join(wire: Wire, group: str, member: str = "", rebalance_ms: int = 10000, session_ms: int = 30000) -> dict:
    return wire.call(JOIN, {"GroupId": group, "SessionTimeoutMs": session_ms, "RebalanceTimeoutMs": rebalance_ms,
                            "MemberId": member, "ProtocolType": "consumer",
                            "Protocols": [{"Name": "range", "Metadata": b""}]})


def sync(wire: Wire, group: str, joined: dict) -> dict:
    assignments = [{"MemberId": m["MemberId"], "Assignment": b""} for m in joined["Members"]]
    return wire.call(SYNC, {"GroupId": group, "GenerationId": joined["GenerationId"],
                            "MemberId": joined["MemberId"], "Assignments": assignments})


def commit(wire: Wire, group: str, topic: str, generation: int, member: str, offset: int) -> int:
    resp = wire.call(COMMIT, {"GroupId": group, "GenerationIdOrMemberEpoch": generation, "MemberId": member,
                              "RetentionTimeMs": -1,
                              "Topics": [{"Name": topic, "Partitions": [{"PartitionIndex": 0, "CommittedOffset": offset,
                                                                         "CommittedMetadata": ""}]}]})
    return resp["Topics"][0]["Partitions"][0]["ErrorCode"]


def fetched(wire: Wire, group: str, topic: str) -> int:
    resp = wire.call(FETCH, {"GroupId": group, "Topics": [{"Name": topic, "PartitionIndexes": [0]}]})
    part = resp["Topics"][0]["Partitions"][0]
    assert part["ErrorCode"] == 0
    return part["CommittedOffset"]


def describe(port: int, group: str) -> bytes:
    wire = Wire(port)
    try:
        return wire.call(15, {"Groups": [group]})["Groups"][0]["GroupState"].encode()
    finally:
        wire.close()


def on_disk(data: str, topic: str, group: str) -> int | None:
    return OffsetStore(GroupPaths(os.path.join(data, topic), group), topic).committed(0)


@pytest.fixture
def served(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data)
    Topic.create(data, "zt", 1)
    srv = ServerProcess(data, str(tmp_path / "requests.log"), 100)
    yield data, srv
    srv.stop()


@pytest.fixture
def pair(served):
    """The served data directory, the server and two connections to it: members a and b."""
    data, srv = served
    a, b = Wire(srv.port), Wire(srv.port)
    yield data, srv, a, b
    a.close()
    b.close()


def generation_2(srv, a: Wire, b: Wire, group: str, session_ms: int = 30000) -> tuple[dict, dict, dict]:
    """a alone in generation 1, then a and b joining together: (a's first join, a's and b's second)."""
    first = join(a, group, session_ms=session_ms)
    assert first["GenerationId"] == 1 and sync(a, group, first)["ErrorCode"] == 0
    answers: dict[str, dict] = {}
    joiner = threading.Thread(target=lambda: answers.update(b=join(b, group, session_ms=session_ms)))
    joiner.start()
    wait_until(lambda: b"PreparingRebalance" in describe(srv.port, group), "b's join parked")
    again = join(a, group, first["MemberId"], session_ms=session_ms)
    joiner.join(30)
    assert again["ErrorCode"] == 0 and again["GenerationId"] == 2 == answers["b"]["GenerationId"]
    return first, again, answers["b"]


@pytest.mark.slow
def test_a_zombie_member_dropped_by_a_rebalance_cannot_commit_over_the_new_owner(pair):
    data, srv, a, b = pair
    first = join(a, "zg", rebalance_ms=1000)
    assert first["ErrorCode"] == 0 and first["GenerationId"] == 1
    assert sync(a, "zg", first)["ErrorCode"] == 0
    assert commit(a, "zg", "zt", 1, first["MemberId"], 5) == 0

    # b joins; a (stalled: it never rejoins) is dropped when the rebalance timeout runs out.
    second = join(b, "zg")
    assert second["ErrorCode"] == 0 and second["GenerationId"] == 2
    assert [m["MemberId"] for m in second["Members"]] == [second["MemberId"]]
    assert sync(b, "zg", second)["ErrorCode"] == 0
    assert commit(b, "zg", "zt", 2, second["MemberId"], 10) == 0

    # The zombie wakes up and commits further than the new owner did, with its old generation.
    code = commit(a, "zg", "zt", 1, first["MemberId"], 100)
    assert code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION), f"the zombie's commit got error code {code}"
    assert fetched(b, "zg", "zt") == 10
    assert on_disk(data, "zt", "zg") == 10


@pytest.mark.slow
def test_a_member_still_in_the_group_cannot_commit_with_the_generation_before_a_rebalance(pair):
    data, srv, a, b = pair
    first, again, joined_b = generation_2(srv, a, b, "sg")
    (leader, lead), (follower, follow) = ((a, again), (b, joined_b)) if again["Members"] else ((b, joined_b), (a, again))
    results: dict[str, dict] = {}
    waiting = threading.Thread(target=lambda: results.update(f=sync(follower, "sg", follow)))
    waiting.start()
    assert sync(leader, "sg", lead)["ErrorCode"] == 0
    waiting.join(30)
    assert results["f"]["ErrorCode"] == 0
    assert commit(b, "sg", "zt", 2, joined_b["MemberId"], 10) == 0

    # a is still a member, but commits with generation 1: Kafka refuses it with ILLEGAL_GENERATION.
    assert commit(a, "sg", "zt", 1, first["MemberId"], 100) == E.ILLEGAL_GENERATION
    assert fetched(b, "sg", "zt") == 10
    assert on_disk(data, "zt", "sg") == 10


@pytest.mark.slow
def test_a_follower_waiting_in_sync_for_a_leader_that_died_stays_a_member_and_rejoins(pair):
    data, srv, a, b = pair
    _, again, joined_b = generation_2(srv, a, b, "lg", session_ms=2000)
    assert again["Members"], "a leads generation 2"
    # The leader's connection drops before its SyncGroup (all the server sees of a kill -9).
    a.close()
    waited = sync(b, "lg", joined_b)  # parked for the leader's assignment until the leader expires
    # Kafka's answer: rejoin. b was waiting, not silent: it is still a member, under its own id.
    assert waited["ErrorCode"] == E.REBALANCE_IN_PROGRESS, waited
    rejoined = join(b, "lg", joined_b["MemberId"], session_ms=2000)
    assert rejoined["ErrorCode"] == 0 and rejoined["GenerationId"] > 2
    assert [m["MemberId"] for m in rejoined["Members"]] == [joined_b["MemberId"]]
    assert sync(b, "lg", rejoined)["ErrorCode"] == 0
    assert commit(b, "lg", "zt", rejoined["GenerationId"], rejoined["MemberId"], 7) == 0
    assert on_disk(data, "zt", "lg") == 7


@pytest.mark.slow
def test_an_offset_commit_acknowledged_just_before_kill_9_of_the_server_is_there_after_the_restart(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data)
    Topic.create(data, "zt", 1)
    for round_ in range(3):
        srv = ServerProcess(data, str(tmp_path / f"r{round_}.log"), 100)
        wire = Wire(srv.port)
        try:
            joined = join(wire, "kg")
            assert sync(wire, "kg", joined)["ErrorCode"] == 0
            offset = 1000 * (round_ + 1)
            assert commit(wire, "kg", "zt", joined["GenerationId"], joined["MemberId"], offset) == 0
            os.kill(srv.proc.pid, signal.SIGKILL)  # at once after the acknowledgement
            srv.proc.wait()
        finally:
            wire.close()
            srv.stop()
        assert on_disk(data, "zt", "kg") == offset
        again = ServerProcess(data, str(tmp_path / f"check{round_}.log"), 100)
        check = Wire(again.port)
        try:
            assert fetched(check, "kg", "zt") == offset
        finally:
            check.close()
            assert again.stop()[0] == 0


def _group_consumer(bootstrap: str, group: str, topic: str):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000, "topic.metadata.refresh.interval.ms": 500})
    c.subscribe([topic])
    return c


def _take(c, n: int) -> list[tuple[int, bytes]]:
    got = []
    for _ in range(200):
        m = c.poll(0.25)
        if m is not None and not m.error():
            got.append((m.offset(), m.value()))
            c.commit(m, asynchronous=False)
            if len(got) == n:
                return got
    raise AssertionError(f"only {got} of {n} records arrived")


@pytest.mark.slow
def test_a_kafka_group_whose_committed_offset_fell_below_the_log_start_resumes_at_the_log_start(tmp_path):
    from confluent_kafka import Producer
    data = str(tmp_path / "data")
    os.makedirs(data)
    Topic.create(data, "zt", 1, config={"segment.bytes": 2000})
    srv = ServerProcess(data, str(tmp_path / "requests.log"), 100)
    try:
        p = Producer({"bootstrap.servers": srv.bootstrap})
        for i in range(500):
            p.produce("zt", b"v%d" % i, partition=0)
        assert p.flush(30) == 0
        c = _group_consumer(srv.bootstrap, "lg", "zt")
        assert [o for o, _ in _take(c, 10)] == list(range(10))
        c.close()
        moved = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", data, "delete-records", "zt",
                                "--partition", "0", "--before-offset", "300"], capture_output=True, text=True, timeout=60)
        assert moved.returncode == 0, moved.stderr
        c = _group_consumer(srv.bootstrap, "lg", "zt")
        assert _take(c, 2) == [(300, b"v300"), (301, b"v301")]
        c.close()
        assert on_disk(data, "zt", "lg") == 302
        assert srv.alive()
    finally:
        rc, stderr = srv.stop()
    assert rc == 0 and "Traceback" not in stderr, stderr


@pytest.mark.slow
def test_a_topic_deleted_and_recreated_under_a_kafka_group_member_delivers_only_the_new_records(tmp_path):
    from confluent_kafka import Producer
    data = str(tmp_path / "data")
    os.makedirs(data)
    Topic.create(data, "zt", 1)
    srv = ServerProcess(data, str(tmp_path / "requests.log"), 100)
    try:
        p = Producer({"bootstrap.servers": srv.bootstrap})
        for i in range(20):
            p.produce("zt", b"old-%d" % i, partition=0)
        assert p.flush(30) == 0
        c = _group_consumer(srv.bootstrap, "rg", "zt")
        assert len(_take(c, 20)) == 20
        assert on_disk(data, "zt", "rg") == 20
        c.close()
        for args in (["topics", "delete", "zt"], ["topics", "create", "zt", "--partitions", "1"]):
            done = subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", data, *args],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        for i in range(3):
            p.produce("zt", b"new-%d" % i, partition=0)
        assert p.flush(30) == 0
        c = _group_consumer(srv.bootstrap, "rg", "zt")
        # The old topic's commit (20) went with it: the new one is read from its start.
        assert _take(c, 3) == [(0, b"new-0"), (1, b"new-1"), (2, b"new-2")]
        c.close()
    finally:
        rc, stderr = srv.stop()
    assert rc == 0 and "Traceback" not in stderr, stderr


@pytest.mark.slow
def test_a_kafka_commit_from_outside_a_group_with_a_live_logbroker_member_is_refused(tmp_path):
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    data = str(tmp_path / "data")
    os.makedirs(data)
    Topic.create(data, "zt", 1)
    subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", data, "publish", "zt"], check=True,
                   input="".join(f"{i}\n" for i in range(50)), capture_output=True, text=True, timeout=60)
    member = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", data, "consume", "zt", "--group", "mg",
                               "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    srv = ServerProcess(data, str(tmp_path / "requests.log"), 100)
    try:
        for _ in range(50):
            member.stdout.readline()
        wait_until(lambda: on_disk(data, "zt", "mg") == 50, "the member's automatic commit of its 50 records")
        # A standalone client (assign, no subscribe: generation -1, no member id) commits for the group.
        outsider = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "mg", "enable.auto.commit": False})
        try:
            outsider.assign([TopicPartition("zt", 0, 0)])
            with pytest.raises(KafkaException) as refused:
                outsider.commit(offsets=[TopicPartition("zt", 0, 5000)], asynchronous=False)
            assert "UNKNOWN_MEMBER_ID" in str(refused.value), refused.value
        finally:
            outsider.close()
        assert on_disk(data, "zt", "mg") == 50
    finally:
        member.send_signal(signal.SIGINT)
        member.communicate(timeout=30)
        rc, stderr = srv.stop()
    assert rc == 0 and "Traceback" not in stderr, stderr


@pytest.mark.slow
def test_a_logbroker_consumer_and_a_kafka_client_joining_one_group_at_once_never_both_read(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data)
    Topic.create(data, "zt", 1)
    subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", data, "publish", "zt"], check=True,
                   input="".join(f"{i}\n" for i in range(20)), capture_output=True, text=True, timeout=60)
    srv = ServerProcess(data, str(tmp_path / "requests.log"), 100)
    member = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kafka_member.py")
    try:
        for round_ in range(4):
            group = f"both{round_}"
            native = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", data, "consume", "zt",
                                       "--group", group, "--from-beginning", "--timeout-ms", "4000",
                                       "--property", "print.offset=true", "--property", "print.value=false"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            threading.Event().wait(round_ * 0.3)  # from at once to the native consumer well ahead
            kafka = subprocess.Popen([sys.executable, member, "ck", srv.bootstrap, "zt", group, "6000"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            native_out, native_err = native.communicate(timeout=60)
            threading.Event().wait(3)  # the Kafka client's turn, if the native consumer went first
            kafka.send_signal(signal.SIGTERM)
            kafka_out, _ = kafka.communicate(timeout=30)
            by_native = {int(line.split(":")[-1]) for line in native_out.split()}
            by_kafka = {json.loads(line)["record"][1] for line in kafka_out.splitlines() if "record" in line}
            assert not by_native & by_kafka, (round_, sorted(by_native & by_kafka), native_err)
            assert by_native | by_kafka == set(range(20)), (round_, sorted(by_native), sorted(by_kafka), native_err)
            if native.returncode != 0:  # refused: one line saying why
                assert "Kafka clients" in native_err and not by_native, native_err
    finally:
        rc, stderr = srv.stop()
    assert rc == 0 and "Traceback" not in stderr, stderr
