"""Ctrl+C landing while ``logbroker consume`` flushes a printed record (where a consumer that
follows a topic spends its time: it flushes after every record). The record is already in the
output's buffer, which is written at exit, so it must be counted and committed: before, the flush
ran inside the sink, the interrupt made the loop take the record as not handed over, and it was
printed, left out of "Processed a total of N" and printed again by the next run of the group."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios

import pytest

from logbroker import Producer
from logbroker.groups.admin import describe_group
from logbroker.storage.topic import Topic
from logbroker.tools.console import consume
from waiting import wait_until


class Terminal:
    """Python's stdout as the command line uses it: ``write`` fills a buffer, ``flush`` empties it
    into what was shown, and whatever is left in the buffer is shown at exit."""

    def __init__(self, interrupt_at_flush: int) -> None:
        self.buffer: list[int] = []
        self.shown: list[int] = []
        self.flushes = 0
        self.interrupt_at_flush = interrupt_at_flush

    def write(self, record, n) -> None:
        self.buffer.append(record.value["i"])

    def flush(self) -> None:
        self.flushes += 1
        if self.flushes == self.interrupt_at_flush:
            raise KeyboardInterrupt  # the signal lands inside the write(2) of the flush
        self.shown += self.buffer
        self.buffer.clear()

    def exit(self) -> list[int]:
        self.shown += self.buffer
        self.buffer.clear()
        return self.shown


def committed(data_dir: str) -> int:
    return sum(row.current_offset or 0 for row in describe_group(data_dir, "g"))


def test_ctrl_c_in_the_flush_of_a_printed_record_counts_and_commits_it(data_dir):
    Topic.create(data_dir, "t", 1).close()
    with Producer(data_dir) as p:
        p.send_batch("t", [{"i": i} for i in range(300)])
    shown: list[int] = []
    for interrupt_at in (7, 1, 120):  # three runs of the group, each stopped by Ctrl+C
        out = Terminal(interrupt_at)
        count = consume(data_dir, "t", out.write, group="g", from_beginning=True, flush=out.flush)
        printed = out.exit()
        assert count == len(printed) == interrupt_at
        assert committed(data_dir) == len(shown) + count
        shown += printed
    assert shown == list(range(len(shown)))  # each record printed once, none skipped


@pytest.mark.slow
def test_ctrl_c_of_consume_blocked_on_a_full_pipe_prints_each_record_once_and_commits_what_it_printed(data_dir):
    """The real thing: a consumer whose reader has not read yet blocks in the flush of a record
    (the pipe is full); Ctrl+C then lands in that flush. Python's stdout is buffered here, as in a
    shell (PYTHONUNBUFFERED unset)."""
    Topic.create(data_dir, "t", 1).close()
    with Producer(data_dir) as p:
        p.send_batch("t", [{"i": i} for i in range(30000)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["LOGBROKER_DATA_DIR"] = data_dir
    shown: list[int] = []
    for run in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "logbroker", "consume", "t", "--group", "g",
                                 "--from-beginning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        wait_until(lambda: _pipe_full(proc.stdout), "the consumer's stdout pipe full")
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
        printed = [json.loads(line)["i"] for line in out.splitlines()]
        found = re.search(r"Processed a total of ([\d,]+) messages", err)
        assert found, err
        count = int(found.group(1).replace(",", ""))
        assert len(printed) == count, f"run {run}: {len(printed)} records printed, {count} counted"
        shown += printed
        assert committed(data_dir) == len(shown)
    assert shown == list(range(len(shown)))  # each record printed once, none skipped


def _pipe_full(pipe) -> bool:
    """The pipe holds all it can take (within a line): its writer blocks in its next write."""
    capacity = fcntl.fcntl(pipe.fileno(), 1032)  # F_GETPIPE_SZ
    waiting = struct.unpack("i", fcntl.ioctl(pipe.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    return waiting >= capacity - 256
