"""``logbroker mirror`` as a command: the table, the dry run, --follow until SIGTERM, one-line errors,
the progress bar only on a terminal, and the README's snippet run as written."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logbroker import Broker
from logbroker.tools.render import progress_bar

from kafka_support import module_server
from mirror_support import append, commit, end_offsets, fill, shifted, source_records, target_records
from test_mirror import source, wait_for  # noqa: F401 (source: a fixture)

pytestmark = pytest.mark.slow  # a server process and a logbroker mirror process per test

ROOT = Path(__file__).resolve().parent.parent
SECTION = (ROOT / "README.md").read_text().split("## Moving to a Kafka cluster: logbroker mirror", 1)[1].split(
    "\n## ", 1)[0]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    yield from module_server(tmp_path_factory, "mirror-cli-target")


def logbroker(source: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", source, "mirror", *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_mirror_prints_a_table_of_topics_records_partitions_and_groups(target, source):
    fill(source, "table", partitions=2, records=10)
    Broker(source).delete_records([("table", 0, 4)])
    commit(source, "billing", {("table", 1): 3})
    done = logbroker(source, "--to-bootstrap-server", target.bootstrap, "table")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["TOPIC  RECORDS-COPIED  PARTITIONS  GROUPS-TRANSLATED",
                                        "table  16              2           1"]
    assert done.stderr == ""  # not a terminal: no progress bar
    assert target_records(target.bootstrap, "table", 2) == shifted(source_records(source, "table"))


def test_dry_run_prints_the_plan_and_sends_nothing(target, source):
    fill(source, "dry", partitions=1, records=5, config={"retention.ms": 60000})
    Broker(source).delete_records([("dry", 0, 2)])
    commit(source, "g", {("dry", 0): 1})
    before = len(target.requests())
    done = logbroker(source, "--to-bootstrap-server", target.bootstrap, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "would create topic dry (1 partition, retention.ms=60000)",
        "would copy dry-0: source offsets 2 to 4 -> target offsets 0 to 2 (3 records)",
        "would commit group g on dry: partition 0: 1 -> 0",
        "TOPIC  RECORDS-TO-COPY  PARTITIONS  GROUPS-TRANSLATED",
        "dry    3                1           1"]
    assert {key for _, key, _ in target.requests()[before:]}.isdisjoint({0, 8, 19})
    assert "dry" not in Broker(target.data_dir).list_topics()


def test_follow_copies_until_sigterm_then_exits_cleanly_with_the_table(target, source):
    fill(source, "tail", partitions=1, records=3)
    proc = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", source, "mirror", "tail",
                             "--to-bootstrap-server", target.bootstrap, "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: end_offsets(target.bootstrap, "tail", 1) == [3])
        append(source, "tail", 1, 3, 4)
        wait_for(lambda: end_offsets(target.bootstrap, "tail", 1) == [7])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert out.splitlines()[-1].split() == ["tail", "7", "1", "0"]


def test_an_unreachable_cluster_is_one_line_naming_the_address_and_timeout(source):
    fill(source, "away", partitions=1, records=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    done = logbroker(source, "--to-bootstrap-server", address, "--timeout-ms", "1000")
    assert done.returncode == 1
    assert done.stderr == f"error: no broker of {address} answered within 1 s (listing topics)\n"


@pytest.mark.parametrize("args,message", [
    (["--groups", "a", "--all-groups"], "--groups and --all-groups contradict each other"),
    (["--to-bootstrap-server", "nohost"], "'nohost' is not HOST:PORT"),
])
def test_contradicting_or_malformed_flags_are_one_line_and_exit_2(source, args, message):
    fill(source, "flags", partitions=1, records=1)
    if "--to-bootstrap-server" not in args:
        args = [*args, "--to-bootstrap-server", "127.0.0.1:9"]
    done = logbroker(source, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_compacted_topic_is_refused_in_one_line(target, source):
    fill(source, "keyed", partitions=1, records=0, config={"cleanup.policy": "compact"})
    done = logbroker(source, "--to-bootstrap-server", target.bootstrap, "keyed")
    assert done.returncode == 1
    assert done.stderr.startswith("error: topic 'keyed' has cleanup.policy=compact") and done.stderr.count("\n") == 1


def test_the_progress_bar_is_drawn_per_topic_on_a_terminal(target, source):
    fill(source, "barred", partitions=2, records=20)
    fill(source, "barred2", partitions=1, records=5)
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", source, "mirror", "barred", "barred2",
                             "--to-bootstrap-server", target.bootstrap], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal's other end closed: the process exited
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(60) == 0
    text = seen.decode()
    assert progress_bar("barred", 40, 40) in text and progress_bar("barred2", 5, 5) in text


def test_progress_bar_text():
    assert progress_bar("orders", 500, 2000, width=8) == "orders [##------] 500/2,000"
    assert progress_bar("empty", 0, 0, width=4) == "empty [####] 0/0"


def test_the_readme_snippet_runs_as_written(target, tmp_path):
    fill(str(tmp_path / "segments"), "orders", partitions=3, records=4)
    [block] = re.findall(r"```sh\n(.*?)```", SECTION, re.S)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(block.replace("127.0.0.1:9092", target.bootstrap), shell=True, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "would create topic orders (3 partitions)" in done.stdout
    assert done.stdout.splitlines()[-1].split() == ["orders", "12", "3", "0"]
    assert end_offsets(target.bootstrap, "orders", 3) == [4, 4, 4]
