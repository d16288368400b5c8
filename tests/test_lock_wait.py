"""Lock waits (RELIABILITY.md, "Lock waits"): a writer blocked by a stopped lock holder says, after
a second, which lock it waits for and which process holds it, and gives up after max.block.ms with a
one-line error; nothing is half-written. Tested with a real SIGSTOPped process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logbroker import Broker, Producer
from logbroker.errors import LockTimeoutError
from logbroker.storage.fsutil import FileLock, holder_description

ROOT = Path(__file__).resolve().parent.parent

HOLD = textwrap.dedent("""
    import sys, time
    from logbroker.storage.topic import Topic
    log = Topic(sys.argv[1], "t").log(0)
    with log.locked():
        print("locked", flush=True)
        time.sleep(120)
""")


def cli(*args: str, data_dir, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGBROKER_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=input, capture_output=True,
                          env=env, timeout=60)


@pytest.fixture
def stopped_holder(data_dir):
    """A process holding the lock of partition t-0, stopped with SIGSTOP; yields its pid."""
    Broker(data_dir).create_topic("t", 1)
    with Producer(data_dir) as p:
        p.send("t", {"n": 0}).get()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, data_dir], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout.readline() == b"locked\n"
        os.kill(proc.pid, signal.SIGSTOP)
        yield proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def partition_files(data_dir) -> dict[str, bytes]:
    d = os.path.join(data_dir, "t", "t-0")
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d)) if n != ".lock"}


@pytest.mark.slow
@pytest.mark.parametrize("command", [("publish", "t"), ("retention", "t"), ("recover", "t")])
def test_a_writer_blocked_by_a_stopped_holder_names_it_and_gives_up_after_max_block_ms(data_dir, stopped_holder,
                                                                                      command):
    before = partition_files(data_dir)
    done = cli(*command, "--max-block-ms", "1500", data_dir=data_dir, input=b'{"n": 1}\n')
    err = done.stderr.decode()
    assert done.returncode != 0, err
    assert f"waiting for the lock of partition t-0: it is held by process {stopped_holder} (" in err
    assert "stopped" in err
    assert "gave up waiting for the lock of partition t-0 after 1500 ms (max.block.ms)" in err
    assert "Traceback" not in err
    assert partition_files(data_dir) == before


def test_a_producer_append_fails_cleanly_after_max_block_ms_and_writes_nothing(data_dir, stopped_holder):
    before = partition_files(data_dir)
    with Producer(data_dir, max_block_ms=200) as p:
        with pytest.raises(LockTimeoutError) as info:
            p.send("t", {"n": 1}).get()
    assert f"held by process {stopped_holder}" in str(info.value) and "nothing was written" in str(info.value)
    assert partition_files(data_dir) == before


def test_the_lock_is_taken_the_moment_its_holder_releases_it(tmp_path):
    path = str(tmp_path / "x.lock")
    holder = FileLock(path, record_holder=True)
    holder.acquire()
    assert holder_description(path).startswith(f"process {os.getpid()}")
    waiter = FileLock(path, record_holder=True)
    with pytest.raises(LockTimeoutError):
        waiter.acquire_within(0.05, "the test lock")
    holder.release()
    waiter.acquire_within(5, "the test lock")  # the abandoned wait left nothing holding it
    assert waiter.held
    other = FileLock(path)
    assert not other.acquire(blocking=False)
    waiter.close()
    assert other.acquire(blocking=False)
    other.close()
    holder.close()


def test_a_wait_survives_the_lock_file_being_renamed_away(tmp_path):
    """A topic deleted while a writer waits for its partition lock: the wait is on the file the
    writer opened, not on its old name (the writer then finds the topic gone, cleanly)."""
    path = str(tmp_path / "x.lock")
    holder = FileLock(path)
    holder.acquire()
    waiter = FileLock(path)
    os.rename(path, str(tmp_path / "gone.lock"))
    import threading
    threading.Timer(0.2, holder.release).start()
    waiter.acquire_within(10, "the test lock")
    assert waiter.held
    waiter.close()
    holder.close()
