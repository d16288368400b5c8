"""Open descriptors stay bounded whatever the partition count (an LRU of open partition files, as
Kafka's log manager keeps): 500 partitions work under ``ulimit -n 256``, for producers and consumers."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from waiting import wait_until
from logbroker import Broker, Consumer, Producer
from logbroker.storage.handles import OPEN_FILES, OpenFiles

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "cli.py")]


def _limit_descriptors(n: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_lru_closes_the_least_recently_used_entries_beyond_its_budget():
    closed = []
    files = OpenFiles(budget=10)
    for name in "abcd":
        files.touch(name, 3, lambda n=name: closed.append(n))
    assert closed == ["a"]
    files.touch("b", 3, lambda: closed.append("b"))  # used again: now the newest
    files.touch("e", 3, lambda: closed.append("e"))
    assert closed == ["a", "c"]
    files.forget("d")
    files.touch("f", 3, lambda: closed.append("f"))
    assert closed == ["a", "c"] and files.weight == 9


@pytest.mark.slow
def test_a_producer_and_a_consumer_of_300_partitions_hold_a_bounded_number_of_descriptors(data_dir, monkeypatch):
    monkeypatch.setattr(OPEN_FILES, "budget", 40)
    Broker(data_dir).create_topic("wide", 300)
    before = _open_descriptors()
    most = 0
    with Producer(data_dir, batch_size=0) as producer:
        for i in range(600):
            producer.send("wide", {"n": i})
            most = max(most, _open_descriptors() - before)
    consumer = Consumer(data_dir=data_dir, auto_offset_reset="earliest")
    consumer.assign([("wide", p) for p in range(300)])
    got = []

    def poll() -> bool:
        nonlocal most
        got.extend(r.value["n"] for rs in consumer.poll(100).values() for r in rs)
        most = max(most, _open_descriptors() - before)
        return len(got) >= 600
    wait_until(poll, "the 600 records back from 300 partitions", seen=lambda: f"{len(got)} records", interval=0)
    consumer.close()
    assert sorted(got) == list(range(600))
    assert most <= 40 + 8  # the budget, the pinned topic directories and a partition being opened


@pytest.mark.slow
def test_publish_and_consume_500_partitions_under_ulimit_n_256(data_dir):
    env = {**os.environ, "LOGBROKER_DATA_DIR": data_dir}
    subprocess.run([*CLI, "topics", "create", "wide", "--partitions", "500"], check=True, env=env)
    lines = b"".join(orjson.dumps({"n": i}) + b"\n" for i in range(1500))
    result = subprocess.run([*CLI, "publish", "wide"], input=lines, capture_output=True, env=env, timeout=300,
                            preexec_fn=_limit_descriptors(256))
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "Published 1,500 records to wide (0 failed" in err  # one separator style (summary and progress)
    result = subprocess.run([*CLI, "consume", "wide", "--from-beginning", "--max-messages", "1500"],
                            capture_output=True, env=env, timeout=300, preexec_fn=_limit_descriptors(256))
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(orjson.loads(line)["n"] for line in result.stdout.splitlines()) == list(range(1500))


def test_a_thread_never_closes_the_files_another_thread_touched_last():
    """A producer's sender thread may be appending to a log while the application's thread polls:
    the budget is exceeded rather than another thread's descriptors closed under it."""
    import threading

    from logbroker.storage.handles import OpenFiles

    budget = OpenFiles(budget=4)
    closed = []
    worker = threading.Thread(target=lambda: budget.touch("theirs", 3, lambda: closed.append("theirs")))
    worker.start()
    worker.join()
    budget.touch("mine-1", 3, lambda: closed.append("mine-1"))  # over budget: only theirs is older
    assert closed == [] and budget.weight == 6
    budget.touch("mine-2", 3, lambda: closed.append("mine-2"))  # its own older entry goes
    assert closed == ["mine-1"] and budget.weight == 6
