"""`logbroker consume` as a user meets it: closed pipes, waiting notices, Kafka's spellings.

Real processes and real pipes; records are published in-process to keep the tests quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from logbroker import Broker, Producer

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "cli.py")]


def env_for(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_TOPIC", "KAFKA_CONSUMER_GROUP")}
    env["LOGBROKER_DATA_DIR"] = str(data_dir)
    return env


def run(data_dir: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=input, capture_output=True, env=env_for(data_dir), timeout=60)


def fill(data_dir: Path, n: int, pad: int = 0, partitions: int = 1, topic: str = "t") -> None:
    Broker(data_dir).create_topic(topic, partitions)
    with Producer(data_dir) as producer:
        producer.send_batch(topic, [{"n": i, "pad": "x" * pad} for i in range(n)], partition=0)
        producer.flush()


def numbers(stdout: bytes) -> list[int]:
    return [orjson.loads(line)["n"] for line in stdout.splitlines()]


def read_then_close(data_dir: Path, lines: int, *args: str) -> tuple[list[int], subprocess.Popen]:
    """Start `consume args`, read ``lines`` lines from its stdout pipe, close the pipe (as `head` does)."""
    proc = subprocess.Popen([*CLI, "consume", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(data_dir))
    got = [orjson.loads(proc.stdout.readline())["n"] for _ in range(lines)]
    proc.stdout.close()
    proc.wait(timeout=30)
    return got, proc


@pytest.mark.slow
def test_a_pipe_closed_early_commits_nothing_so_the_group_reads_those_records_again(tmp_path):
    fill(tmp_path, 2000, pad=100)  # ~230 KB: more than a pipe holds, so the consumer is writing when it closes
    got, proc = read_then_close(tmp_path, 3, "t", "--group", "g", "--from-beginning")
    assert got == [0, 1, 2]
    assert proc.returncode == 0
    assert "group g keeps its last commit" in proc.stderr.read().decode()
    proc.stderr.close()
    again = run(tmp_path, "consume", "t", "--group", "g", "--from-beginning", "--max-messages", "2")
    assert numbers(again.stdout) == [0, 1]
    after = run(tmp_path, "consume", "t", "--group", "g", "--max-messages", "2")
    assert numbers(after.stdout) == [2, 3]  # --max-messages commits exactly what it printed


def test_a_waiting_consumer_exits_when_the_reader_of_its_pipe_has_gone(tmp_path):
    fill(tmp_path, 5)  # all of it fits in the pipe: the consumer is idle, waiting, when the reader leaves
    got, proc = read_then_close(tmp_path, 3, "t", "--group", "g", "--from-beginning")
    assert got == [0, 1, 2] and proc.returncode == 0
    proc.stderr.close()
    again = run(tmp_path, "consume", "t", "--group", "g", "--from-beginning", "--timeout-ms", "300")
    assert numbers(again.stdout) == [0, 1, 2, 3, 4]


def test_a_consumer_waiting_on_a_terminal_says_so_and_how_to_read_from_the_beginning(tmp_path):
    import pty
    fill(tmp_path, 3)
    leader, follower = pty.openpty()  # stderr is a terminal; stdout stays a pipe
    proc = subprocess.Popen([*CLI, "consume", "t"], stdout=subprocess.PIPE, stderr=follower, env=env_for(tmp_path))
    os.close(follower)
    import select
    seen = b""
    try:
        while b"--from-beginning" not in seen and proc.poll() is None:
            if select.select([leader], [], [], 30)[0]:  # a guard against hanging, not a timing check
                seen += os.read(leader, 4096)
            else:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.close(leader)
    assert b"Waiting at the end of the log of t" in seen
    assert b"logbroker consume t --from-beginning" in seen


def test_a_consumer_whose_stderr_is_not_a_terminal_prints_no_waiting_line(tmp_path):
    fill(tmp_path, 3)
    done = run(tmp_path, "consume", "t", "--timeout-ms", "200")
    assert done.stderr.decode().splitlines() == ["Processed a total of 0 messages"]


@pytest.mark.slow
def test_from_beginning_ignored_because_the_group_has_commits_is_said_once(tmp_path):
    fill(tmp_path, 4)
    assert numbers(run(tmp_path, "consume", "t", "-g", "g", "--from-beginning", "--max-messages", "2").stdout) == [0, 1]
    done = run(tmp_path, "consume", "t", "-g", "g", "--from-beginning", "--timeout-ms", "300")
    assert numbers(done.stdout) == [2, 3]
    notes = [line for line in done.stderr.decode().splitlines() if "--from-beginning is ignored" in line]
    assert len(notes) == 1 and "groups reset-offsets g --topic t --to-earliest --execute" in notes[0]


def test_a_consumer_started_before_its_topic_exists_waits_and_reads_it_from_the_start(tmp_path):
    proc = subprocess.Popen([*CLI, "consume", "later", "--max-messages", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(tmp_path))
    try:
        line = proc.stderr.readline().decode()
        assert "Topic later does not exist yet" in line and "logbroker topics create later" in line
        assert not (tmp_path / "later").exists()
        publish = run(tmp_path, "publish", "later", input=b'{"n": 0}\n{"n": 1}\n{"n": 2}\n')
        assert publish.returncode == 0, publish.stderr
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert sorted(numbers(out)) == [0, 1, 2] and proc.returncode == 0


def test_a_topic_that_never_appears_within_the_timeout_is_an_error_saying_how_to_create_it(tmp_path):
    done = run(tmp_path, "consume", "nope", "--timeout-ms", "200")
    assert done.returncode == 1
    assert "topic 'nope' does not exist" in done.stderr.decode()
    assert "logbroker topics create nope" in done.stderr.decode()


def test_kafka_spellings_topic_offset_and_print_properties(tmp_path):
    Broker(tmp_path).create_topic("t", 2)
    with Producer(tmp_path) as producer:
        producer.send("t", {"n": 0}, key="k1", partition=1, timestamp_ms=1_700_000_000_000, headers={"h": "v"})
        producer.send("t", {"n": 1}, partition=1, timestamp_ms=1_700_000_000_001)
        producer.flush()
    done = run(tmp_path, "consume", "--topic", "t", "--partition", "1", "--offset", "earliest", "--max-messages", "2",
               "--property", "print.key=true", "--property", "print.partition=true",
               "--property", "print.offset=true", "--property", "print.timestamp=true",
               "--property", "print.headers=true", "--property", "key.separator=|")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        'CreateTime:1700000000000|Partition:1|Offset:0|h:v|k1|{"n":0}',
        'CreateTime:1700000000001|Partition:1|Offset:1|NO_HEADERS|null|{"n":1}']
    tab = run(tmp_path, "consume", "t", "--offset", "earliest", "--max-messages", "1", "--property", "print.key=true")
    assert tab.stdout == b'k1\t{"n":0}\n'


def test_offset_latest_reads_only_new_records_and_a_bad_offset_word_is_refused(tmp_path):
    fill(tmp_path, 3)
    assert run(tmp_path, "consume", "t", "--offset", "latest", "--timeout-ms", "200").stdout == b""
    bad = run(tmp_path, "consume", "t", "--offset", "first")
    assert bad.returncode == 2
    assert "'first' is not an integer offset, earliest or latest" in bad.stderr.decode()


def test_two_different_topics_as_argument_and_topic_option_are_refused(tmp_path):
    fill(tmp_path, 1)
    done = run(tmp_path, "consume", "t", "--topic", "u")
    assert done.returncode == 2 and "two topics given: t and --topic u" in done.stderr.decode()


def test_kafkas_topic_and_group_options_consume_describe_reset_and_delete(tmp_path):
    fill(tmp_path, 2)
    done = run(tmp_path, "consume", "--topic", "t", "--from-beginning", "--max-messages", "2")
    assert done.returncode == 0 and numbers(done.stdout) == [0, 1]
