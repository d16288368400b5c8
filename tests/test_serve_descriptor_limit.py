"""``logbroker serve`` raises its soft descriptor limit toward the hard one, so a shell's soft 1,024
does not refuse the thousandth idle client; a limit lowered soft and hard together stays as it is."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys

import pytest

from test_operator_serve_descriptors import call, closed_by_server

SOFT, HARD = 128, 4096


def _start(tmp_path, soft: int, hard: int) -> tuple[subprocess.Popen, int]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    srv = subprocess.Popen([sys.executable, "-m", "logbroker", "serve", "--port", "0", "--data-dir",
                            str(tmp_path / "data")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=limit)
    return srv, int(srv.stdout.readline().split()[2].rsplit(":", 1)[1])


@pytest.mark.slow
def test_serve_serves_more_clients_than_its_soft_limit_when_the_hard_limit_allows(tmp_path):
    hard = min(HARD, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    if hard < 1024:
        pytest.fail(f"this test needs a hard descriptor limit of at least 1024, not {hard}")
    srv, port = _start(tmp_path, SOFT, hard)
    try:
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(SOFT + 64)]
        for i, s in enumerate(crowd[::16] + crowd[-1:]):  # every 16th and the last are served
            assert call(s, 18, 0, {}, correlation=i)["ErrorCode"] == 0
        for s in crowd:
            s.close()
    finally:
        srv.terminate()
        _out, err = srv.communicate(timeout=30)
    assert "refusing connections" not in err, err
    assert "Traceback" not in err, err


def test_raise_descriptor_limit_stops_at_the_hard_limit_and_grows_the_storage_budget():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (128, 1024));"
            "from logbroker.storage.handles import OPEN_FILES, raise_descriptor_limit;"
            "before = OPEN_FILES.budget; now = raise_descriptor_limit();"
            "print(before, now, resource.getrlimit(resource.RLIMIT_NOFILE)[0], OPEN_FILES.budget)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert [int(x) for x in out.split()] == [64, 1024, 1024, 768]


def test_raise_descriptor_limit_leaves_a_limit_lowered_soft_and_hard_together():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64));"
            "from logbroker.storage.handles import OPEN_FILES, raise_descriptor_limit;"
            "print(raise_descriptor_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], OPEN_FILES.budget)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert [int(x) for x in out.split()] == [64, 64, 32]
