"""Hostile network input against ``logbroker serve``: the server never crashes and other clients
never notice. Raw sockets, plus a Hypothesis fuzz of random and mutated real requests."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafka_support import module_server
from logbroker.kafka.schemas import by_key
from logbroker.kafka.wire import encode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "hostile", clients_only=False)


def _request(api_key: int, version: int, body: dict, correlation: int = 7, client: bytes = b"t") -> bytes:
    api = by_key[api_key]
    out = bytearray(struct.pack(">hhih", api_key, version, correlation, len(client)) + client)
    if api.flexible(version):
        out.append(0)
    encode(api.request, body, version, api.flexible(version), out)
    return struct.pack(">i", len(out)) + bytes(out)


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def _recv_frame(s: socket.socket) -> bytes:
    head = _recv_exactly(s, 4)
    return _recv_exactly(s, struct.unpack(">i", head)[0])


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _closed(s: socket.socket) -> bool:
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def _healthy(server) -> None:
    """Another client is served as usual: ApiVersions v3 answered with error 0."""
    assert server.alive()
    with _connect(server) as s:
        s.sendall(_request(18, 3, {"ClientSoftwareName": "probe", "ClientSoftwareVersion": "1"}, correlation=99))
        frame = _recv_frame(s)
    assert struct.unpack(">ih", frame[:6]) == (99, 0)


def test_api_versions_at_an_unknown_version_gets_error_35_in_the_v0_form(server):
    with _connect(server) as s:
        s.sendall(struct.pack(">ihhih", 10, 18, 9, 5, 0))
        frame = _recv_frame(s)
    correlation, error, count = struct.unpack(">ihi", frame[:10])
    assert (correlation, error, count) == (5, 35, 1)
    assert struct.unpack(">hhh", frame[10:16]) == (18, 0, 4)


def test_unknown_api_closes_that_connection_only(server):
    with _connect(server) as other:
        with _connect(server) as s:
            s.sendall(struct.pack(">ihhih", 10, 999, 0, 1, 0))
            assert _closed(s)
        other.sendall(_request(3, 8, {"Topics": []}, correlation=3))
        assert struct.unpack(">i", _recv_frame(other)[:4]) == (3,)


def test_version_outside_the_advertised_range_closes_the_connection(server):
    with _connect(server) as s:
        s.sendall(struct.pack(">ihhih", 10, 3, 12, 1, 0))  # Metadata v12: flexible, not advertised
        assert _closed(s)
    _healthy(server)


@pytest.mark.parametrize("length", [-1, 0, 7, 100 * 1024 * 1024 + 1, 2**31 - 1])
def test_lengths_below_a_header_or_past_100_mib_close_the_connection_without_reading_it(server, length):
    with _connect(server) as s:
        s.sendall(struct.pack(">i", length) + b"x" * 16)
        assert _closed(s)
    _healthy(server)


def test_truncated_frame_then_disconnect_leaves_the_server_serving(server):
    real = _request(3, 8, {"Topics": [{"Name": "t"}]})
    for cut in (1, 3, 5, 12, len(real) - 1):
        with _connect(server) as s:
            s.sendall(real[:cut])
    _healthy(server)


def test_malformed_body_closes_the_connection(server):
    with _connect(server) as s:
        s.sendall(struct.pack(">ihhih", 14, 3, 8, 1, 0) + struct.pack(">i", 2**30))  # 2^30 topics claimed
        assert _closed(s)
    _healthy(server)


@pytest.mark.slow
def test_a_thousand_idle_connections_and_a_client_that_never_reads(server):
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    idle = [_connect(server) for _ in range(min(1000, soft - 200))]  # 1,000 where the limit allows
    hog = _connect(server)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for i in range(300):  # pipelined requests whose responses it never reads
        hog.sendall(_request(3, 8, {"Topics": None}, correlation=i))
    _healthy(server)
    for s in idle + [hog]:
        s.close()
    _healthy(server)


def test_a_slow_client_sending_a_byte_at_a_time_is_still_served(server):
    data = _request(18, 0, {}, correlation=11)
    with _connect(server) as s:
        for b in data:
            s.sendall(bytes([b]))
            time.sleep(0.002)
        assert struct.unpack(">ih", _recv_frame(s)[:6]) == (11, 0)


_REAL = [
    _request(18, 3, {"ClientSoftwareName": "x", "ClientSoftwareVersion": "1"}),
    _request(3, 4, {"Topics": [{"Name": "fuzz"}], "AllowAutoTopicCreation": False}),
    _request(1, 11, {"MaxWaitMs": 0, "Topics": [{"Topic": "fuzz", "Partitions": [{"Partition": 0, "PartitionMaxBytes": 100}]}]}),
    _request(2, 5, {"Topics": [{"Name": "fuzz", "Partitions": [{"PartitionIndex": 0, "Timestamp": -1}]}]}),
    _request(11, 5, {"GroupId": "fz", "SessionTimeoutMs": 6000, "RebalanceTimeoutMs": 6000, "MemberId": "",
                     "ProtocolType": "consumer", "Protocols": [{"Name": "range", "Metadata": b"\x00\x00"}]}),
    _request(14, 3, {"GroupId": "fz", "GenerationId": 1, "MemberId": "m"}),
    _request(8, 7, {"GroupId": "fz", "Topics": [{"Name": "fuzz", "Partitions": [{"PartitionIndex": 0, "CommittedOffset": 1}]}]}),
    _request(9, 5, {"GroupId": "fz", "Topics": None}),
    _request(19, 4, {"Topics": [{"Name": "fz-new", "NumPartitions": 1, "ReplicationFactor": 1}], "ValidateOnly": True}),
    _request(32, 2, {"Resources": [{"ResourceType": 2, "ResourceName": "fuzz", "ConfigurationKeys": None}]}),
    _request(0, 8, {"Acks": 1, "TimeoutMs": 1000, "TopicData": [{"Name": "fuzz", "PartitionData": [{"Index": 0, "Records": b"\x00" * 70}]}]}),
]


@st.composite
def _frames(draw):
    if draw(st.booleans()):
        body = draw(st.binary(min_size=8, max_size=200))
        return struct.pack(">i", len(body)) + body
    frame = bytearray(draw(st.sampled_from(_REAL)))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(4, len(frame) - 1))
        frame[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        frame = frame[:draw(st.integers(4, len(frame)))]
        frame[0:4] = struct.pack(">i", len(frame) - 4)
    return bytes(frame)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=_frames())
def test_fuzzed_requests_never_crash_the_server_nor_disturb_other_connections(server, frame):
    with _connect(server) as s:
        s.sendall(frame)
        s.settimeout(2)
        try:
            s.recv(1 << 16)
        except (socket.timeout, ConnectionResetError):
            pass
    _healthy(server)


def test_listening_beyond_localhost_warns_that_there_is_no_authentication(tmp_path):
    from kafka_support import ServerProcess
    srv = ServerProcess(str(tmp_path / "data"), str(tmp_path / "r.log"), 300, "--host", "0.0.0.0")
    assert srv.line.startswith("listening on 0.0.0.0:")
    rc, stderr = srv.stop()
    assert rc == 0 and "no authentication" in stderr


def test_a_topic_name_holding_a_nul_byte_is_an_invalid_topic_not_a_server_error(server):
    # Found by the fuzz: the name reached os.stat before the naming rule (ValueError, a traceback).
    with _connect(server) as s:
        s.sendall(_request(2, 5, {"ReplicaId": -1, "Topics": [{"Name": "a\x00b", "Partitions": [
            {"PartitionIndex": 0, "Timestamp": -1}]}]}, correlation=21))
        frame = _recv_frame(s)
    from logbroker.kafka.wire import Reader, decode
    resp = decode(by_key[2].response, Reader(frame, 4), 5, False)
    assert resp["Topics"][0]["Partitions"][0]["ErrorCode"] == 17  # INVALID_TOPIC_EXCEPTION
    _healthy(server)
