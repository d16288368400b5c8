"""Helpers of the ``logbroker serve`` tests: a server in its own process on a free port, the request
log it writes, and the rule that a client test never skips silently in CI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from logbroker.kafka.schemas import API_VERSIONS


class ServerProcess:
    """``logbroker serve --port 0`` on ``data_dir``; ``bootstrap`` is its host:port."""

    def __init__(self, data_dir: str, log_path: str, delay_ms: int = 300, *extra: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logbroker", "serve", "--port", "0", "--data-dir", data_dir,
             "--group-initial-rebalance-delay-ms", str(delay_ms), "--request-log", log_path, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.line = line.strip()
        self.bootstrap = line.split()[2]
        self.port = int(self.bootstrap.rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> tuple[int, str]:
        """SIGTERM; returns the exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self.proc.stderr.read()

    def requests(self) -> list[tuple[str, int, int]]:
        with open(self.log_path) as f:
            return [(c, int(k), int(v)) for c, k, v in (line.rstrip("\n").split("\t") for line in f)]


def outside_advertised(requests: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Requests for an API or version not in the advertised table (ApiVersions probes excepted)."""
    table = {k: (lo, hi) for k, lo, hi in API_VERSIONS}
    return [r for r in requests if r[1] != 18 and not (r[1] in table and table[r[1]][0] <= r[2] <= table[r[1]][1])]


def kcat() -> str:
    """The kcat binary; a missing kcat fails the test in CI (CI=true) and skips it elsewhere."""
    path = shutil.which("kcat")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kcat is not installed; CI must run: apt-get install -y kcat")
        pytest.skip("kcat is not installed (apt-get install -y kcat)")
    return path


def run_kcat(bootstrap: str, *args: str, input: str | None = None, timeout: float = 30) -> str:
    done = subprocess.run([kcat(), "-b", bootstrap, *args], input=input, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def module_server(tmp_path_factory, name: str, *extra: str, clients_only: bool = True):
    """The body of a module-scoped fixture: a server for the module, stopped at its end with exit
    code 0, no handler failure in its log and (``clients_only``: real clients, no hand-made
    requests) no request outside the advertised table."""
    d = tmp_path_factory.mktemp(name)
    srv = ServerProcess(str(d / "data"), str(d / "requests.log"), 300, *extra)
    yield srv
    rc, stderr = srv.stop()
    assert rc == 0, stderr
    assert "Traceback" not in stderr, stderr
    if clients_only:
        assert outside_advertised(srv.requests()) == []
