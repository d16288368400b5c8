"""File-based consumer groups against an unlucky operator, with real processes: a member killed
(-9) in the middle of its offset commits, ``groups delete`` under a live consumer, and
``delete-records`` moving the log start offset past a group's committed offset. Committed offsets
must stay readable, never fall below what a commit acknowledged, and every refusal or reset must be
said on stderr."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading

import pytest

from logbroker import Broker, Producer
from logbroker.groups.offsets import GroupPaths, OffsetStore, decode_line
from waiting import wait_until

pytestmark = pytest.mark.slow

COMMITTER = r"""
import sys
from logbroker.clients.consumer import Consumer
data_dir, group = sys.argv[1:3]
c = Consumer("t", data_dir=data_dir, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
             max_poll_records=1)
while True:
    for tp, records in c.poll(timeout_ms=100).items():
        c.commit({tp: records[-1].offset + 1})
        print(records[-1].offset + 1, flush=True)  # acknowledged: commit() returned
"""


def cli(data: str, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logbroker", "--data-dir", data, *args], input=input,
                          capture_output=True, text=True, timeout=timeout)


def committed(data: str, group: str) -> int | None:
    return OffsetStore(GroupPaths(os.path.join(data, "t"), group), "t").committed(0)


def previous_commit(data: str, group: str) -> int:
    paths = GroupPaths(os.path.join(data, "t"), group)
    with open(paths.prev, "rb") as f:
        return int(decode_line(f.read())["offsets"]["0"]["offset"])


@pytest.fixture
def data(tmp_path):
    d = str(tmp_path / "data")
    Broker(d).create_topic("t", partitions=1, config={"segment.bytes": 2000})
    with Producer(data_dir=d) as p:
        for i in range(3000):
            p.send("t", {"i": i}, partition=0)
    return d


def test_kill_9_of_a_member_in_the_middle_of_its_commits_never_loses_or_damages_a_committed_offset(data):
    rng = random.Random(3)
    regressions: list[tuple[int, object]] = []
    stop = threading.Event()

    def watch() -> None:  # the committed offset never moves backwards, whatever a reader catches
        last = 0
        while not stop.is_set():
            try:
                now = committed(data, "k") or 0
            except Exception as exc:  # a reader must never see a damaged or half-written file
                regressions.append((last, repr(exc)))
                return
            if now < last:
                regressions.append((last, now))
            last = max(last, now)

    watcher = threading.Thread(target=watch)
    watcher.start()
    acknowledged = 0
    try:
        for _ in range(8):
            proc = subprocess.Popen([sys.executable, "-c", COMMITTER, data, "k"], stdout=subprocess.PIPE, text=True)
            first = int(proc.stdout.readline())
            assert first == acknowledged + 1, f"resumed at {first - 1}, the last acknowledged commit was {acknowledged}"
            acknowledged = first
            for _ in range(rng.randint(5, 80)):
                acknowledged = int(proc.stdout.readline())
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            for line in proc.stdout.read().split():  # commits acknowledged before the kill landed
                acknowledged = int(line)
            # The kill may land between a commit's durable write and the print acknowledging it.
            assert committed(data, "k") in (acknowledged, acknowledged + 1)
            acknowledged = committed(data, "k")
            leftovers = [n for n in os.listdir(GroupPaths(os.path.join(data, "t"), "k").root) if n.endswith(".tmp")]
            assert cli(data, "recover", "t").returncode == 0, leftovers
    finally:
        stop.set()
        watcher.join()
    assert regressions == []
    described = cli(data, "groups", "describe", "k")
    assert described.returncode == 0 and f" {acknowledged} " in described.stdout, described


def test_groups_delete_under_a_live_consumer_is_refused_in_one_line_and_keeps_its_offsets(data):
    consumer = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", data, "consume", "t", "--group", "d",
                                 "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(10):
            consumer.stdout.readline()
        wait_until(lambda: (committed(data, "d") or 0) > 0, "the consumer's first automatic commit", timeout=30)
        refused = cli(data, "groups", "delete", "d")
        assert refused.returncode != 0
        message = refused.stderr.strip()
        assert "\n" not in message and "'d'" in message and "live" in message, message
        assert committed(data, "d") > 0 and consumer.poll() is None
    finally:
        consumer.send_signal(signal.SIGINT)
        consumer.communicate(timeout=30)
    assert consumer.returncode in (0, 130)
    assert cli(data, "groups", "delete", "d").returncode == 0
    assert not GroupPaths(os.path.join(data, "t"), "d").exists()


def test_delete_records_past_a_groups_committed_offset_resets_it_to_the_log_start_and_says_so(data):
    first = cli(data, "consume", "t", "--group", "r", "--from-beginning", "--max-messages", "10")
    assert first.returncode == 0 and committed(data, "r") == 10
    moved = cli(data, "delete-records", "t", "--partition", "0", "--before-offset", "1500")
    assert moved.returncode == 0, moved.stderr
    again = cli(data, "consume", "t", "--group", "r", "--from-beginning", "--max-messages", "3",
                "--property", "print.offset=true", "--property", "print.value=false")
    assert again.returncode == 0, again.stderr
    assert [line.split(":")[-1] for line in again.stdout.split()] == ["1500", "1501", "1502"], again.stdout
    assert "below the log start offset" in again.stderr and "1500" in again.stderr, again.stderr
    assert committed(data, "r") == 1503


def test_records_deleted_ahead_of_a_reading_consumer_are_skipped_forwards_and_it_keeps_going(tmp_path):
    data = str(tmp_path / "data")
    Broker(data).create_topic("t", partitions=1, config={"segment.bytes": 50_000})
    with Producer(data_dir=data) as p:
        for i in range(10_000):
            p.send("t", {"i": i, "pad": "x" * 200}, partition=0)
    # Values printed: records of 200 bytes fill the pipe, so the consumer reads as slowly as we do.
    consumer = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", data, "consume", "t", "--group", "x",
                                 "--from-beginning", "--property", "print.offset=true"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    offsets: list[int] = []
    try:
        while len(offsets) < 600:
            line = consumer.stdout.readline()
            assert line, consumer.stderr.read()
            offsets.append(int(line.split("\t")[0].split(":")[-1]))
            if len(offsets) % 100 == 0:  # the segment it reads, and the next ones, go
                moved = cli(data, "delete-records", "t", "--partition", "0", "--before-offset", str(offsets[-1] + 1500))
                assert moved.returncode == 0, moved.stderr
    finally:
        consumer.send_signal(signal.SIGINT)
        _, stderr = consumer.communicate(timeout=30)
    assert consumer.returncode in (0, 130), stderr
    assert "Traceback" not in stderr, stderr
    assert offsets == sorted(set(offsets)), "an offset delivered twice or out of order"
    assert any(b - a > 1 for a, b in zip(offsets, offsets[1:])), "never skipped the records deleted ahead of it"
    assert "below the log start offset" in stderr, stderr
    assert committed(data, "x") >= offsets[-1]


def test_reset_offsets_racing_a_joining_member_is_either_refused_or_seen_by_it(data):
    rng = random.Random(5)
    outcomes = {"refused": 0, "applied": 0}
    for round_ in range(12):
        start = 100 * round_
        assert cli(data, "groups", "reset-offsets", "j", "--topic", "t", "--to-offset", str(start),
                   "--execute").returncode == 0
        target = start + 50
        reset_proc = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", data, "groups", "reset-offsets",
                                       "j", "--topic", "t", "--to-offset", str(target), "--execute"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Event().wait(rng.uniform(0.0, 0.5))  # both start up in 0.3-0.8 s: their steps interleave
        consumer = subprocess.Popen([sys.executable, "-m", "logbroker", "--data-dir", data, "consume", "t",
                                     "--group", "j", "--max-messages", "1", "--property", "print.offset=true",
                                     "--property", "print.value=false"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = consumer.communicate(timeout=60)
        reset_out, reset_err = reset_proc.communicate(timeout=60)
        reset = subprocess.CompletedProcess(reset_proc.args, reset_proc.returncode, reset_out, reset_err)
        assert consumer.returncode == 0, err
        printed = int(out.split(":")[-1])
        after = committed(data, "j")
        if reset.returncode != 0:
            outcomes["refused"] += 1
            assert "live" in reset.stderr and "\n" not in reset.stderr.strip(), reset.stderr
            assert (printed, after) == (start, start + 1)
        else:
            outcomes["applied"] += 1
            # Either the member read after the reset (it starts at the target), or it had come and
            # gone before the reset looked (the reset then holds).
            assert (printed, after) in ((target, target + 1), (start, target)), (printed, after, reset.stdout)
            if after == target:  # then the member's commit came before the reset's: it is the generation before
                assert previous_commit(data, "j") == start + 1, "the reset was applied while the member was live"
    assert sum(outcomes.values()) == 12
