"""Lost and garbage state files (RELIABILITY.md, "Lost state"): the log is the truth, every small
file beside it is derived. Missing or empty state is never read as an empty partition: it is rebuilt
from the segments under the partition lock, or refused with an error naming the way out; a committed
offset never moves because of it. ``recover`` repairs every small file it can rebuild, one line each."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_all
from waiting import wait_until

from logbroker import Broker, Producer
from logbroker.storage.checkpoint import LOG_START_NAME, STATE_NAME
from logbroker.clients.consumer import Consumer
from logbroker.errors import CorruptionError
from logbroker.groups.offsets import GroupPaths, OffsetStore
from logbroker.storage.reader import PartitionReader
from logbroker.storage.record import PendingRecord
from logbroker.storage.topic import Topic
from logbroker.storage.segment import index_name, list_segments, timeindex_name

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGBROKER_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, env=env, timeout=60)


@pytest.fixture
def three(data_dir):
    """Topic t: 3 partitions of 40 records each, in segments of about 10 records."""
    Broker(data_dir).create_topic("t", 3, {"segment.bytes": 600})
    with Producer(data_dir) as p:
        for i in range(120):
            p.send("t", {"i": i}, partition=i % 3).get()  # one batch each: several segments
    return data_dir


def part(data_dir, p=1) -> str:
    return os.path.join(data_dir, "t", f"t-{p}")


def lose(path: str, how: str) -> None:
    if how == "deleted":
        os.unlink(path)
    elif how == "garbage":
        with open(path, "r+b") as f:
            f.write(b"\xff" * 84)  # the right size, the wrong crc
    else:
        open(path, "wb").close()


def all_values(data_dir) -> list[int]:
    with Consumer("t", data_dir=data_dir, auto_offset_reset="earliest", consumer_timeout_ms=300) as c:
        return sorted(r.value["i"] for r in c)


@pytest.mark.parametrize("how", ["deleted", "emptied", "garbage"])
def test_a_lost_high_watermark_is_rebuilt_from_the_segments_not_read_as_an_empty_partition(three, how, caplog):
    assert len(list_segments(part(three))) > 1
    lose(os.path.join(part(three), STATE_NAME), how)
    with caplog.at_level(logging.WARNING, logger="logbroker"):
        described = Broker(three).describe_topic("t")["partition_details"]
    assert [(d["log_end_offset"], d["records"]) for d in described] == [(40, 40)] * 3
    assert any("rebuild the partition state" in r.getMessage() for r in caplog.records)
    assert all_values(three) == list(range(120))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_group_keeps_its_committed_offset_when_the_state_file_is_lost(three, how):
    with Consumer("t", data_dir=three, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        got = []
        wait_until(lambda: got.extend(c.poll(500).values()) or sum(map(len, got)) >= 120, "the 120 records",
                   seen=lambda: f"{sum(map(len, got))} records", interval=0)
        c.commit()
    lose(os.path.join(part(three), STATE_NAME), how)
    with Consumer("t", data_dir=three, group_id="g", auto_offset_reset="earliest") as c:
        assert c.poll(300) == {}  # started while the state is lost: resumes where the group was
        with Producer(three) as p:
            p.send("t", {"i": 120}, partition=1)
        got = []
        for _ in range(20):
            got += [r.value["i"] for rs in c.poll(100).values() for r in rs]
        assert got == [120]  # nothing re-delivered
    with Consumer("t", data_dir=three, group_id="g", enable_auto_commit=False) as c:
        assert [c.committed("t", p) for p in range(3)] == [40, 41, 40]


def test_a_reader_that_cannot_rebuild_the_state_refuses_with_the_way_out(three):
    lose(os.path.join(part(three), STATE_NAME), "deleted")
    reader = PartitionReader("t", 1, part(three))  # no repair: as on a read-only copy
    with pytest.raises(CorruptionError) as info:
        reader.read(0, 10)
    assert "logbroker recover t" in str(info.value) and STATE_NAME in str(info.value)
    reader.close()


def test_garbage_in_the_log_start_checkpoint_is_rebuilt_for_readers_and_by_recover(three):
    for p in (0, 2):
        with open(os.path.join(part(three, p), LOG_START_NAME), "w") as f:
            f.write("garbage\n")
    assert [d["log_end_offset"] for d in Broker(three).describe_topic("t")["partition_details"]] == [40] * 3
    assert all_values(three) == list(range(120))
    with open(os.path.join(part(three, 1), LOG_START_NAME), "w") as f:
        f.write("0\n1\nt 1 junk\n")
    done = cli("recover", "t", data_dir=three)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().count(f"rewrite {LOG_START_NAME}") == 1
    assert cli("recover", "t", data_dir=three).stdout.decode().strip() == "All 3 partitions are clean."


def test_recover_repairs_each_lost_small_file_and_says_what_it_did_one_line_each(three):
    d = part(three)
    first, second = list_segments(d)[:2]
    os.unlink(os.path.join(d, STATE_NAME))
    with open(os.path.join(d, LOG_START_NAME), "w") as f:
        f.write("\x00" * 10)
    os.unlink(os.path.join(d, index_name(first)))
    open(os.path.join(d, timeindex_name(second)), "wb").close()
    open(os.path.join(d, "high-watermark.1234abcd.tmp"), "wb").close()
    done = cli("recover", "t", data_dir=three)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert all(line.startswith("t-1: ") for line in lines), lines
    text = "\n".join(lines)
    for expected in ("remove leftover temp file high-watermark.1234abcd.tmp", f"rewrite {LOG_START_NAME}",
                     f"rebuild the indexes of closed segment {first:020d}.log",
                     f"rebuild the indexes of closed segment {second:020d}.log",
                     "rebuild the partition state (high-watermark is missing or empty) from the segments: log end offset 40"):
        assert sum(expected in line for line in lines) == 1, (expected, text)
    assert cli("inspect", d, "--verify", data_dir=three).returncode == 0
    assert all_values(three) == list(range(120))


def test_damaged_group_offsets_with_a_sound_previous_generation_are_restored_by_recover(three):
    with Consumer("t", data_dir=three, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        for _ in range(2):
            c.poll(500, max_records=30)
            c.commit()
        committed = {p: c.committed("t", p) for p in range(3)}
    paths = GroupPaths(os.path.join(three, "t"), "g")
    prev = open(paths.prev, "rb").read()
    with open(paths.offsets, "wb") as f:
        f.write(b"garbage")
    done = cli("recover", "t", data_dir=three)
    assert done.returncode == 0, done.stderr
    assert "t group g: restored the committed offsets of group 'g' from" in done.stdout.decode()
    assert open(paths.offsets, "rb").read() == prev
    restored = OffsetStore(paths, "t").read()
    assert restored and all(restored[p].offset <= committed[p] for p in restored)


@pytest.mark.slow
def test_garbage_group_offsets_without_a_previous_generation_are_named_and_reset_offsets_gets_out(three):
    with Consumer("t", data_dir=three, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False) as c:
        c.poll(500, max_records=30)
        c.commit()
    paths = GroupPaths(os.path.join(three, "t"), "g")
    assert not os.path.exists(paths.prev)
    with open(paths.offsets, "wb") as f:
        f.write(b"\x00" * 40)
    done = cli("recover", "t", data_dir=three)
    assert done.returncode == 3
    err = done.stderr.decode()
    assert err.startswith("error: t group g: committed offsets of group 'g' on topic 't' are damaged")
    assert err.count("\n") == 1 and "logbroker groups reset-offsets g --topic t" in err
    done = cli("groups", "reset-offsets", "g", "--topic", "t", "--to-offset", "7", "--execute", data_dir=three)
    assert done.returncode == 0, done.stderr
    with Consumer("t", data_dir=three, group_id="g", enable_auto_commit=False) as c:
        assert [c.committed("t", p) for p in range(3)] == [7, 7, 7]
    assert cli("recover", "t", data_dir=three).returncode == 0


def test_a_lost_state_is_rebuilt_when_the_active_segment_is_empty_after_a_roll(data_dir):
    """Records only in closed segments (a crash right after a roll created the new segment, then
    the state was lost): the empty active segment must not make the partition read as never written."""
    t = Broker(data_dir).create_topic("t", 1, {"segment.bytes": 400, "fsync": "never"})
    for i in range(12):
        t.log(0).append([PendingRecord(1, None, None, {"i": i, "pad": "x" * 60})])
    t.close()
    d = t.partition_path(0)
    assert len(list_segments(d)) >= 2
    for suffix in (".log", ".index", ".timeindex"):
        open(os.path.join(d, f"{12:020d}{suffix}"), "wb").close()
    os.unlink(os.path.join(d, STATE_NAME))
    done = cli("inspect", d, "--verify", data_dir=data_dir)
    assert done.returncode == 3 and "rebuild the partition state" in done.stdout.decode()
    assert Topic(data_dir, "t").log(0).recover().actions
    assert cli("inspect", d, "--verify", data_dir=data_dir).returncode == 0
    assert [r.value["i"] for r in read_all(Topic(data_dir, "t"))] == list(range(12))
