"""``logbroker serve`` short of descriptors (``ulimit -n 64``) with many clients: connections beyond
what the descriptor limit leaves after the storage's budget are closed at once with one warning, so
the clients already connected keep being served (topics created, records appended and read) instead
of every storage access failing with ``Too many open files``."""

from __future__ import annotations

import resource
import socket
import struct
import subprocess
import sys

import pytest

from logbroker.kafka.schemas import by_key
from logbroker.kafka.wire import Reader, decode, encode

LIMIT = 64


def call(s: socket.socket, api_key: int, version: int, body: dict, correlation: int = 1) -> dict:
    api = by_key[api_key]
    out = bytearray(struct.pack(">hhih", api_key, version, correlation, 1) + b"t")
    if api.flexible(version):
        out.append(0)
    encode(api.request, body, version, api.flexible(version), out)
    s.sendall(struct.pack(">i", len(out)) + out)
    size = struct.unpack(">i", recv_exactly(s, 4))[0]
    frame = recv_exactly(s, size)
    assert struct.unpack(">i", frame[:4])[0] == correlation
    r = Reader(frame, 4)
    if api.flexible(version) and api_key != 18:
        r.skip_tags()
    return decode(api.response, r, version, api.flexible(version))


def recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed by the server after {len(data)} of {n} bytes")
        data += chunk
    return data


def closed_by_server(s: socket.socket) -> bool:
    s.settimeout(2)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:  # kept open (or never accepted)
        return False


@pytest.mark.slow
def test_serve_under_ulimit_64_refuses_extra_connections_and_keeps_serving_the_others(tmp_path):
    data = str(tmp_path / "data")

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))

    srv = subprocess.Popen([sys.executable, "-m", "logbroker", "serve", "--port", "0", "--data-dir", data],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lower_limit)
    try:
        port = int(srv.stdout.readline().split()[2].rsplit(":", 1)[1])
        first = socket.create_connection(("127.0.0.1", port), timeout=20)
        assert call(first, 18, 0, {})["ErrorCode"] == 0
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(LIMIT)]
        # The first client goes on: 20 topics created (each opens its files), a record into each.
        topics = [f"topic{i}" for i in range(20)]
        meta = call(first, 3, 8, {"Topics": [{"Name": t} for t in topics], "AllowAutoTopicCreation": True,
                                  "IncludeClusterAuthorizedOperations": False,
                                  "IncludeTopicAuthorizedOperations": False}, correlation=2)
        assert [(t["Name"], t["ErrorCode"]) for t in meta["Topics"]] == [(t, 0) for t in topics]
        for i, t in enumerate(topics):
            listed = call(first, 2, 1, {"ReplicaId": -1, "Topics": [
                {"Name": t, "Partitions": [{"PartitionIndex": 0, "Timestamp": -1}]}]}, correlation=10 + i)
            part = listed["Topics"][0]["Partitions"][0]
            assert (part["ErrorCode"], part["Offset"]) == (0, 0), part
        assert closed_by_server(crowd[-1]), "the last connection was kept beyond the limit"
        for s in crowd:
            s.close()
        first.close()
    finally:
        srv.terminate()
        _out, err = srv.communicate(timeout=30)
    assert "Too many open files" not in err, err
    assert "Traceback" not in err, err
    assert f"refusing connections beyond" in err and "ulimit -n" in err, err
