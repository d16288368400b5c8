"""``recover`` and ``inspect --verify`` agree by construction: both run one check of the partition
(:mod:`logbroker.storage.recovery`); inspect prints its verdict and what recover would do, recover does exactly
that. Tested on a writer that stopped between writing batches and recording them (what Ctrl+C of a
large publish leaves), and on real ``logbroker publish`` processes interrupted with SIGINT and SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logbroker import Broker
from logbroker.storage.checkpoint import STATE_NAME
from logbroker.storage.topic import Topic

from conftest import read_all, rec

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "RECOVER WOULD: "


def cli(*args: str, data_dir, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGBROKER_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, env=env,
                          timeout=120, **kw)


def inspect_verdict(directory: str, data_dir) -> tuple[int, str, list[str]]:
    """(exit code, verdict line, what recover would do) of `inspect DIR --verify`."""
    done = cli("inspect", directory, "--verify", data_dir=data_dir)
    lines = done.stdout.decode().splitlines()
    return done.returncode, lines[-1], [line[len(PREFIX):] for line in lines if line.startswith(PREFIX)]


def recover_actions(topic: str, partition: int, data_dir) -> list[str]:
    done = cli("recover", topic, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    head = f"{topic}-{partition}: "
    return [line[len(head):] for line in done.stdout.decode().splitlines() if line.startswith(head)]


def assert_agree(directory: str, topic: str, partition: int, data_dir) -> list[str]:
    """inspect's verdict and recover's action agree, and the partition is OK afterwards."""
    code, verdict, would = inspect_verdict(directory, data_dir)
    did = recover_actions(topic, partition, data_dir)
    assert (code == 0) == (verdict == "OK") == (did == []), (code, verdict, would, did)
    assert did == would
    code, verdict, would = inspect_verdict(directory, data_dir)
    assert (code, verdict, would) == (0, "OK", [])
    return did


@pytest.mark.slow
def test_batches_a_writer_wrote_but_never_recorded_are_reported_alike_by_inspect_and_recover(data_dir):
    t = Topic.create(data_dir, "t", 1)
    log = t.log(0)
    log.append([rec(i) for i in range(5)])
    d = t.partition_path(0)
    with open(os.path.join(d, STATE_NAME), "rb") as f:
        recorded = f.read()
    log.append([rec(i) for i in range(5, 12)])
    t.close()
    with open(os.path.join(d, STATE_NAME), "wb") as f:
        f.write(recorded)  # the writer stopped after its write, before recording it
    before = Broker(data_dir).describe_topic("t")["partition_details"][0]["log_end_offset"]
    assert before == 5
    code, verdict, would = inspect_verdict(d, data_dir)
    assert code == 3 and verdict.startswith("NOT OK: ")
    assert would == ["keep 7 records (offsets 5 to 11) found past the recorded log end offset 5: whole valid "
                     "batches of a writer that stopped before recording them (never acknowledged)"]
    assert assert_agree(d, "t", 0, data_dir) == would
    assert [r.value for r in read_all(Topic(data_dir, "t"))] == list(range(12))


@pytest.mark.slow
def test_records_a_writer_never_synced_are_named_as_past_the_high_watermark(data_dir):
    t = Topic.create(data_dir, "t", 1, {"fsync": "interval", "flush.ms": 3_600_000})
    log = t.log(0)
    log.append([rec(i) for i in range(3)])
    log.flush()
    log.append([rec(i) for i in range(3, 5)])  # written, not synced: past the high watermark
    d = t.partition_path(0)
    code, verdict, would = inspect_verdict(d, data_dir)
    t.close()  # close() does not flush a PartitionLog: the records stay unsynced, as after kill -9
    assert code == 3
    assert would == ["make records 3 to 4 durable and visible: they are past the high watermark 3 (a writer "
                     "stopped between its write and its fsync)"]
    assert assert_agree(d, "t", 0, data_dir) == would


def _log_end(data_dir) -> int:
    return Broker(data_dir).describe_topic("t")["partition_details"][0]["log_end_offset"]


def _input(n: int) -> bytes:
    return b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"p" * (i % 50)) for i in range(n))


@pytest.mark.slow
def test_interrupted_publishes_leave_partitions_where_inspect_and_recover_agree_and_lose_nothing(data_dir, tmp_path):
    """SIGINT and SIGKILL at many points of large publishes; after each: inspect's verdict matches
    recover's action, recovery keeps every record that was visible before it (acknowledged), and
    the log stays a gap-free prefix of the input."""
    source = tmp_path / "input.jsonl"
    source.write_bytes(_input(400_000))
    assert cli("topics", "create", "t", "--partitions", "1", "--config", "segment.bytes=2000000",
               data_dir=data_dir).returncode == 0
    rnd = random.Random(13)
    directory = os.path.join(data_dir, "t", "t-0")
    seen_repairs = []
    checked = expect = 0  # records verified so far; the value the run at the end continues with
    for attempt in range(10):
        sig = signal.SIGINT if attempt % 2 == 0 else signal.SIGKILL
        env = {**os.environ, "LOGBROKER_DATA_DIR": data_dir}
        # signal once the publish has made a random part of the input visible: a point inside the
        # publish whatever its speed (a fixed delay let a fast publish finish before it)
        stop_at = _log_end(data_dir) + rnd.randint(1_000, 40_000)
        topic = Topic(data_dir, "t")
        reader = topic.reader(0)  # its high watermark is one read of the state file
        with open(source, "rb") as stdin:
            proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "publish", "t"], stdin=stdin,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            while proc.poll() is None and reader.high_watermark() < stop_at:
                time.sleep(0.001)
            assert proc.poll() is None, f"attempt {attempt}: the publish ended before it was interrupted"
            proc.send_signal(sig)
            proc.wait(timeout=60)
        reader.close()
        topic.close()
        visible = _log_end(data_dir)
        seen_repairs += assert_agree(directory, "t", 0, data_dir)
        # the records kept before stay as they were: read only what this attempt added
        values = [r.value["n"] for r in read_all(Topic(data_dir, "t"), start=checked)]
        assert checked + len(values) >= visible  # nothing visible (acknowledged) before recovery was lost
        # every publish starts again at n = 0: the log is a run of prefixes of the input
        for i, v in enumerate(values):
            assert v in (0, expect), f"offset {checked + i}: {v} after {expect - 1}"
            expect = v + 1
        checked += len(values)
    print(f"{len(seen_repairs)} repairs over 10 interruptions: {seen_repairs}")


def test_inspect_counts_the_same_index_entries_for_a_segment_file_and_its_directory(data_dir):
    t = Topic.create(data_dir, "t", 1, {"index.interval.bytes": 100})
    for i in range(30):
        t.log(0).append([rec({"i": i, "pad": "x" * 40})])
    t.close()
    d = t.partition_path(0)
    seg = os.path.join(d, "00000000000000000000.log")
    file_out = cli("inspect", seg, data_dir=data_dir).stdout.decode().splitlines()[0]
    dir_out = [line for line in cli("inspect", d, data_dir=data_dir).stdout.decode().splitlines()
               if line.startswith("Dumping")][0]
    assert "index entries: -" not in file_out
    assert file_out.split("index entries: ")[1] == dir_out.split("index entries: ")[1] != "0)"
